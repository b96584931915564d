"""Sickness maps: the one inference path (exact windows and the dense engine), window geometry, normalisation, map settings, devices."""
