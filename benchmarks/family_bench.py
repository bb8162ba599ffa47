"""Model families, bf16 on the CPU and the one-step turbo preset: engine only, never Qt.

    python -m benchmarks.family_bench [--quick] [--sections sdxl,bf16,turbo] [--models-dir DIR] [--out FILE]

- SDXL: one whole img2img generation (prompt and sketch encoded, the steps, the VAE decode) by the
  engine with latent2rgb previews against diffusers' StableDiffusionXLImg2ImgPipeline over the very
  same modules, running the same UNet steps (DDIM, denoise 0.5, CFG 7.5), fp32, 512x512.
- bf16 against fp32: the same request (Quality, the app's default: PLMS, 20 steps, CFG 7.5) on the same
  model loaded twice, the UNet in bf16 against fp32 (VAE and text encoders fp32 in both), a dial change
  (prompt and sketch cached) to the final picture.
- turbo against Quality: a dial change to the final picture, Quality (the model's PLMS, 20 steps, CFG
  7.5, full VAE decode) against turbo (TCD, 1 step, no CFG, a fused LoRA, TAESD draft decode), in the
  app's own precision for this CPU.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sketchpad.backends.local.img2img import Img2ImgEngine
from sketchpad.backends.local.models import load_pipeline
from sketchpad.backends.local.precision import choose_precision
from sketchpad.core.params import GenerationParams, LoraSpec
from sketchpad.core.presets import apply_preset
from sketchpad.core.sources import resolve_model_source
from sketchpad.tiny_model import write_tiny_model

from . import engine_bench as eb
from .live_bench import stand_in_lora
from .report import Figure

SECTIONS = ("sdxl", "bf16", "turbo")
PROMPT, NEGATIVE, SEED = "a knight in shining armour, oil painting", "blurry", 1234
DIALS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)  # each timed run sees a value not run before


@dataclass(frozen=True)
class Sizes:
    model: str  # "tiny" or "full-size"
    sdxl: tuple[int, int, int] | None  # (size, executed steps, rounds)
    bf16: tuple[tuple[int, int], ...]  # (size, rounds) each
    turbo: tuple[tuple[int, int], ...]  # (size, rounds) each


def plan(quick: bool) -> Sizes:
    if quick:
        return Sizes("tiny", (256, 2, 2), ((256, 2),), ((256, 2),))
    return Sizes("full-size", (512, 2, 2), ((256, 2), (512, 1)), ((256, 2), (512, 1)))


def model_folder(models_dir: Path, family: str, full_size: bool, say) -> Path:
    folder = models_dir / f"{family}-random-{'full' if full_size else 'tiny'}"
    if not (folder / "model_index.json").is_file():
        say(f"writing the {family} random-weight model to {folder} (once)")
        write_tiny_model(folder, full_size=full_size, family=family, progress=lambda line: say(f"  {line}"))
    return folder


def engine_for(folder: Path, dtype: str, ctx) -> Img2ImgEngine:
    pipe = load_pipeline(resolve_model_source(str(folder)), ctx.device, dtype=dtype)
    return Img2ImgEngine(pipe, folder.name, notify=ctx.note)


def _rounds(ctx, rounds: int, variants: dict, what: str) -> tuple[dict[str, list[float]], list[float], list[float]]:
    """Every variant once a round, the order reversed every round: (seconds per variant, ratio of the
    first variant to the second per round, other processes' CPU share per round)."""
    names = list(variants)
    times, ratios, shares = {name: [] for name in names}, [], []
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        got, share = ctx.guard.run(lambda order=order: {name: variants[name]() for name in order},
                                   f"{what} round {index + 1}")
        shares.append(share)
        for name in names:
            times[name].append(got[name])
        ratios.append(got[names[0]] / got[names[1]])
        ctx.say(f"  {what} round {index + 1}: " + ", ".join(f"{name} {got[name]:.2f} s" for name in names))
    return times, ratios, shares


def _load_note(shares: list[float]) -> str:
    return f"other processes' CPU share per round: {', '.join(f'{s:.0%}' for s in shares)}"


# ---- SDXL: the engine against diffusers' img2img -------------------------------------------------
def bench_sdxl(ctx, folder: Path, size: int, steps: int, rounds: int) -> None:
    from diffusers import DDIMScheduler, StableDiffusionXLImg2ImgPipeline

    engine = engine_for(folder, "fp32", ctx)
    pipe, sketch = engine.pipe, eb.stick_figure(size)
    reference = StableDiffusionXLImg2ImgPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2, tokenizer=pipe.tokenizer,
        tokenizer_2=pipe.tokenizer_2, unet=pipe.unet, scheduler=DDIMScheduler.from_config(pipe.scheduler.config),
        requires_aesthetics_score=False, force_zeros_for_empty_prompt=True, add_watermarker=False)
    reference.set_progress_bar_config(disable=True)
    request = GenerationParams(PROMPT, NEGATIVE, strength=0.5, steps=steps, cfg=7.5, seed=SEED, scheduler="ddim")

    def engine_run(at: int = size) -> float:
        eb.clear_caches(engine)  # it pays the text encoders and the VAE encoder, as diffusers does
        start = ctx.clock()
        engine.generate(request, eb.stick_figure(at), lambda step: None, lambda: False)
        return ctx.clock() - start

    def reference_run(at: int = size) -> float:
        start = ctx.clock()
        reference(prompt=PROMPT, negative_prompt=NEGATIVE, image=eb.stick_figure(at), strength=0.5,
                  num_inference_steps=2 * steps, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(SEED))
        return ctx.clock() - start

    with eb.count_calls(pipe.unet) as calls:  # a small warm-up, and proof both run the same UNet steps
        reference_run(min(size, 256))
        theirs, calls[0] = calls[0], 0
        engine_run(min(size, 256))
    if calls[0] != theirs or theirs != steps:
        raise RuntimeError(f"UNet evaluations differ: diffusers {theirs}, engine {calls[0]}")
    times, ratios, shares = _rounds(ctx, rounds, {"engine": engine_run, "diffusers": reference_run}, "SDXL")
    label = f"SDXL {folder.name} {sketch.width}x{sketch.height}, {steps} steps, CFG 7.5, fp32"
    ctx.emit(Figure("SDXL", label, "diffusers StableDiffusionXLImg2ImgPipeline", times["diffusers"], "s"))
    ctx.emit(Figure("SDXL", label, "engine, latent2rgb previews", times["engine"], "s"))
    ratio = statistics.median(ratios)
    ctx.emit(Figure("SDXL", label, "engine / diffusers", ratios, "x", reference="(median over rounds)", ratio=ratio,
                    target="<= 1.03x", passed=ratio <= 1.03, note=_load_note(shares)))


# ---- bf16 against fp32 --------------------------------------------------------------------------
def bench_bf16(ctx, folder: Path, setups) -> None:
    if choose_precision(ctx.device, "auto").name != "bf16":
        ctx.note("this CPU has no bf16 instructions: the app runs fp32 here; bf16 is timed anyway")
    engines = {"bf16": engine_for(folder, "bf16", ctx), "fp32": engine_for(folder, "fp32", ctx)}
    request = apply_preset(GenerationParams(PROMPT, NEGATIVE, seed=SEED), "quality")
    for size, rounds in setups:
        sketch, dials = eb.stick_figure(size), iter(DIALS * (1 + rounds))
        for engine in engines.values():
            engine.generate(request.replace(steps=1), sketch)  # caches the prompt and the sketch

        def dial(name):
            def run() -> float:
                start = ctx.clock()
                engines[name].generate(request.replace(strength=next(dials)), sketch)
                return ctx.clock() - start
            return run

        times, ratios, shares = _rounds(ctx, rounds, {"bf16": dial("bf16"), "fp32": dial("fp32")}, f"bf16 {size}")
        label = f"{folder.name} {size}x{size}, Quality (PLMS 20 steps, CFG 7.5), dial change"
        for name in ("fp32", "bf16"):
            ctx.emit(Figure("bf16 on the CPU", label, f"UNet in {name}", times[name], "s"))
        ratio = statistics.median(ratios)
        ctx.emit(Figure("bf16 on the CPU", label, "bf16 / fp32", ratios, "x", reference="(median over rounds)",
                        ratio=ratio, target="<= 0.6x", passed=ratio <= 0.6, note=_load_note(shares)))


# ---- turbo against Quality ----------------------------------------------------------------------
def bench_turbo(ctx, folder: Path, setups, models_dir: Path) -> None:
    engine = engine_for(folder, "auto", ctx)
    lora = LoraSpec(str(stand_in_lora(engine.pipe, models_dir)))  # Hyper-SD's 1-step LoRA needs a download
    quality = apply_preset(GenerationParams(PROMPT, seed=SEED), "quality")
    turbo = apply_preset(GenerationParams(PROMPT, seed=SEED), "turbo").replace(loras=(lora,), draft=True)
    for size, rounds in setups:
        sketch, dials = eb.stick_figure(size), iter(DIALS * (1 + rounds))
        for params in (quality.replace(steps=1), turbo):  # caches filled, TAESD loaded
            engine.loras.apply(params.loras)
            engine.generate(params, sketch)

        def dial(params):
            def run() -> float:
                engine.loras.apply(params.loras)  # in Live the LoRA stays fused: not the dial's cost
                start = ctx.clock()
                result = engine.generate(params.replace(strength=next(dials)), sketch)
                if result.steps_run == 0:
                    raise RuntimeError("a timed run did not run")
                return ctx.clock() - start
            return run

        times, ratios, shares = _rounds(ctx, rounds, {"quality": dial(quality), "turbo": dial(turbo)}, f"turbo {size}")
        label = f"{folder.name} {size}x{size}, {engine.device_name}"
        ctx.emit(Figure("turbo vs Quality", label, "Quality: PLMS 20 steps, CFG 7.5, VAE decode", times["quality"],
                        "s"))
        ctx.emit(Figure("turbo vs Quality", label, "turbo: TCD 1 step, no CFG, fused LoRA, TAESD decode",
                        times["turbo"], "s"))
        ratio = statistics.median(ratios)
        ctx.emit(Figure("turbo vs Quality", label, "dial change -> final picture, Quality / turbo", ratios, "x",
                        reference="(speed-up; median over rounds)", ratio=ratio, target=">= 8x", passed=ratio >= 8.0,
                        note=_load_note(shares)))
    engine.loras.apply(())


def main(argv=None) -> int:
    from .__main__ import REPO
    from .report import Collected, render_markdown, standalone_parser

    parser = standalone_parser("family_bench", __doc__, REPO / "BENCHMARKS-families.md")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="which of sdxl, bf16, turbo (default: all)")
    args = parser.parse_args(argv)
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    run, sizes, models_dir = Collected(), plan(args.quick), Path(args.models_dir)
    ctx = eb.Context(eb.resolve_device("cpu"), None, emit=run.emit, notes=run.notes,
                     guard=eb.LoadGuard(print, wait_budget=60.0, retries=0))
    full = sizes.model == "full-size"
    started = time.perf_counter()
    if "sdxl" in sections:
        print("\n== SDXL: engine against diffusers ==", flush=True)
        bench_sdxl(ctx, model_folder(models_dir, "sdxl", full, print), *sizes.sdxl)
    sd15 = eb.ensure_model(models_dir, sizes.model, print)
    if "bf16" in sections:
        print("\n== bf16 against fp32 ==", flush=True)
        bench_bf16(ctx, sd15, sizes.bf16)
    if "turbo" in sections:
        print("\n== turbo against Quality ==", flush=True)
        bench_turbo(ctx, sd15, sizes.turbo, models_dir)
    shown = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.family_bench" + ("" if not shown else " " + " ".join(shown))
    rows = eb.machine_rows(ctx)[:3] + eb.machine_rows(ctx)[5:] + [
        ("precision", f"as each figure says; this CPU's own choice: {choose_precision(ctx.device, 'auto').name}"),
        ("run", f"{(time.perf_counter() - started) / 60:.1f} min")]
    text = render_markdown("Sketchpad model families, bf16 and turbo", command, rows, run.figures, INTRO, METHOD,
                           run.notes)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


INTRO = ["SDXL on the engine against diffusers, bf16 against fp32 on the CPU, and the one-step turbo preset "
         "against Quality, measured by the command shown, in one run, on the machine below."]
METHOD = [
    "Random-weight architectures written by `python -m sketchpad.tiny_model` (`--family sdxl --full-size`: "
    "SDXL's UNet 2.6B, its two text encoders and VAE; `--full-size`: SD1.5); random weights cost what trained "
    "ones cost. Hyper-SD's 1-step LoRA cannot be downloaded here: a random LoRA of LCM-LoRA's rank and layers "
    "stands in, fused, costing what any fused LoRA costs (nothing per step).",
    "SDXL: both sides encode the prompt (both text encoders) and the sketch and decode with the full VAE; a "
    "warm-up at 256x256 checks that both run the same number of UNet evaluations.",
    "bf16 and turbo: one warm-up run of each variant fills the prompt and sketch caches (and loads TAESD); "
    "every timed run then uses a denoise value not used before, as a turning dial does. Turbo at 1 step "
    "runs the last step of an int(1/d)-step schedule.",
    "Rounds run every variant, the order reversed every round; a ratio is the median over rounds. A shared "
    "machine: each round waits up to a minute in all for other processes to quieten; their share of the "
    "CPUs is given with each ratio.",
]

if __name__ == "__main__":
    sys.exit(main())
