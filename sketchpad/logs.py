"""A small rotating log in the app's state folder, for the window and the command line alike.

The person reads one line per problem on the screen; the causes behind it (chained exceptions, the
libraries' own warnings and retries) go here, where a bug report can attach them. Nothing of it goes
to the terminal. Torch- and Qt-free.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from .core.registry import app_state_dir

LOG_FILE = "sketchpad.log"
MAX_BYTES = 1 << 20
BACKUPS = 3  # sketchpad.log.1 … .3: at most 4 MiB in all
LIBRARIES = ("huggingface_hub", "diffusers", "transformers")
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def log_folder(state_dir: Path | None = None) -> Path:
    return Path(state_dir or app_state_dir()) / "logs"


class _SketchpadLog(logging.handlers.RotatingFileHandler):
    """Our handler, told apart from any other on the root logger so a second setup replaces it."""


def setup_logging(state_dir: Path | None = None) -> Path | None:
    """Send every logger's records (ours from INFO, the libraries' from their own level) to
    <state>/logs/sketchpad.log; returns that file, or None when the folder cannot be written (then
    nothing is logged, and still nothing reaches the terminal)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, (_SketchpadLog, logging.NullHandler))]:
        root.removeHandler(handler)
        handler.close()
    path = log_folder(state_dir) / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _SketchpadLog(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError:
        root.addHandler(logging.NullHandler())  # keeps logging's last-resort printing off the terminal
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.getLogger("sketchpad").setLevel(logging.INFO)
    quiet_library_handlers()
    return path


def quiet_library_handlers() -> None:
    """huggingface_hub (on import), diffusers and transformers (on first use) give their loggers a
    handler of their own that writes to the terminal, e.g. every download retry; their records go to
    the log file instead."""
    import huggingface_hub.utils.logging  # noqa: F401  (adds its handler on import: then it can go)

    for name in LIBRARIES:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
