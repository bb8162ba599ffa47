"""`python main.py [--model ...] [--device ...] [--output-dir ...]`: open the painting window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_app_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python main.py", description="Sketchpad: draw a sketch, get a picture.")
    parser.add_argument("--model", help="Hugging Face id, diffusers folder or .safetensors file (remembered)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="default: auto (remembered)")
    parser.add_argument("--output-dir", type=Path, help="where Ctrl+S saves results (remembered)")
    return parser.parse_args(argv)


def run_app(argv: list[str]) -> int:
    args = parse_app_args(argv)
    from PySide6.QtWidgets import QApplication

    from .ui.main_window import MainWindow
    from .ui.theme import apply_dark_palette
    from .worker import GenerationWorker

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Sketchpad")
    app.setOrganizationName("Sketchpad")
    apply_dark_palette(app)
    worker = GenerationWorker()
    window = MainWindow(worker, model=args.model, device=args.device, output_dir=args.output_dir)
    window.show()
    window.start()
    code = app.exec()
    worker.stop()
    return code
