"""vram: will it fit? GPU memory for inference and training of open models."""

__version__ = "0.1.0"
