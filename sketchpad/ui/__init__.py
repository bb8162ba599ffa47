"""Widgets: the sketch canvas, tool panel, preview and history panels (no torch here)."""
