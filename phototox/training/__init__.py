"""Making a model the user's own: datasets, augmentation, training, evaluation, cross-validation, audits, cards, Grad-CAM and the few-label loop."""
