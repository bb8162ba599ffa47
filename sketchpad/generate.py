"""The headless `generate` command: check everything first, then load, run and save atomically.

One picture here; a sweep or batch (several pictures from one request) in sweep_command.py.
`--rerun` starts from the settings and sketch inside a saved PNG, changed by the options given.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .cli import params_from_args
from .core.errors import SketchpadError
from .core.hub import local_files_only
from .core.images import load_sketch, prepare_sketch, to_rgb_picture
from .core.params import GenerationParams
from .core.registry import default_output_dir
from .core.rerun import find_model_here, read_rerun
from .core.sources import resolve_control_source, resolve_lora_source, resolve_model_source
from .core.storage import ResultInfo, next_free_path, save_png, save_result
from .core.sweep import parse_sweep
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
    request = prepare_request(args)
    if request.several:
        from .sweep_command import run_sweep_command

        return run_sweep_command(args, request)
    out = _output_path(args.out, args.overwrite)
    if args.previews is not None:
        check_writable_folder(args.previews)
    check_weights(request)

    # the window's own way in: torch only for this computer; a server needs none, and Ctrl+C there
    # removes our prompt from its queue
    from .backends.loading import close_backend, open_backend

    started = time.perf_counter()
    # a server answers at once: its connecting lines are worth saying only once it did (a failure is one line)
    connecting: list[str] = []
    server = request.servers[0] if request.servers else None
    backend = open_backend(request.model, args.device, connecting.append if server else say, server=server,
                           notify=say)
    for line in connecting:
        say(line)
    try:
        say(f"Model ready in {time.perf_counter() - started:.1f} s")
        # why nothing happens yet on a server (a queue ahead, a model loading) is said once per change
        result = backend.generate(request.params, request.sketch, on_step=step_reporter(args.previews),
                                  on_waiting=lambda waiting: waiting.text and say(waiting.text))
    finally:
        close_backend(backend)
    saved = save_result(result.image, ResultInfo.of(result, backend.model_name), out, overwrite=args.overwrite,
                        sketch=request.embedded_sketch)
    say(f"Seed {result.params.seed}, {result.steps_run} steps in {result.seconds:.1f} s")
    print(saved)
    return 0


def _load_sketch(source, params) -> Image.Image:
    """The sketch (a file, or a --rerun's own picture); with a mask, the picture at its own size,
    which the mask must fit."""
    if params.mask is None:
        return load_sketch(source) if isinstance(source, (str, Path)) else prepare_sketch(source)
    from .core.masks import check_mask_fits

    picture = load_sketch(source, keep_size=True) if isinstance(source, (str, Path)) else to_rgb_picture(source)
    check_mask_fits(params.mask, picture.size)
    return picture


@dataclass(frozen=True)
class Request:
    """What the options ask for, checked."""

    params: GenerationParams
    sketch: Image.Image
    model: str | None
    servers: tuple[str, ...]
    embedded_sketch: Image.Image | None  # kept inside saved pictures; None with --no-embed-sketch
    sweep: tuple[str | None, tuple | None, int] | None  # axis, values (None: its defaults), batch count

    @property
    def several(self) -> bool:
        return self.sweep is not None


def prepare_request(args) -> Request:
    """The request, its sketch and model: from the options, or from --rerun's PNG changed by them."""
    servers = tuple(dict.fromkeys(args.server))
    rerun = read_rerun(args.rerun) if args.rerun is not None else None
    params = params_from_args(args, rerun.info.params if rerun else None).with_concrete_seed()
    sketch = _load_sketch(args.sketch if args.sketch is not None else rerun.sketch, params)
    model = args.model if rerun is None or args.model is not None else _rerun_model(args.rerun, rerun, servers)
    sweep = _sweep(args, rerun)
    if len(servers) > 1 and sweep is None:
        raise SketchpadError("several --server spread a --sweep or --batch over them; give one for one picture")
    if sweep is not None and args.out is not None:
        raise SketchpadError("--out names one picture; a sweep or batch writes several: give --out-dir")
    if sweep is None and args.out_dir is not None:
        raise SketchpadError("--out-dir is for a --sweep or --batch; give --out for one picture")
    return Request(params, sketch, model, servers, None if args.no_embed_sketch else sketch, sweep)


def _sweep(args, rerun) -> tuple | None:
    """What several pictures to make: --sweep and --batch, else a contact sheet's own sweep."""
    axis, values, batch = rerun.sweep if rerun is not None and rerun.sweep else (None, None, None)
    if args.sweep is not None:
        axis, values = parse_sweep(args.sweep)
    batch = args.batch if args.batch is not None else batch
    if axis is not None and (args.strength is not None or args.start_at_step is not None):
        raise SketchpadError("a sweep sets the denoise or start step of every picture: leave out "
                             "--strength and --start-at-step")
    return None if axis is None and batch is None else (axis, values, 1 if batch is None else batch)


def _rerun_model(path, rerun, servers) -> str | None:
    """The model a PNG names: on a server, its checkpoint of that name; here, where it can be found."""
    name = rerun.info.model_name
    if servers:
        return name or None
    found = find_model_here(name)
    if found is None:
        raise SketchpadError(f"{path.name} was made with the model {name!r}, which is not found here: give it "
                             "with --model (a folder, a .safetensors file or a Hugging Face id)")
    return found


def check_weights(request: Request) -> None:
    """Before torch loads: weights that cannot be had are said in seconds (a server has its own)."""
    if not request.servers:
        _check_weights(resolve_model_source(request.model), request.params)


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
    check_writable_folder(out.parent)
    return out


def check_writable_folder(folder: Path) -> None:
    folder = folder.expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SketchpadError(f"cannot write into {folder}: it is not a writable folder")


def step_reporter(previews_dir: Path | None, prefix: str = ""):
    def on_step(step) -> None:
        say(f"{prefix}step {step.step}/{step.total}")
        if previews_dir is not None and step.image is not None:
            save_png(Image.fromarray(step.image), previews_dir / f"step-{step.step:03d}.png", {}, overwrite=True)

    return on_step
