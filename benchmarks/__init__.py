"""Sketchpad's benchmark suite: `python -m benchmarks` from the repository root writes BENCHMARKS.md.

engine_bench (torch/diffusers only, never Qt), ui_bench (Qt; skipped without PySide6), report (formatting).
"""
