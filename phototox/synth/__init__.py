"""Synthetic phase-contrast fields and time-lapses with known truth (demo, tests, benchmarks)."""
