"""ComfyUI's error answers turned into the one line a person reads."""

from __future__ import annotations

from ...core.errors import SketchpadError
from .loras import missing_model

_OUT_OF_MEMORY = ("out of memory", "outofmemory", "can't allocate memory", "not enough memory", "cannot allocate memory")


def rejected_prompt(body, checkpoints: list[str] | None = None, loras: list[str] | None = None,
                    controlnets: list[str] | None = None) -> SketchpadError:
    """HTTP 400 from POST /prompt: the first node error in plain words."""
    body = body if isinstance(body, dict) else {}
    for node_id, node in (body.get("node_errors") or {}).items():
        for error in node.get("errors") or []:
            details = error.get("details") or error.get("message") or "invalid input"
            name = (error.get("extra_info") or {}).get("input_name")
            if name == "ckpt_name":
                return missing_checkpoint((error.get("extra_info") or {}).get("received_value", "?"), checkpoints or [])
            for field, kind, listed, folder in (("lora_name", "LoRA", loras, "models/loras"),
                                                ("control_net_name", "ControlNet", controlnets, "models/controlnet")):
                if name == field:  # removed from the server between our look and the job
                    gone = str((error.get("extra_info") or {}).get("received_value", "?"))
                    return missing_model(kind, gone, [item for item in listed or [] if item != gone], folder)
            return SketchpadError(f"the ComfyUI server rejected the request: {node.get('class_type', 'node ' + node_id)}: "
                                  f"{_first_line(details)}")
    error = body.get("error")
    if isinstance(error, dict):
        text = error.get("message") or error.get("type") or "invalid prompt"
        if error.get("details"):
            text += f" ({_first_line(error['details'])})"
        return SketchpadError(f"the ComfyUI server rejected the request: {_first_line(text)}")
    return SketchpadError("the ComfyUI server rejected the request (HTTP 400)")


def names_missing_image(body) -> bool:
    """True when the only complaint is LoadImage not finding its file."""
    errors = (body or {}).get("node_errors") if isinstance(body, dict) else None
    if not errors:
        return False
    return all(node.get("class_type") == "LoadImage" for node in errors.values())


def missing_checkpoint(name: str, available: list[str]) -> SketchpadError:
    if not available:
        return SketchpadError(f"the ComfyUI server has no checkpoint {name!r}; it has none: put one in its models/checkpoints folder")
    shown = ", ".join(available[:5]) + (f" (and {len(available) - 5} more)" if len(available) > 5 else "")
    return SketchpadError(f"the ComfyUI server has no checkpoint {name!r}; it has: {shown}")


def execution_failed(data: dict) -> SketchpadError:
    message = str(data.get("exception_message") or "").strip()
    kind = str(data.get("exception_type") or "")
    node = data.get("node_type") or "a node"
    if any(word in (message + " " + kind).lower() for word in _OUT_OF_MEMORY):
        return SketchpadError(f"the ComfyUI server ran out of memory in {node}; try a smaller picture or fewer "
                              "models loaded on the server")
    return SketchpadError(f"the ComfyUI server failed in {node}: {_first_line(message) or kind or 'unknown error'}")


def _first_line(text: str, limit: int = 200) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
