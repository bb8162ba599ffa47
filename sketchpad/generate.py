"""The headless `generate` command: check everything first, then load, run and save atomically."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from PIL import Image

from .cli import params_from_args
from .core.errors import SketchpadError
from .core.hub import local_files_only
from .core.images import load_sketch
from .core.registry import default_output_dir
from .core.sources import resolve_control_source, resolve_lora_source, resolve_model_source
from .core.storage import ResultInfo, next_free_path, save_png, save_result
from .logs import setup_logging

log = logging.getLogger(__name__)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_generate(args) -> int:
    setup_logging()
    try:
        return _generate(args)
    except SketchpadError:  # the person reads its one line; the log keeps the chain of causes
        log.warning("generate failed", exc_info=True)
        raise


def _generate(args) -> int:
    # Every check that can fail on bad input runs before the (slow) model load and before any write.
    params = params_from_args(args).with_concrete_seed()
    sketch = _load_sketch(args.sketch, params)
    out = _output_path(args.out, args.overwrite)
    if args.previews is not None:
        _check_writable_folder(args.previews)
    if not args.server:  # before torch loads: weights that cannot be had are said in seconds
        _check_weights(resolve_model_source(args.model), params)

    # the window's own way in: torch only for this computer; a server needs none, and Ctrl+C there
    # removes our prompt from its queue
    from .backends.loading import close_backend, open_backend

    started = time.perf_counter()
    # a server answers at once: its connecting lines are worth saying only once it did (a failure is one line)
    connecting: list[str] = []
    backend = open_backend(args.model, args.device, connecting.append if args.server else say, server=args.server,
                           notify=say)
    for line in connecting:
        say(line)
    try:
        say(f"Model ready in {time.perf_counter() - started:.1f} s")
        # why nothing happens yet on a server (a queue ahead, a model loading) is said once per change
        result = backend.generate(params, sketch, on_step=_step_reporter(args.previews),
                                  on_waiting=lambda waiting: waiting.text and say(waiting.text))
    finally:
        close_backend(backend)
    saved = save_result(result.image, ResultInfo.of(result, backend.model_name), out, overwrite=args.overwrite)
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


def _check_weights(source, params) -> None:
    """The model, LoRAs and ControlNet exist, and what comes from the Hub is downloaded or can be
    (a cache lookup, and one quick probe of the Hub when something is missing)."""
    sources = [source, *(resolve_lora_source(lora.source) for lora in params.loras)]
    if params.control is not None:
        sources.append(resolve_control_source(params.control.model))
    for each in sources:
        local_files_only(each)


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
