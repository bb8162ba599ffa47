"""Sketchpad: draw a rough sketch, get a picture (Stable Diffusion 1.5 image-to-image)."""

__version__ = "0.1.0"
