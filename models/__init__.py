"""Shipped phototox model weights (see MODEL_CARD.md and registry.json)."""
