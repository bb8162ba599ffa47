"""A request's LoRAs (and ControlNet) on a ComfyUI server: nothing is uploaded; each must be a file the
server has (its models/loras, models/controlnet).

ComfyUI reads LoRAs from its own models/loras folder and lists them in /object_info (LoraLoader's
lora_name). A request names a LoRA by a local path, a Hugging Face id or a server file name; all three
map to the server file with the same name (AUTOMATIC1111's name: the file name without .safetensors).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePath

from ...core.errors import SketchpadError
from ...core.hashes import lora_short_hash
from ...core.params import LoraSpec

SHOWN = 5  # server LoRAs named in the error line


def server_lora_name(spec: LoraSpec, available: list[str]) -> str | None:
    """The server's file for this LoRA, or None when it has none by that name."""
    return server_file(spec.source, available)


def server_file(source: str, available: list[str]) -> str | None:
    """The server's .safetensors file named like `source` (a path, a Hub id or a server name), or None."""
    if source in available:
        return source
    wanted = _stem(source).lower()
    for name in available:
        if _stem(name).lower() == wanted:
            return name
    return None


def missing_lora(spec: LoraSpec, available: list[str]) -> SketchpadError:
    return missing_model("LoRA", spec.source, available, "models/loras")


def missing_model(kind: str, source: str, available: list[str], folder: str) -> SketchpadError:
    name = _stem(source)
    asked = name if source in (name, name + ".safetensors") else f"{name} ({source})"
    if not available:
        return SketchpadError(f"the ComfyUI server has no {kind} {asked}; it has none: put {name}.safetensors "
                              f"in its {folder} folder")
    shown = ", ".join(available[:SHOWN]) + (f" (and {len(available) - SHOWN} more)" if len(available) > SHOWN else "")
    return SketchpadError(f"the ComfyUI server has no {kind} {asked}; it has: {shown}")


def with_local_hash(spec: LoraSpec) -> LoraSpec:
    """The spec with AUTOMATIC1111's hash when its source is a file on this computer (the server's
    copy cannot be read from here; the same name is taken to be the same file)."""
    path = Path(spec.source).expanduser()
    if spec.short_hash or not path.is_file():
        return spec
    try:
        return dataclasses.replace(spec, short_hash=lora_short_hash(path))
    except OSError:
        return spec


def _stem(server_name: str) -> str:
    last = PurePath(server_name.replace("\\", "/")).name  # servers on Windows list sub\folder\file
    return last[: -len(".safetensors")] if last.lower().endswith(".safetensors") else last
