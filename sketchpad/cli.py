"""`python main.py generate ...` (headless, same engine and saving code as the app) or the app itself.

Usage lines name the program as it was started (`python main.py`, `sketchpad`, `python -m sketchpad`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .core.errors import SketchpadError
from .core.lora_text import parse_lora
from .core.params import (DEFAULT_MASK_BLUR, DEFAULT_MASK_PADDING, MASK_AREAS, PRESETS, PREVIEW_METHODS, ControlSpec,
                          GenerationParams, MaskSpec)
from .core.registry import DEVICES, DTYPE_ENV, DTYPES, SCHEDULERS

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the problem, not a usage dump."""

    def error(self, message: str):
        raise SketchpadError(f"{message} (see: {self.prog} --help)")


DEVICE_HELP = "where to run: auto picks CUDA, then Apple MPS, then the CPU"
DTYPE_HELP = ("the UNet's number format: auto is fp16 on CUDA, bf16 on CPUs with bf16 instructions "
              "(AVX512-BF16, AMX), else fp32; fp32 gives pictures bit for bit as diffusers does")
PREVIEW_HELP = ("how step previews are drawn: latent2rgb (nearly free), taesd (tiny decoder), "
                "vae (full decode, slow)")


def program_name(argv0: str) -> str:
    """How the person started us: the entry point's name, `python main.py` or `python -m sketchpad`."""
    name = Path(argv0).name
    if name == "__main__.py":
        return "python -m sketchpad"
    if name.endswith(".py"):
        return f"python {name}"
    return name or "sketchpad"


def build_generate_parser(program: str = "python main.py") -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=f"{program} generate", description="Turn a sketch into a picture, headless.")
    parser.add_argument("sketch", nargs="?", type=Path, help="the sketch: any image file (with --rerun: instead of "
                        "the one inside the PNG)")
    # not required by argparse: --rerun brings its own (parse_generate_args says what is missing)
    parser.add_argument("--prompt", help="what the picture should show")
    parser.add_argument("--negative", help="what it should not show")
    knob = parser.add_mutually_exclusive_group()
    knob.add_argument("--strength", type=_number, help="denoise 0..1 (default 0.75): how much of the sketch is redrawn")
    knob.add_argument("--start-at-step", type=_whole, help="start at step K of --steps instead (0 = from noise)")
    # None = not given, so that an explicit value wins over a preset's
    parser.add_argument("--steps", type=_whole, default=None, help="steps that run (default 20, or the preset's)")
    parser.add_argument("--cfg", type=_number, default=None, help="prompt guidance scale (default 7.5, or the preset's)")
    parser.add_argument("--seed", type=_whole, help="noise seed; -1 or none picks one (default)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default=None,
                        help="default: the model's own, or the preset's")
    parser.add_argument("--preset", choices=PRESETS, default=None,
                        help="set sampler, steps, CFG and a few-step LoRA at once (quality, lcm, hyper, lightning, "
                        "turbo), the model family's own")
    parser.add_argument("--lora", action="append", default=[], metavar="FILE_OR_ID[:WEIGHT]",
                        help="a .safetensors LoRA or Hugging Face id, weight 1 unless given; repeatable")
    parser.add_argument("--control", default=None, metavar="MODEL",
                        help="keep the sketch's lines: a scribble ControlNet (Hugging Face id, folder or .safetensors)")
    parser.add_argument("--control-strength", type=_number, default=None, help="ControlNet strength 0..2 (default 1)")
    parser.add_argument("--control-range", default=None, metavar="START:END",
                        help="the part of the steps the ControlNet steers, as fractions (default 0:1)")
    parser.add_argument("--mask", type=Path, default=None, metavar="MASK.png",
                        help="redo only part of the sketch: an image of its size whose white pixels (with "
                        "transparency: its opaque ones) are redone; the rest stays as it is, pixel for pixel")
    parser.add_argument("--mask-blur", type=_whole, default=None, metavar="PX",
                        help=f"feather the mask's edge by this many pixels (default {DEFAULT_MASK_BLUR})")
    parser.add_argument("--inpaint-area", choices=MASK_AREAS, default=None,
                        help="work on the whole picture, or only the masked area at the model's native size "
                        "(default auto: masked while the mask's bounding box covers less than half the picture)")
    parser.add_argument("--padding", type=_whole, default=None, metavar="PX",
                        help="context around the masked area, with --inpaint-area masked "
                        f"(default {DEFAULT_MASK_PADDING})")
    parser.add_argument("--model", default=None, help="Hugging Face id, diffusers folder or .safetensors file "
                        "(with --server: one of the server's checkpoints, default its first)")
    parser.add_argument("--server", action="append", default=[], metavar="URL",
                        help="generate on a ComfyUI server, e.g. http://127.0.0.1:8188 (user:password@ allowed; "
                        "a bearer token goes in SKETCHPAD_SERVER_TOKEN); repeat it to spread a sweep or batch "
                        "over several servers")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help=f"{DEVICE_HELP} (default auto)")
    parser.add_argument("--dtype", choices=DTYPES, default=None, help=f"{DTYPE_HELP} (default auto)")
    parser.add_argument("--out", type=Path, help="where to save the PNG (default: next free name in the output folder)")
    parser.add_argument("--overwrite", action="store_true", help="allow replacing an existing --out")
    parser.add_argument("--previews", type=Path, help="also write one PNG per step into this folder")
    parser.add_argument("--preview-method", choices=PREVIEW_METHODS[:3], default="latent2rgb",
                        help=f"{PREVIEW_HELP} (default latent2rgb)")
    several = parser.add_argument_group("several pictures at once")
    several.add_argument("--sweep", metavar="AXIS[=V1,V2,...]",
                         help="one picture per value at one seed: denoise=0.3,0.5,0.7 or start=0,1,9,20 (an axis "
                         "alone: denoise 0.2 to 1.0 in five, or the start steps 0, 1, 9, 20 of 20)")
    several.add_argument("--batch", type=_whole, metavar="N", help="N seeds from --seed on (s, s+1, ...); "
                         "with --sweep, every value at every seed")
    several.add_argument("--out-dir", type=Path, metavar="DIR", help="where a sweep or batch writes one PNG per "
                         "picture and sheet.png (default: the next free sweep-NNNN folder in the output folder)")
    again = parser.add_argument_group("making a picture again")
    again.add_argument("--rerun", type=Path, metavar="RESULT.png", help="run again from the sketch and settings "
                       "inside a saved picture (or contact sheet); options given change them")
    again.add_argument("--no-embed-sketch", action="store_true",
                       help="do not keep the sketch inside saved pictures (it lets --rerun make them again)")
    return parser


def parse_generate_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, and say in one line what a run needs and was not given."""
    args = parser.parse_args(argv)
    if args.rerun is None:
        missing = [name for name, value in (("SKETCH", args.sketch), ("--prompt", args.prompt)) if value is None]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _whole(text: str) -> int:
    return int(text)


_number.__name__ = "number"  # argparse names the type in its error message
_whole.__name__ = "whole number"


def parse_control(source: str | None, strength: float | None, span: str | None,
                  base: ControlSpec | None = None) -> ControlSpec | None:
    """The ControlNet the options give; with `base` (a --rerun's), the options given change it."""
    if source is None and base is not None:
        source = base.model
        strength = base.strength if strength is None else strength
        span = f"{base.start!r}:{base.end!r}" if span is None else span
    if source is None:
        if strength is not None or span is not None:
            raise SketchpadError("--control-strength and --control-range need --control MODEL")
        return None
    start, end = 0.0, 1.0
    if span is not None:
        first, colon, second = span.partition(":")
        try:
            if not colon:
                raise ValueError
            start, end = _number(first), _number(second)
        except ValueError as error:
            raise SketchpadError(f"--control-range {span}: give START:END as fractions, e.g. 0:0.8") from error
    return ControlSpec(source, 1.0 if strength is None else strength, start, end).validated()


def parse_mask(path: Path | None, blur: int | None, area: str | None, padding: int | None) -> MaskSpec | None:
    """--mask and its settings -> MaskSpec (the file is read here, so a bad one stops before any work)."""
    if path is None:
        if (blur, area, padding) != (None, None, None):
            raise SketchpadError("--mask-blur, --inpaint-area and --padding need --mask MASK.png")
        return None
    from .core.masks import load_mask

    return MaskSpec.from_image(
        load_mask(path),
        DEFAULT_MASK_BLUR if blur is None else blur,
        "auto" if area is None else area,
        DEFAULT_MASK_PADDING if padding is None else padding,
    ).validated()


def use_dtype(choice: str | None) -> None:
    """--dtype, for whatever loads the model in this process (the engine reads it there)."""
    if choice is not None:
        os.environ[DTYPE_ENV] = choice


def params_from_args(args, base: GenerationParams | None = None) -> GenerationParams:
    """The request the options describe; with `base` (a --rerun's settings), only the options given
    change it. A preset comes before the steps, CFG and scheduler given with it, which win."""
    from .core.families import model_kind
    from .core.presets import apply_preset

    params = base or GenerationParams(prompt="")
    given = {field: getattr(args, option) for option, field in
             (("prompt", "prompt"), ("negative", "negative_prompt"), ("seed", "seed"))
             if getattr(args, option) is not None}
    if args.lora:
        given["loras"] = tuple(parse_lora(text) for text in args.lora)
    control = parse_control(args.control, args.control_strength, args.control_range, params.control)
    if args.mask is not None or params.mask is None:
        mask = parse_mask(args.mask, args.mask_blur, args.inpaint_area, args.padding)
    else:  # a rerun's own mask, with the settings given
        mask = params.mask.replace(**{field: value for field, value in (
            ("blur", args.mask_blur), ("area", args.inpaint_area), ("padding", args.padding)) if value is not None})
    params = params.replace(**given, control=control, mask=mask, preview_method=args.preview_method)
    if args.preset is not None:  # the model family's own version, when the model can be read here
        kind = None if args.server else model_kind(args.model)
        params = apply_preset(params, args.preset, *((kind.family.name, kind.turbo) if kind else ()))
    explicit = {name: getattr(args, name) for name in ("steps", "cfg", "scheduler") if getattr(args, name) is not None}
    if args.strength is not None:
        explicit.update(strength=args.strength, start_at_step=None)
    elif args.start_at_step is not None:
        explicit.update(strength=None, start_at_step=args.start_at_step)
    return params.replace(**explicit).validated()


def main(argv: list[str] | None = None, program: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    program = program or program_name(sys.argv[0])
    if argv[:1] == ["generate"]:
        from .generate import run_generate

        try:
            args = parse_generate_args(build_generate_parser(program), argv[1:])
            use_dtype(args.dtype)
            return run_generate(args)
        except SketchpadError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("cancelled", file=sys.stderr)
            return EXIT_INTERRUPTED
    from .app import run_app

    return run_app(argv, program)
