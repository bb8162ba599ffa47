"""Making a saved picture again: the settings and the sketch it carries, and the model it names.

A result PNG carries its settings (the `parameters` chunk) and its sketch (storage.read_embedded);
a contact sheet carries its sweep and every cell's settings (contact_sheet.read_sheet), so running
a sheet again runs its whole sweep.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .contact_sheet import read_sheet
from .errors import ModelError, SketchpadError
from .sources import DEFAULT_MODEL, resolve_model_source
from .storage import ResultInfo, read_embedded_sketch, read_png_parameters


@dataclass(frozen=True)
class Rerun:
    info: ResultInfo  # the settings; of a sheet, its first finished cell's
    sketch: Image.Image
    sweep: tuple[str | None, tuple, int] | None = None  # a sheet's axis, values and batch count


def read_rerun(path) -> Rerun:
    """What `path` was made from. Raises SketchpadError, in one line, for a PNG without settings or
    without a sketch inside, and for damaged ones."""
    path = Path(path)
    sketch = read_embedded_sketch(path)  # first: it says which part of a damaged file is damaged
    info = read_png_parameters(path)
    sweep = None
    if info is None:
        sheet = read_sheet(path)
        if sheet is None:
            raise SketchpadError(f"{path.name} has no Sketchpad settings to run again")
        finished = [cell.info for cell in sheet.cells if cell.info is not None]
        if not finished:
            raise SketchpadError(f"{path.name} is a contact sheet none of whose pictures was made")
        info = finished[0]
        info = ResultInfo(info.params.replace(seed=sheet.seeds[0]), info.width, info.height, info.model_name,
                          info.sampler)
        sweep = (sheet.axis, sheet.values, len(sheet.seeds))
    if sketch is None:
        raise SketchpadError(f"{path.name} carries no sketch (saved without it, or by another program): "
                             "give the sketch and its settings instead")
    return Rerun(info, sketch, sweep)


def find_model_here(name: str) -> str | None:
    """A model source on this computer for the name a picture's Model field gives (a folder's or
    file's name, a Hub repository's last part), or None. Looks in the current folder and in the
    Hugging Face cache; never on the network."""
    if not name.strip():
        return None
    for candidate in (name, f"{name}.safetensors"):
        try:
            if resolve_model_source(candidate).kind != "hub":
                return candidate
        except ModelError:
            pass
    if name == DEFAULT_MODEL.rsplit("/", 1)[-1]:
        return DEFAULT_MODEL
    cached = _cached_repositories(name)
    return cached[0] if len(cached) == 1 else None


def _cached_repositories(name: str) -> list[str]:
    """Hugging Face model repositories `owner/name` in the local cache."""
    from huggingface_hub import constants

    try:
        folders = Path(constants.HF_HUB_CACHE).glob(f"models--*--{glob.escape(name)}")
        return [folder.name.removeprefix("models--").replace("--", "/", 1) for folder in folders]
    except OSError:
        return []
