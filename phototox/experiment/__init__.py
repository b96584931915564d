"""The user's experiment: dose series, design checks, and the demo that runs one end to end."""
