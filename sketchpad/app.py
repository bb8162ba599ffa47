"""`python main.py [--model ...] [--device ...] [--output-dir ...] [--server URL]`: open the painting window."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cli import DEVICE_HELP, DTYPE_HELP, use_dtype
from .core.registry import APP_NAME, DEVICES, DTYPES, ORGANIZATION_NAME, app_state_dir
from .logs import setup_logging
from .platform_check import EXIT_MISSING, window_problem


def parse_app_args(argv: list[str], program: str = "python main.py") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=program,
        usage=f"%(prog)s [-h] [--model MODEL] [--device DEVICE] [--dtype DTYPE] [--output-dir DIR] [--server URL]\n"
              f"       %(prog)s generate SKETCH --prompt TEXT [options]",
        description="Sketchpad: draw a sketch, get a picture. Without a command it opens the window.",
        epilog=f"commands:\n  generate    turn a sketch into a picture without the window "
               f"(see: {program} generate --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Hugging Face id, diffusers folder or .safetensors file (remembered)")
    parser.add_argument("--device", choices=DEVICES,
                        help=f"{DEVICE_HELP} (default auto; remembered)")
    parser.add_argument("--dtype", choices=DTYPES, help=f"{DTYPE_HELP} (default auto)")
    parser.add_argument("--output-dir", type=Path, metavar="DIR", help="where Ctrl+S saves results (remembered)")
    parser.add_argument("--server", metavar="URL",
                        help="paint on a ComfyUI server (http[s]://[user:password@]host:port); --model then "
                             "names one of its checkpoints (remembered)")
    return parser.parse_args(argv)


def run_app(argv: list[str], program: str = "python main.py") -> int:
    args = parse_app_args(argv, program)
    use_dtype(args.dtype)
    problem = window_problem(program=program)  # before Qt loads: no display or a missing library aborts it
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_MISSING
    from PySide6.QtWidgets import QApplication

    from .backends.comfy.checkpoints import list_checkpoints
    from .ui.main_window import MainWindow
    from .ui.theme import apply_dark_palette
    from .worker import GenerationWorker

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANIZATION_NAME)
    state = app_state_dir()  # the one folder the window keeps results in and both write their log to
    setup_logging(state)
    apply_dark_palette(app)
    worker = GenerationWorker()
    window = MainWindow(worker, model=args.model, device=args.device, output_dir=args.output_dir,
                        server=args.server, state_dir=state, lookup_checkpoints=list_checkpoints)
    window.show()
    window.start()
    code = app.exec()
    worker.stop()
    if worker.loading_in_background():
        # Closed during a model download or load: Python's own exit would wait for the download's
        # threads (concurrent.futures joins them) or trip over a load in C++. Everything worth keeping
        # is written by now (settings, autosave, results), so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
