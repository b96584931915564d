"""Shipped phototox model weights, their cards and registry (installed as ``phototox.models.shipped``).

The folder ``models/`` of the repository is this package: see ``registry.json`` (names, sha256,
pixel size, training data, citations) and ``MODEL_CARD.md``; ``phototox.models.registry`` reads it.
"""
