"""bioimage.io model-zoo packaging of phototox models (``python -m phototox_zoo build``)."""
