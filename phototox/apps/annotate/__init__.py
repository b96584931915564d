"""Expert annotation web app (the DeadNet survey site), its report and export."""
