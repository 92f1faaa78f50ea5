"""clipbot: zero-shot image classification and phrase similarity with local CLIP."""

__version__ = "0.1.0"
