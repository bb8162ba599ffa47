"""The headless `generate` command: check everything first, then load, run and save atomically."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PIL import Image

from .cli import params_from_args
from .core.registry import default_output_dir
from .core.errors import SketchpadError
from .core.images import load_sketch
from .core.storage import ResultInfo, next_free_path, save_png, save_result


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_generate(args) -> int:
    # Every check that can fail on bad input runs before the (slow) model load and before any write.
    params = params_from_args(args).with_concrete_seed()
    sketch = _load_sketch(args.sketch, params)
    if getattr(args, "server", None):
        return _run_on_server(args, params, sketch)
    from .backends.local.models import pick_device, resolve_model_source

    source = resolve_model_source(args.model)
    device = pick_device(args.device)
    out = _output_path(args.out, args.overwrite)
    _check_add_ons(params)
    if args.previews is not None:
        _check_writable_folder(args.previews)

    from .backends.local.img2img import Img2ImgEngine
    from .backends.local.models import load_pipeline

    started = time.perf_counter()
    pipe = load_pipeline(source, device, progress=say)
    say(f"Model ready in {time.perf_counter() - started:.1f} s")
    engine = Img2ImgEngine(pipe, source.name, notify=say)
    on_step = _step_reporter(args.previews)
    result = engine.generate(params, sketch, on_step=on_step)
    info = ResultInfo(result.params, result.image.width, result.image.height, source.name, result.sampler)
    saved = save_result(result.image, info, out, overwrite=args.overwrite)
    say(f"Seed {result.params.seed}, {result.steps_run} steps in {result.seconds:.1f} s")
    print(saved)
    return 0


def _run_on_server(args, params, sketch) -> int:
    """The same run on a ComfyUI server: torch is never imported; Ctrl+C removes our prompt there."""
    if params.mask is not None:
        raise SketchpadError("--mask with --server comes later: masks on a ComfyUI server are not supported yet; "
                             "leave out --server to inpaint on this computer")
    from .backends.comfy.client import ComfyBackend
    from .backends.comfy.connection import TOKEN_ENV

    out = _output_path(args.out, args.overwrite)
    if args.previews is not None:
        _check_writable_folder(args.previews)
    backend = ComfyBackend(args.server, args.model, token=os.environ.get(TOKEN_ENV) or None, notify=say)
    try:
        say(f"Connected to {backend.server}: {backend.model_name} on {backend.device_name}")
        result = backend.generate(params, sketch, on_step=_step_reporter(args.previews))
    finally:
        backend.close()
    info = ResultInfo(result.params, result.image.width, result.image.height, backend.model_name, result.sampler)
    saved = save_result(result.image, info, out, overwrite=args.overwrite)
    say(f"Seed {result.params.seed}, {result.steps_run} steps in {result.seconds:.1f} s")
    print(saved)
    return 0


def _load_sketch(path, params):
    """The sketch; with a mask, the picture at its own size, which the mask must fit."""
    if params.mask is None:
        return load_sketch(path)
    from .core.masks import check_mask_fits

    picture = load_sketch(path, keep_size=True)
    check_mask_fits(params.mask, picture.size)
    return picture


def _check_add_ons(params) -> None:
    """LoRA files and the ControlNet must be findable before the model loads (cache lookups only)."""
    from .backends.local.controlnet import check_cached, resolve_control_source
    from .backends.local.lora import resolve_lora_file

    for lora in params.loras:
        resolve_lora_file(lora.source)
    if params.control is not None:
        check_cached(resolve_control_source(params.control.model))


def _output_path(out: Path | None, overwrite: bool) -> Path:
    if out is None:
        return next_free_path(default_output_dir())
    out = out.expanduser()
    if out.is_dir():
        raise SketchpadError(f"--out {out} is a folder; give a file name such as {out / 'picture.png'}")
    if out.exists() and not overwrite:
        raise SketchpadError(f"{out} already exists; choose another --out or add --overwrite")
    if out.suffix.lower() != ".png":
        raise SketchpadError(f"--out {out} must end in .png (results are PNGs with their settings inside)")
    _check_writable_folder(out.parent)
    return out


def _check_writable_folder(folder: Path) -> None:
    folder = folder.expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SketchpadError(f"cannot write into {folder}: it is not a writable folder")


def _step_reporter(previews_dir: Path | None):
    def on_step(step) -> None:
        say(f"step {step.step}/{step.total}")
        if previews_dir is not None and step.image is not None:
            save_png(Image.fromarray(step.image), previews_dir / f"step-{step.step:03d}.png", {}, overwrite=True)

    return on_step
