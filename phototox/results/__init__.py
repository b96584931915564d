"""What a user receives: tables and maps written to disk, overlays, plots, provenance, batch runs, and analysis requests from other programs."""
