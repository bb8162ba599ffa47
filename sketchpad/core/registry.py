"""The app's fixed choices, each defined once: schedulers and their names, devices, backends, and
where results go by default. Shared by the CLI, the window and the engines; torch- and Qt-free.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

# Our scheduler ids, in menu order, with the names AUTOMATIC1111 writes into its PNGs (and people know).
SCHEDULER_LABELS = {
    "pndm": "PLMS", "ddim": "DDIM", "euler": "Euler", "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_karras": "DPM++ 2M Karras", "lcm": "LCM",
    "ddim_trailing": "DDIM Trailing", "euler_trailing": "Euler Trailing", "tcd": "TCD",
}  # fmt: skip
SCHEDULERS = tuple(SCHEDULER_LABELS)

DEVICES = ("auto", "cpu", "cuda", "mps")
# The UNet's number format; auto: fp16 on CUDA, bf16 on CPUs with bf16 instructions, else fp32
DTYPES = ("auto", "fp32", "bf16", "fp16")
DTYPE_ENV = "SKETCHPAD_DTYPE"  # what --dtype sets, for the window's worker and the command line alike

APP_NAME = ORGANIZATION_NAME = "Sketchpad"  # what Qt names the app's own folders after

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


def app_state_dir(environ=None, home: Path | None = None, platform: str = sys.platform) -> Path:
    """The app's own data folder (kept results, recovery, logs): Qt's AppDataLocation for this app,
    computed without Qt so that the command line writes its log where the window does."""
    environ = os.environ if environ is None else environ
    home = Path(home or environ.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        data_home = environ.get("XDG_DATA_HOME", "")
        base = Path(data_home) if os.path.isabs(data_home) else home / ".local" / "share"  # Qt ignores a relative one
    return base / ORGANIZATION_NAME / APP_NAME


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
