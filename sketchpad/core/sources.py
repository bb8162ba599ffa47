"""What `--model` names, decided without torch: a diffusers folder, a .safetensors file or a Hub id.

Torch-free so the window can check a chosen model before handing it to the worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import SketchpadError

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "hub", "folder" or "file"
    location: str

    @property
    def name(self) -> str:
        """A short display name, also written into saved pictures' metadata."""
        if self.kind == "hub":
            return self.location.split("/")[-1]
        return Path(self.location).stem if self.kind == "file" else Path(self.location).name


def resolve_model_source(text: str | None) -> ModelSource:
    """Decide what `--model` names: an existing folder or .safetensors file, else a Hugging Face id."""
    text = (text or DEFAULT_MODEL).strip()
    path = Path(text).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise SketchpadError(
            f"{text} is a pickled checkpoint, which can run code when loaded; Sketchpad does not open those.\n"
            "Convert it to .safetensors (e.g. with diffusers' conversion scripts) or use a diffusers folder."
        )
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise SketchpadError(f"{text} is not a diffusers model folder (it has no model_index.json)")
        return ModelSource("folder", str(path.resolve()))
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise SketchpadError(f"{text} is not a model Sketchpad can load: give a .safetensors file or a folder")
        return ModelSource("file", str(path.resolve()))
    if _HUB_ID.match(text) and not text.startswith((".", "~")) and not path.suffix.lower() == ".safetensors":
        return ModelSource("hub", text)
    raise SketchpadError(f"model not found: {text} (give a folder, a .safetensors file or a Hugging Face id)")
