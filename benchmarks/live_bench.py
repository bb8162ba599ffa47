"""Live-fast against Quality, and what "Keep my lines" adds per step: engine only, never Qt.

    python -m benchmarks.live_bench [--quick] [--models-dir DIR] [--out BENCHMARKS-live.md]

runs these sections alone (they are also part of `python -m benchmarks`).

- Dial change -> final picture: with the prompt embeddings and sketch latents already cached (as in
  Live mode, where only the denoise moves), the time `generate` takes for a new denoise value.
  Quality: the model's own sampler (PLMS), 20 steps, CFG 7.5, full VAE decode. Live-fast: the LCM
  preset (LCM scheduler, 4 steps, no CFG) with a fused LoRA and the TAESD draft decode.
- ControlNet per step: the gap between step callbacks with a ControlNet at strength 1 against the
  same run without one (strength 0 leaves it out entirely).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec
from sketchpad.core.presets import apply_preset

from .report import Figure

SECTION_SPEED = "Live-fast vs Quality"
SECTION_CONTROL = "ControlNet cost"
PROMPT, SEED = "a knight in shining armour, oil painting", 1234
DIALS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)  # each timed run sees a value not run before
# the layers LCM-LoRA trains in SD1.5's transformer blocks; the stand-in LoRA has the same places
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
LORA_RANK = 64


@dataclass(frozen=True)
class LiveSetup:
    model: str
    size: int
    rounds: int
    control_rounds: int = 0  # 0: as many as `rounds`
    control_steps: int = 4

    @property
    def label(self) -> str:
        return f"{self.model} {self.size}x{self.size}"


def stand_in_lora(pipe, folder: Path) -> Path:
    """A random LoRA with LCM-LoRA's rank and layers (the real one needs a download); fused, it costs
    what any LoRA of its shape costs: nothing per step."""
    path = folder / f"random-lcm-shaped-lora-{pipe.unet.config.block_out_channels[0]}.safetensors"
    if path.is_file():
        return path
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(LORA_TARGETS):
            rank = min(LORA_RANK, module.in_features, module.out_features)
            state[f"unet.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) * 1e-3
            state[f"unet.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) * 1e-3
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, path)
    return path


def stand_in_controlnet(pipe, folder: Path) -> Path:
    """A ControlNet of the model's own shape (diffusers' from_unet), written once."""
    path = folder / f"random-controlnet-{pipe.unet.config.block_out_channels[0]}"
    if (path / "config.json").is_file():
        return path
    from diffusers import ControlNetModel

    ControlNetModel.from_unet(pipe.unet).save_pretrained(path, safe_serialization=True)
    return path


def bench_live(engine, setup: LiveSetup, ctx, models_dir: Path) -> None:
    from .engine_bench import stick_figure

    sketch = stick_figure(setup.size)
    engine.loras.apply(())  # the stand-ins are made from the plain UNet
    lora = LoraSpec(str(stand_in_lora(engine.pipe, models_dir)))
    control = ControlSpec(str(stand_in_controlnet(engine.pipe, models_dir)), 1.0)
    quality = apply_preset(GenerationParams(PROMPT, seed=SEED), "quality")
    fast = apply_preset(GenerationParams(PROMPT, seed=SEED), "lcm").replace(loras=(lora,), draft=True)
    dials = iter(DIALS * (1 + setup.rounds))

    def timed(params) -> tuple[float, float]:
        """(wall seconds, this process's CPU seconds) for one dial change."""
        engine.loras.apply(params.loras)  # in Live the LoRA stays fused: (un)fusing is not the dial's cost
        start, cpu = ctx.clock(), time.process_time()
        result = engine.generate(params.replace(strength=next(dials)), sketch)
        elapsed, cpu = ctx.clock() - start, time.process_time() - cpu
        if result is None or result.steps_run == 0:
            raise RuntimeError("a timed run did not run")
        return elapsed, cpu

    for params in (quality.replace(steps=1), fast.replace(steps=1)):  # fill the prompt and sketch caches
        engine.loras.apply(params.loras)
        engine.generate(params, sketch)
    engine.generate(fast, sketch)  # loads TAESD once
    times = {"quality": [], "fast": []}
    ratios, cpu_ratios, shares = [], [], []
    for round_index in range(setup.rounds):
        order = ("quality", "fast") if round_index % 2 == 0 else ("fast", "quality")

        def one_round(order=order):
            return {name: timed(quality if name == "quality" else fast) for name in order}

        got, share = ctx.guard.run(one_round, f"live round {round_index + 1}")
        shares.append(share)
        for name, (seconds, _) in got.items():
            times[name].append(seconds)
        ratios.append(got["quality"][0] / got["fast"][0])
        cpu_ratios.append(got["quality"][1] / got["fast"][1])
        ctx.say(f"  round {round_index + 1}: quality {got['quality'][0]:.2f} s, live-fast {got['fast'][0]:.3f} s")
    load = f"other processes' CPU share per round: {', '.join(f'{s:.0%}' for s in shares)}"
    ctx.emit(Figure(SECTION_SPEED, setup.label, "Quality: PLMS 20 steps, CFG 7.5, VAE decode", times["quality"], "s"))
    ctx.emit(Figure(SECTION_SPEED, setup.label, "Live-fast: LCM 4 steps, no CFG, fused LoRA, TAESD decode",
                    times["fast"], "s"))
    ratio = statistics.median(ratios)
    ctx.emit(Figure(SECTION_SPEED, setup.label, "dial change -> final picture, Quality / Live-fast", ratios, "x",
                    reference="(speed-up; median over rounds)", ratio=ratio, target=">= 8x", passed=ratio >= 8.0,
                    note=load))
    ctx.emit(Figure(SECTION_SPEED, setup.label, "the same in this process's CPU time (less sensitive to other load)",
                    cpu_ratios, "x", reference="(speed-up; median over rounds)", ratio=statistics.median(cpu_ratios)))

    # refine: the picture shown while the dial rests, from the last draft's latents
    engine.loras.apply(fast.loras)
    last = fast.replace(strength=0.5)
    engine.generate(last, sketch)
    start = ctx.clock()
    refined = engine.refine(last, sketch)
    ctx.emit(Figure(SECTION_SPEED, setup.label, "refine after a draft (full VAE decode, no new run)",
                    [ctx.clock() - start], "s", note=f"{refined.steps_run} UNet steps"))
    bench_control_step(engine, setup, ctx, control, sketch, fast.replace(draft=False))


def bench_control_step(engine, setup: LiveSetup, ctx, control: ControlSpec, sketch, fast) -> None:
    variants = {"plain": fast.replace(steps=setup.control_steps, preview_method="none"),
                "controlnet": fast.replace(steps=setup.control_steps, preview_method="none", control=control)}
    engine.loras.apply(fast.loras)
    engine.generate(variants["controlnet"].replace(steps=1), sketch)  # loads it, prepares the control image
    gaps = {name: [] for name in variants}
    ratios, cpu_ratios, shares = [], [], []

    def step_gaps(params) -> tuple[list[float], list[float]]:
        """Wall and CPU seconds between consecutive step callbacks."""
        stamps = []
        engine.generate(params, sketch, lambda _: stamps.append((ctx.clock(), time.process_time())))
        pairs = list(zip(stamps, stamps[1:]))
        return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]

    for round_index in range(setup.control_rounds or setup.rounds):
        order = list(variants) if round_index % 2 == 0 else list(variants)[::-1]
        got, share = ctx.guard.run(lambda order=order: {n: step_gaps(variants[n]) for n in order},
                                   f"ControlNet round {round_index + 1}")
        shares.append(share)
        for name, (values, _) in got.items():
            gaps[name] += values
        ratios.append(statistics.median(got["controlnet"][0]) / statistics.median(got["plain"][0]))
        cpu_ratios.append(statistics.median(got["controlnet"][1]) / statistics.median(got["plain"][1]))
    ctx.emit(Figure(SECTION_CONTROL, f"{setup.label}, no CFG", "step without ControlNet", gaps["plain"], "s"))
    ctx.emit(Figure(SECTION_CONTROL, f"{setup.label}, no CFG", "step with ControlNet (strength 1)",
                    gaps["controlnet"], "s"))
    ratio = statistics.median(ratios)
    ctx.emit(Figure(SECTION_CONTROL, f"{setup.label}, no CFG", "ControlNet step / plain step", ratios, "x",
                    reference="(median over rounds)", ratio=ratio, target="<= 1.4x", passed=ratio <= 1.4,
                    note=f"other processes' CPU share per round: {', '.join(f'{s:.0%}' for s in shares)}"))
    ctx.emit(Figure(SECTION_CONTROL, f"{setup.label}, no CFG", "the same in this process's CPU time", cpu_ratios, "x",
                    reference="(median over rounds)", ratio=statistics.median(cpu_ratios)))
    engine.loras.apply(())  # leave the engine as the other sections expect it


def plan(quick: bool, full: bool) -> dict[str, list[LiveSetup]]:
    tiny = [LiveSetup("tiny", 256, rounds=5)]
    if quick:
        return {"tiny": tiny}
    # a full-size Quality run is minutes on a CPU: few dial rounds; ControlNet rounds are cheaper
    return {"tiny": tiny, "full-size": [LiveSetup("full-size", 256, rounds=3 if full else 2, control_rounds=4),
                                        LiveSetup("full-size", 512, rounds=2, control_rounds=2)]}


def main(argv=None) -> int:
    from . import engine_bench as eb
    from .__main__ import REPO
    from .report import Collected, render_markdown, standalone_parser

    args = standalone_parser("live_bench", __doc__, REPO / "BENCHMARKS-live.md").parse_args(argv)
    run = Collected()
    figures, notes = run.figures, run.notes
    # a shared machine: wait a little for quiet but never redo (a full-size Quality run is minutes);
    # both variants share every round, so load that comes and goes hits both, and each ratio says how busy
    ctx = eb.Context(eb.resolve_device("auto"), None, emit=run.emit, notes=notes,
                     guard=eb.LoadGuard(print, wait_budget=60.0, retries=0))
    models_dir = Path(args.models_dir)
    started = time.perf_counter()
    for model, setups in plan(args.quick, False).items():
        if args.full_size_only and model != "full-size":
            continue
        folder = eb.ensure_model(models_dir, model, print)
        engine = eb.Img2ImgEngine(eb.load(folder, ctx), model, notify=ctx.note)
        for setup in setups:
            print(f"\n== {SECTION_SPEED}, {SECTION_CONTROL}: {setup.label} ==", flush=True)
            bench_live(engine, setup, ctx, models_dir)
        del engine
    shown = sys.argv[1:] if argv is None else argv  # what ran, so the report says so
    command = "python -m benchmarks.live_bench" + ("" if not shown else " " + " ".join(shown))
    rows = eb.machine_rows(ctx) + [("run", f"{(time.perf_counter() - started) / 60:.1f} min")]
    text = render_markdown("Sketchpad live benchmarks", command, rows, figures, INTRO, METHOD, notes)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


INTRO = [
    "Live-fast against Quality (time from a dial change to the final picture) and the per-step cost of "
    "the scribble ControlNet, measured by the command shown, in one run, on the machine below.",
]
METHOD = [
    "Random-weight SD1.5 architectures (tiny and full-size) from `python -m sketchpad.tiny_model`; random "
    "weights cost exactly what trained ones cost. The LCM-LoRA and a scribble ControlNet cannot be downloaded "
    "here, so stand-ins of their shape are used: a random LoRA of LCM-LoRA's rank (64) on its transformer "
    "layers, fused; a random ControlNet made by diffusers' `ControlNetModel.from_unet` from the model's UNet.",
    "Dial change: one warm-up run of each variant fills the prompt and sketch caches and loads TAESD; every "
    "timed run then uses a denoise value not used before (0.55, 0.6, ...), as a turning dial does. The LoRA "
    "is fused (or taken out) before the clock starts, as it stays fused in Live mode. Rounds run both "
    "variants, the order reversed every round; the ratio is the median over rounds of Quality / Live-fast.",
    "ControlNet: Live-fast settings (LCM, no CFG, batch 1), the time between consecutive step callbacks; "
    "the ratio is the median over rounds of (median step with ControlNet / median step without).",
    "CPU time: `time.process_time()` of the benchmark process over the same spans (all its threads); "
    "on a machine other processes keep busy it follows the work done more closely than the wall clock, and "
    "is reported beside the wall-clock ratios (the targets are judged on the wall clock).",
    "A shared machine: in `python -m benchmarks` each round waits for other processes to quieten and is "
    "redone (up to twice) if they took over 5% of the CPUs meanwhile; run alone (`python -m "
    "benchmarks.live_bench`) it waits at most a minute in all and redoes nothing. Their share of the CPUs "
    "is given with each ratio.",
]

if __name__ == "__main__":
    sys.exit(main())
