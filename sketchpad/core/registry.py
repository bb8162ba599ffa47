"""The app's fixed choices, each defined once: schedulers and their names, devices, backends, and
where results go by default. Shared by the CLI, the window and the engines; torch- and Qt-free.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

# Our scheduler ids, in menu order, with the names AUTOMATIC1111 writes into its PNGs (and people know).
SCHEDULER_LABELS = {
    "pndm": "PLMS", "ddim": "DDIM", "euler": "Euler", "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_karras": "DPM++ 2M Karras", "lcm": "LCM",
    "ddim_trailing": "DDIM Trailing",
}  # fmt: skip
SCHEDULERS = tuple(SCHEDULER_LABELS)

DEVICES = ("auto", "cpu", "cuda", "mps")

# Where a request runs: this machine, or (issue 7) a ComfyUI server at a URL.
BACKENDS = {"local": "This computer", "comfyui": "ComfyUI server"}
DEFAULT_BACKEND = "local"


def scheduler_label(name: str | None) -> str:
    if name is None:
        return "Model default"
    return SCHEDULER_LABELS.get(name, name)


def default_output_dir(environ=None, home: Path | None = None) -> Path:
    """<Pictures>/Sketchpad, where <Pictures> is the desktop's own (localised) pictures folder.

    Freedesktop keeps it in $XDG_PICTURES_DIR or in user-dirs.dirs (e.g. "$HOME/Bilder"); Qt's
    PicturesLocation reads the same file, so the CLI and the window agree without Qt here.
    """
    environ = os.environ if environ is None else environ
    home = Path(home or environ.get("HOME") or Path.home())
    pictures = environ.get("XDG_PICTURES_DIR") or _user_dirs_pictures(environ, home) or str(home / "Pictures")
    return Path(os.path.expanduser(pictures) if pictures.startswith("~") else pictures) / "Sketchpad"


def _user_dirs_pictures(environ, home: Path) -> str | None:
    config = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    try:
        text = (config / "user-dirs.dirs").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        match = re.fullmatch(r"\s*XDG_PICTURES_DIR\s*=\s*(.+?)\s*", line)
        if match:
            try:
                (value,) = shlex.split(match[1])
            except ValueError:
                return None
            value = value.replace("$HOME", str(home))
            # the spec allows only "$HOME/..." or an absolute path; "$HOME/" alone means "disabled"
            if os.path.isabs(value) and Path(value) != home:
                return value
    return None
