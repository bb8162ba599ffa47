"""What the window remembers between runs (QSettings): model, device, folders, request, layout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

from ..core.errors import SketchpadError
from ..core.params import ControlSpec, GenerationParams, LoraSpec
from ..core.server_address import display_address
from .generation_panel import GenerationPanel
from .session import Session

log = logging.getLogger(__name__)

_PARAM_FIELDS = ("prompt", "negative_prompt", "strength", "start_at_step", "steps", "cfg", "seed", "scheduler",
                 "preview_method", "preset", "loras", "control")


DEFAULT_ARCHIVE_BYTES = 1 << 30  # the space kept results take by default: ~1000 results at 512x512


def params_to_dict(params: GenerationParams) -> dict:
    """Plain JSON values: LoRAs as [{source, weight}], the ControlNet as {model, strength, start, end} or None."""
    values = {name: getattr(params, name) for name in _PARAM_FIELDS}
    values["loras"] = [{"source": lora.source, "weight": lora.weight} for lora in params.loras]
    control = params.control
    values["control"] = None if control is None else {"model": control.model, "strength": control.strength,
                                                      "start": control.start, "end": control.end}
    return values


def params_to_json(params: GenerationParams) -> str:
    return json.dumps(params_to_dict(params))


def params_from_json(text: str) -> GenerationParams | None:
    """The saved request, or None if it is missing or no longer valid (then defaults apply)."""
    try:
        return params_from_dict(json.loads(text))
    except ValueError:
        return None


def params_from_dict(values) -> GenerationParams | None:
    try:
        fields = {k: values[k] for k in _PARAM_FIELDS if k in values}
        if "loras" in fields:
            fields["loras"] = tuple(LoraSpec(source=lora["source"], weight=lora["weight"]) for lora in fields["loras"])
        if fields.get("control") is not None:
            fields["control"] = ControlSpec(**{k: fields["control"][k] for k in ("model", "strength", "start", "end")})
        return GenerationParams(**fields).validated()
    # what an old or hand-edited value raises: not a mapping or list, a key missing, a value refused.
    # Anything else is a bug in this code and must show, not pass for "no settings".
    except (KeyError, TypeError, ValueError, SketchpadError) as error:
        log.warning("the remembered request is not usable, defaults apply: %s", error)
        return None


def save_session(settings: QSettings, session: Session) -> None:
    model = session.model
    settings.setValue("model", model.model)
    settings.setValue("device", model.device)
    # the server's address without any user:password: a settings file is readable by more than its
    # owner and gets copied around; credentials last for the session (or come from the token variable)
    settings.setValue("backend", model.backend)
    settings.setValue("server_url", display_address(model.server_url) if model.server_url else "")
    settings.setValue("server_model", model.server_model)
    settings.setValue("output_dir", str(session.output_dir))
    settings.setValue("last_folder", str(session.last_folder or ""))
    settings.setValue("params", params_to_json(session.request))
    settings.setValue("embed_sketch", session.embed_sketch)
    if session.archive is not None:
        settings.setValue("archive_bytes", session.archive.max_bytes)


def restore_session(settings: QSettings, session: Session, model: str | None = None, device: str | None = None,
                    output_dir: Path | None = None, server: str | None = None) -> None:
    """What the last session chose; the command line's choices win over it.

    `--server` makes `model` a checkpoint name; `--model` alone means this computer's model."""
    remembered_server = _text(settings.value("backend")) == "comfyui"
    choice = {"model": _text(settings.value("model")), "device": device or _text(settings.value("device")),
              "server_url": _text(settings.value("server_url")),
              "server_model": _text(settings.value("server_model")),
              "backend": "comfyui" if remembered_server else "local"}
    if server:
        choice.update(backend="comfyui", server_url=server)
        if model:
            choice["server_model"] = model
    elif model:
        choice.update(backend="local", model=model)
    session.restore_model(**choice)
    folder = output_dir or _text(settings.value("output_dir"))
    if folder:
        session.set_output_dir(Path(folder))
    last = _text(settings.value("last_folder"))
    session.last_folder = Path(last) if last else None
    session.set_embed_sketch(_bool(settings.value("embed_sketch", True)))
    params = params_from_json(str(settings.value("params", "")))
    if params is not None:
        session.load_request(params)


def save_layout(settings: QSettings, window: QMainWindow, splitter: QSplitter, panel: GenerationPanel) -> None:
    settings.setValue("locked_seed", panel.is_locked())
    settings.setValue("live", panel.is_live())
    settings.setValue("geometry", window.saveGeometry())
    settings.setValue("splitter", splitter.saveState())
    settings.sync()


def restore_layout(settings: QSettings, window: QMainWindow, splitter: QSplitter, panel: GenerationPanel) -> bool:
    """Restore the window's own state; True when the pane sizes were restored too."""
    panel.set_locked(_bool(settings.value("locked_seed", False)))
    panel.set_live(_bool(settings.value("live", False)))
    if settings.value("geometry") is not None:
        window.restoreGeometry(settings.value("geometry"))
    if settings.value("splitter") is not None:
        return bool(splitter.restoreState(settings.value("splitter")))
    return False


def archive_budget(settings: QSettings) -> int:
    try:
        value = int(settings.value("archive_bytes", DEFAULT_ARCHIVE_BYTES))
    except (TypeError, ValueError):
        return DEFAULT_ARCHIVE_BYTES
    return value if value >= 0 else DEFAULT_ARCHIVE_BYTES


def _text(value) -> str | None:
    return str(value) if value not in (None, "") else None


def _bool(value) -> bool:
    return value in (True, "true", "1", 1)
