"""How a name the person gives finds a file on a ComfyUI server: one rule for checkpoints, LoRAs and
ControlNets, used by the client and by the window (to flag a name the server lacks as it is typed).

A request names a server file by a local path, a Hugging Face id or the server's own name, with or
without its extension: each looks for the server file with the same name (`ink`, `~/loras/ink.safetensors`
and `someone/ink` all find `ink.safetensors`, also in a sub-folder such as `styles/ink.safetensors`).
"""

from __future__ import annotations

from pathlib import PurePath

from .errors import ModelError

SHOWN = 5  # names listed in a message before "(and N more)"
# the extensions ComfyUI lists model files with (folder_paths.supported_pt_extensions)
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl")


def server_file(source: str, available: list[str] | tuple[str, ...]) -> str | None:
    """The server's file named like `source`, or None when it has none by that name."""
    if source in available:
        return source
    wanted = file_stem(source).lower()
    for name in available:
        if file_stem(name).lower() == wanted:
            return name
    return None


def file_stem(name: str) -> str:
    """The name without folders and without a model file extension."""
    last = PurePath(name.replace("\\", "/")).name  # servers on Windows list sub\folder\file
    for extension in MODEL_EXTENSIONS:
        if last.lower().endswith(extension):
            return last[: -len(extension)]
    return last


def missing_model(kind: str, source: str, available: list[str] | tuple[str, ...], folder: str) -> ModelError:
    """A LoRA or ControlNet the server lacks (it never gets one uploaded), in the words the client
    and the window both use."""
    name = file_stem(source)
    asked = name if source in (name, name + ".safetensors") else f"{name} ({source})"
    if not available:
        return ModelError(f"the ComfyUI server has no {kind} {asked}; it has none: put {name}.safetensors "
                          f"in its {folder} folder")
    return ModelError(f"the ComfyUI server has no {kind} {asked}; it has: {listed(available)}")


def listed(names: list[str] | tuple[str, ...]) -> str:
    names = list(names)
    return ", ".join(names[:SHOWN]) + (f" (and {len(names) - SHOWN} more)" if len(names) > SHOWN else "")
