"""ComfyUI's answers and failures as the one line a person reads, each with its kind."""

from __future__ import annotations

from ...core.errors import FailureKind, MissingModel, ModelError, SketchpadError
from ...core.server_files import listed, missing_model

_IMAGE_LOADERS = ("LoadImage", "LoadImageMask")  # the nodes that read our uploads
_OUT_OF_MEMORY = ("out of memory", "outofmemory", "can't allocate memory", "not enough memory", "cannot allocate memory")


def missing_checkpoint(server: str, name: str | None, available: list[str]) -> MissingModel:
    """The server is up but lacks the checkpoint (or has none at all); the error carries its list."""
    if not available:
        return MissingModel(f"the ComfyUI server at {server} is up but has no checkpoint at all: put an SD1.5 "
                            ".safetensors checkpoint in its models/checkpoints folder")
    return MissingModel(f"the ComfyUI server at {server} is up but has no checkpoint {name!r}; "
                        f"it has: {listed(available)}", available)


def rejected_prompt(body, server: str, checkpoints: list[str], loras: list[str],
                    controlnets: list[str]) -> SketchpadError:
    """HTTP 400 from POST /prompt: the first node error in plain words."""
    body = body if isinstance(body, dict) else {}
    for node_id, node in (body.get("node_errors") or {}).items():
        for error in node.get("errors") or []:
            details = error.get("details") or error.get("message") or "invalid input"
            extra = error.get("extra_info") or {}
            name, gone = extra.get("input_name"), str(extra.get("received_value", "?"))
            # a file removed from the server between our look and the job
            if name == "ckpt_name":
                return missing_checkpoint(server, gone, [item for item in checkpoints if item != gone])
            for field, kind, names, folder in (("lora_name", "LoRA", loras, "models/loras"),
                                               ("control_net_name", "ControlNet", controlnets, "models/controlnet")):
                if name == field:
                    return missing_model(kind, gone, [item for item in names if item != gone], folder)
            return SketchpadError(f"the ComfyUI server rejected the request: {node.get('class_type', 'node ' + node_id)}: "
                                  f"{_first_line(details)}", FailureKind.REFUSED)
    error = body.get("error")
    if isinstance(error, dict):
        text = error.get("message") or error.get("type") or "invalid prompt"
        if error.get("details"):
            text += f" ({_first_line(error['details'])})"
        return SketchpadError(f"the ComfyUI server rejected the request: {_first_line(text)}", FailureKind.REFUSED)
    return SketchpadError("the ComfyUI server rejected the request (HTTP 400)", FailureKind.REFUSED)


def names_missing_image(body) -> bool:
    """True when the only complaint is LoadImage (or LoadImageMask) not finding its file."""
    errors = (body or {}).get("node_errors") if isinstance(body, dict) else None
    if not errors:
        return False
    return all(node.get("class_type") in _IMAGE_LOADERS for node in errors.values())


def execution_failed(data: dict) -> SketchpadError:
    """execution_error: the server's own exception, its type and message being all it tells."""
    message = str(data.get("exception_message") or "").strip()
    kind = str(data.get("exception_type") or "")
    node = data.get("node_type") or "a node"
    if any(word in (message + " " + kind).lower() for word in _OUT_OF_MEMORY):
        return SketchpadError(f"the ComfyUI server ran out of memory in {node}; try a smaller picture or fewer "
                              "models loaded on the server", FailureKind.OUT_OF_MEMORY)
    return SketchpadError(f"the ComfyUI server failed in {node}: {_first_line(message) or kind or 'unknown error'}",
                          FailureKind.SERVER_FAILED)


def _first_line(text: str, limit: int = 200) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
