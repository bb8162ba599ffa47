"""What the window remembers between runs (QSettings): model, device, folders, request, layout."""

from __future__ import annotations

import json

from ..core.params import GenerationParams

_PARAM_FIELDS = ("prompt", "negative_prompt", "strength", "start_at_step", "steps", "cfg", "seed", "scheduler",
                 "preview_method")


def params_to_json(params: GenerationParams) -> str:
    return json.dumps({name: getattr(params, name) for name in _PARAM_FIELDS})


def params_from_json(text: str) -> GenerationParams | None:
    """The saved request, or None if it is missing or no longer valid (then defaults apply)."""
    try:
        values = json.loads(text)
        return GenerationParams(**{k: values[k] for k in _PARAM_FIELDS if k in values}).validated()
    except Exception:  # an old or hand-edited settings file must never stop the app from opening
        return None


def save_settings(window) -> None:
    s = window.settings
    s.setValue("model", window.model)
    s.setValue("device", window.device)
    s.setValue("output_dir", str(window.output_dir))
    s.setValue("params", params_to_json(window.panel.params(for_live=True)))
    s.setValue("locked_seed", window.panel.is_locked())
    s.setValue("live", window.panel.is_live())
    s.setValue("geometry", window.saveGeometry())
    s.setValue("splitter", window.splitter.saveState())
    s.sync()


def restore_settings(window) -> None:
    s = window.settings
    params = params_from_json(str(s.value("params", "")))
    if params is not None:
        window.panel.set_params(params)
    window.panel.set_locked(_bool(s.value("locked_seed", False)))
    window.panel.set_live(_bool(s.value("live", False)))
    if s.value("geometry") is not None:
        window.restoreGeometry(s.value("geometry"))
    if s.value("splitter") is not None:
        window._layout_restored = window.splitter.restoreState(s.value("splitter"))


def _bool(value) -> bool:
    return value in (True, "true", "1", 1)
