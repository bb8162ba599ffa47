"""Opening the backend the person chose: the one place the worker turns a model choice into a Backend.

The local engine, or a ComfyUI server when `server` names one. Heavy imports (torch,
diffusers) happen here, on the thread that loads, never at the window's start.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from ..core.backend import Backend
from ..core.errors import ServerState


def open_backend(
    model: str | None,
    device: str,
    progress: Callable[[str], None],
    server: str | None = None,
    notify: Callable[[str], None] | None = None,
    on_state: Callable[[ServerState], None] | None = None,
) -> Backend:
    """A ready backend for `model` (Hub id, folder or .safetensors file) on `device`, or on `server`.

    `progress` gets one line per loading stage, `notify` later notices (e.g. previews falling back),
    `on_state` a server's connection state (ServerState) as it changes after connecting.
    Raises SketchpadError with a message for the person (and its kind) when it cannot; a checkpoint
    the server lacks is a MissingModel carrying the server's checkpoints.
    """
    if server is not None:
        return _open_server(server, model, progress, notify, on_state)
    from .local.img2img import Img2ImgEngine
    from ..core.sources import resolve_model_source
    from .local.models import load_pipeline, pick_device

    source = resolve_model_source(model)
    torch_device = pick_device(device)
    pipe = load_pipeline(source, torch_device, progress=progress)
    return Img2ImgEngine(pipe, source.name, notify=notify)


def _open_server(server: str, model: str | None, progress, notify, on_state=None) -> Backend:
    # torch-free: a person with only a server needs no torch
    from ..core.server_address import TOKEN_ENV, parse_server_url
    from .comfy.client import ComfyBackend

    address = parse_server_url(server).base
    progress(f"Connecting to the ComfyUI server at {address}")
    say = notify or progress

    def state_changed(state: ServerState) -> None:  # a dropped connection and its recovery show in the status line
        if state is not ServerState.CLOSED:
            say(f"ComfyUI server {address}: {state.value}")
        if on_state is not None:
            on_state(state)

    backend = ComfyBackend(server, model, token=os.environ.get(TOKEN_ENV) or None, notify=say)
    backend.on_state = state_changed  # after connecting: the first "ready" is the progress line below
    progress(f"Connected: {backend.model_name} on {backend.device_name} at {backend.server}")
    return backend


def close_backend(backend) -> None:
    """Let a backend free what it holds (weights, hooks, connections) now rather than at a collection."""
    close = getattr(backend, "close", None)
    if close is not None:
        close()


def release_cached_memory() -> None:
    """Hand the CUDA allocator's cached blocks back once a model is gone, for the next one or other programs."""
    torch = sys.modules.get("torch")  # never imported just for this
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
