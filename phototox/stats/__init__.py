"""The statistics engine: comparisons with controls, per-dose tests and tables, bootstrap intervals, calibration metrics."""
