"""Engine benchmarks: torch, diffusers and the Sketchpad engine only.

This module never imports Qt (PySide6): it must also run on GPU machines that have no GUI stack.
Every figure is measured here, in this run; the caller prints and collects them through `ctx.emit`.
"""

from __future__ import annotations

import copy
import gc
import os
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import torch
from PIL import Image, ImageDraw

from sketchpad.backends.local.img2img import Img2ImgEngine
from sketchpad.backends.local.models import load_pipeline, pick_device
from sketchpad.core.params import GenerationParams
from sketchpad.core.sources import resolve_model_source

from .report import Figure

PROMPT = "a photo of a red house with a tree, blue sky"
NEGATIVE = "blurry"
CFG = 7.5  # the app's default: classifier-free guidance on, so every UNet call runs a batch of 2
SEED = 1234
# DDIM: first order, no warm-up step, so our strength 0.5 / N steps and diffusers' strength 0.5 /
# 2N inference steps run exactly the same N timesteps (PNDM would add a warm-up evaluation).
SCHEDULER = "ddim"
DENOISE = 0.5
PREVIEW_METHODS = ("none", "latent2rgb", "taesd", "vae")
PREVIEW_TARGETS = {"none": 1.02, "latent2rgb": 1.03, "taesd": 1.10}  # vae: reported only
MODEL_DIRS = {"tiny": "sd15-random-tiny", "full-size": "sd15-random-full"}


# ---- a shared machine ----------------------------------------------------------------------
class OtherLoad:
    """CPU time taken by other processes since creation, as a share of the whole machine."""

    def __init__(self):
        self._me = psutil.Process()
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        system = psutil.cpu_times()
        busy = sum(system) - system.idle - getattr(system, "iowait", 0.0)
        mine = self._me.cpu_times()
        return time.perf_counter(), busy, mine.user + mine.system

    def share(self) -> float:
        """Their CPU seconds / (wall seconds x logical cores); under 20 ms in all counts as none (the
        kernel counts CPU time in ticks, too coarse to judge a short unit by its share alone)."""
        (t0, busy0, mine0), (t1, busy1, mine1) = self._start, self._sample()
        theirs = max(0.0, (busy1 - busy0) - (mine1 - mine0))
        capacity = (t1 - t0) * (os.cpu_count() or 1)
        return theirs / capacity if capacity > 0 and theirs >= 0.02 else 0.0


class LoadGuard:
    """Time things on a quiet machine: wait until other processes are quiet, then run; redo a unit of
    work (a round, a trial) if they took more than `redo_above` of the CPUs meanwhile. The decision
    depends only on the other processes' load, never on the figure measured."""

    def __init__(self, say: Callable[[str], None] = print, quiet: float = 0.05, redo_above: float = 0.05,
                 retries: int = 2, wait_budget: float = 900.0):
        self.say, self.quiet, self.redo_above, self.retries = say, quiet, redo_above, retries
        self.wait_left = wait_budget  # for the whole run: a machine that is never quiet is timed anyway
        self.redone = 0

    def wait_quiet(self, max_wait: float = 120.0) -> None:
        waited, told = 0.0, False
        while self.wait_left > 0 and waited < max_wait:
            load = OtherLoad()
            time.sleep(0.5)
            share = load.share()
            if share < self.quiet:
                return
            waited += 0.5
            self.wait_left -= 0.5
            if not told:
                self.say(f"  waiting for other processes to quieten (they use {share:.0%} of the CPUs)")
                told = True

    def run(self, work: Callable[[], object], what: str) -> tuple[object, float]:
        """(work's result, other processes' share of the CPUs while it ran)."""
        for attempt in range(self.retries + 1):
            self.wait_quiet()
            load = OtherLoad()
            result = work()
            share = load.share()
            if share <= self.redo_above or attempt == self.retries:
                return result, share
            self.redone += 1
            self.say(f"  redoing {what}: other processes took {share:.0%} of the CPUs meanwhile")
        raise AssertionError("unreachable")


@dataclass
class Context:
    device: torch.device
    dtype: torch.dtype | None  # None: the app's own choice for the device
    emit: Callable[[Figure], None]  # prints and keeps a figure
    say: Callable[[str], None] = print  # progress lines
    notes: list[str] = field(default_factory=list)  # remarks that go into BENCHMARKS.md
    guard: LoadGuard = field(default_factory=LoadGuard)

    def clock(self) -> float:
        """perf_counter, after waiting for queued GPU work so the clock reads finished work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.say(f"note: {text}")


@dataclass(frozen=True)
class Setup:
    model: str  # "tiny" or "full-size"
    size: int  # square sketch side in pixels
    steps: int  # UNet steps per generation
    rounds: int  # interleaved repeats of every variant
    heavy_rounds: int  # of those, how many include the (slow) full-VAE preview variant

    @property
    def label(self) -> str:
        return f"{self.model} {self.size}x{self.size}, {self.steps} steps"


# ---- models ------------------------------------------------------------------------------
def ensure_model(models_dir: Path, model: str, say: Callable[[str], None] = print) -> Path:
    """The random-weight model folder, written by sketchpad.tiny_model on first use (git-ignored)."""
    from sketchpad.tiny_model import write_tiny_model

    folder = models_dir / MODEL_DIRS[model]
    if (folder / "model_index.json").is_file():
        return folder
    if not models_dir.exists():
        models_dir.mkdir(parents=True)
        (models_dir / ".gitignore").write_text("*\n")  # a cache: never committed
    say(f"writing the {model} random-weight model to {folder} (once; the full-size one is 4 GB, ~30 s)")
    return write_tiny_model(folder, full_size=model == "full-size", progress=lambda line: say(f"  {line}"))


def load(folder: Path, ctx: Context):
    """Load through the app's own loader; --dtype then recasts the UNet and text encoder (VAE stays fp32)."""
    # fp32 on the CPU as before bf16 existed (the bf16 figures are family_bench's); --dtype recasts below
    pipe = load_pipeline(resolve_model_source(str(folder)), ctx.device, dtype="fp32" if ctx.device.type == "cpu" else None)
    if ctx.dtype is not None and pipe.unet.dtype != ctx.dtype:
        pipe.unet.to(ctx.dtype)
        pipe.text_encoder.to(ctx.dtype)
    return pipe


def resolve_device(name: str) -> torch.device:
    return pick_device(name)


def machine_rows(ctx: Context) -> list[tuple[str, str]]:
    import platform

    import diffusers
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = [
        ("OS", platform.platform()),
        ("CPU", f"{cpu}; {os.cpu_count()} logical cores, torch uses {torch.get_num_threads()} threads"),
        ("RAM", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("device", _device_name(ctx.device)),
        ("dtype (UNet, text encoder)", str(ctx.dtype or ("torch.float16" if ctx.device.type == "cuda" else "torch.float32"))
         .replace("torch.", "") + "; VAE float32 (as the app runs it)"),
        ("Python", platform.python_version()),
        ("torch", torch.__version__),
        ("diffusers", diffusers.__version__),
        ("transformers", transformers.__version__),
    ]
    return rows


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type


# ---- inputs ------------------------------------------------------------------------------
def stick_figure(size: int, variant: int = 0) -> Image.Image:
    """A black stick figure on white paper; `variant` shifts it so sketches differ in content."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    s, dx = size / 64, variant % 7
    line = max(1, round(2 * s))
    draw.ellipse(((26 + dx) * s, 6 * s, (38 + dx) * s, 18 * s), outline="black", width=line)
    for x0, y0, x1, y1 in ((32, 18, 32, 40), (20, 26, 44, 26), (32, 40, 22, 58), (32, 40, 42, 58)):
        draw.line(((x0 + dx) * s, y0 * s, (x1 + dx) * s, y1 * s), fill="black", width=line)
    return image


def base_params(setup: Setup, **changes) -> GenerationParams:
    params = GenerationParams(PROMPT, NEGATIVE, strength=DENOISE, steps=setup.steps, cfg=CFG, seed=SEED,
                              scheduler=SCHEDULER)
    return params.replace(**changes)


def clear_caches(engine: Img2ImgEngine) -> None:
    """Forget encoded prompts and sketches: the next run pays the text and VAE encoders, like diffusers."""
    engine._prompt_cache.clear()
    engine._sketch_cache.clear()


# ---- the reference: plain diffusers img2img --------------------------------------------------
def reference_pipeline(pipe):
    """diffusers' StableDiffusionImg2ImgPipeline over the very same modules, with a DDIM scheduler."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    ref = StableDiffusionImg2ImgPipeline(
        vae=_reference_vae(pipe), text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
        scheduler=DDIMScheduler.from_config(pipe.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    ref.set_progress_bar_config(disable=True)
    return ref


def _reference_vae(pipe):
    # The app keeps the VAE in fp32 under an fp16 UNet; diffusers' img2img would feed it fp16 tensors.
    # Give the reference a view of the same VAE that casts at its boundary, as the engine does.
    vae, dtype = pipe.vae, pipe.unet.dtype
    if vae.dtype == dtype:
        return vae
    view = copy.copy(vae)  # shares every weight; only this object's encode/decode are wrapped
    encode, decode = vae.encode, vae.decode

    def encode_cast(x, *args, **kwargs):
        out = encode(x.to(vae.dtype), *args, **kwargs)
        dist = out.latent_dist
        for name in ("parameters", "mean", "logvar", "std", "var"):
            setattr(dist, name, getattr(dist, name).to(dtype))
        return out

    view.encode = encode_cast
    view.decode = lambda z, *args, **kwargs: decode(z.to(vae.dtype), *args, **kwargs)
    return view


def run_reference(ref, setup: Setup, sketch: Image.Image) -> Image.Image:
    generator = torch.Generator("cpu").manual_seed(SEED)
    return ref(
        prompt=PROMPT, negative_prompt=NEGATIVE, image=sketch, strength=DENOISE,
        num_inference_steps=round(setup.steps / DENOISE), guidance_scale=CFG, generator=generator, output_type="pil",
    ).images[0]


@contextmanager
def count_calls(module: torch.nn.Module):
    calls = [0]
    handle = module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


# ---- 1 + 2: preview cost and engine overhead ---------------------------------------------------
def bench_preview_cost(engine: Img2ImgEngine, setup: Setup, ctx: Context) -> list[Figure]:
    """Whole generations (encode prompt + sketch, N UNet steps, final VAE decode), the engine with each
    preview method against plain diffusers, interleaved round by round (order reversed every round)."""
    pipe, sketch = engine.pipe, stick_figure(setup.size)
    ref = reference_pipeline(pipe)
    gaps: dict[str, list[float]] = {method: [] for method in PREVIEW_METHODS}  # kept rounds only

    def engine_run(method: str) -> tuple[float, list[float]]:
        """(seconds for the whole generation, seconds between consecutive step callbacks)."""
        clear_caches(engine)
        stamps: list[float] = []
        start = ctx.clock()
        # with a stop check, as the app always passes one: the engine's in-UNet stop hooks are timed too
        result = engine.generate(base_params(setup, preview_method=method), sketch, lambda _: stamps.append(ctx.clock()),
                                 lambda: False)
        elapsed = ctx.clock() - start
        if result is None or result.steps_run != setup.steps or len(stamps) != setup.steps:
            raise RuntimeError(f"engine run did not run {setup.steps} steps")
        return elapsed, [b - a for a, b in zip(stamps, stamps[1:])]

    def reference_run() -> tuple[float, list[float]]:
        start = ctx.clock()
        run_reference(ref, setup, sketch)
        return ctx.clock() - start, []

    # warm-up (allocator, kernels, TAESD loading), and proof that both sides run the same UNet steps
    with count_calls(pipe.unet) as calls:
        reference_run()
        ref_calls, calls[0] = calls[0], 0
        engine_run("taesd")
        engine_calls = calls[0]
    if ref_calls != engine_calls or engine_calls != setup.steps:
        raise RuntimeError(f"UNet evaluations differ: diffusers {ref_calls}, engine {engine_calls}")
    ctx.say(f"  {setup.label}: both sides run {engine_calls} UNet evaluations (batch 2, CFG {CFG}), same latents size")

    variants = ["diffusers", *PREVIEW_METHODS]
    times: dict[str, list[float]] = {name: [] for name in variants}
    loads: list[float] = []

    def one_round(round_index: int) -> dict[str, tuple[float, list[float]]]:
        order = variants if round_index % 2 == 0 else variants[::-1]
        return {name: reference_run() if name == "diffusers" else engine_run(name)
                for name in order if name != "vae" or round_index < setup.heavy_rounds}

    redone_before = ctx.guard.redone
    for round_index in range(setup.rounds):
        measured, share = ctx.guard.run(lambda: one_round(round_index), f"round {round_index + 1}")
        loads.append(share)
        for name, (seconds, step_gaps) in measured.items():
            times[name].append(seconds)
            if name in gaps:
                gaps[name] += step_gaps
        done = ", ".join(f"{name} {seconds:.3f}s" for name, (seconds, _) in measured.items())
        ctx.say(f"  round {round_index + 1}/{setup.rounds}: {done} (others: {share:.0%})")
    load_note = (f"other processes: at most {max(loads):.0%} of the CPUs in a kept round; "
                 f"{ctx.guard.redone - redone_before} rounds redone for load")

    figures = []
    reference = statistics.median(times["diffusers"])
    figures.append(_emit(ctx, Figure("Preview cost", setup.label, "plain diffusers img2img, no previews (reference)",
                                     times["diffusers"], "s", note=load_note)))
    for method in PREVIEW_METHODS:
        # paired: each round's run against the reference run next to it, so load that comes and goes
        # between rounds cancels; the ratio of medians and of minimums are given in the note
        ratio = statistics.median(v / r for v, r in zip(times[method], times["diffusers"]))
        spread = (f"ratio of medians {statistics.median(times[method]) / reference:.3f}x, of minimums "
                  f"{min(times[method]) / min(times['diffusers']):.3f}x")
        limit = PREVIEW_TARGETS.get(method)
        section = "Engine overhead" if method == "none" else "Preview cost"
        name = "engine, no previews" if method == "none" else f"engine, {method} preview every step"
        target, passed, note = (f"<= {limit:.2f}x", ratio <= limit, spread) if limit else ("", None, spread)
        if method == "taesd" and setup.model == "tiny":
            # the tiny TAESD is not scaled down like the tiny UNet: its share says nothing about SD1.5's
            target, passed = f"<= {limit:.2f}x (judged at full size)", None
            note = f"tiny model: decoder/UNet proportions unlike SD1.5's; {spread}"
        figures.append(_emit(ctx, Figure(
            section, setup.label, name, times[method], "s", reference="plain diffusers (paired by round)", ratio=ratio,
            target=target, passed=passed, note=note,
        )))
    # Per step, away from the fixed costs of a short run: the loop's step time with each preview.
    step_none = statistics.median(gaps["none"]) if gaps["none"] else None
    for method in PREVIEW_METHODS:
        if not gaps[method]:
            continue
        ratio = statistics.median(gaps[method]) / step_none if method != "none" and step_none else None
        figures.append(_emit(ctx, Figure(
            "Preview cost per step", setup.label, f"loop step, {method}" if method != "none" else "loop step, no preview",
            gaps[method], "s", reference="loop step without previews" if ratio else "", ratio=ratio,
            note="time between consecutive step callbacks (UNet + scheduler + preview)",
        )))
    return figures


def _emit(ctx: Context, fig: Figure) -> Figure:
    ctx.emit(fig)
    return fig


# ---- 3: live restart -----------------------------------------------------------------------------
class EngineRunner:
    """GenerationWorker's protocol without Qt: one thread owns the engine; `request` replaces the
    queued job and flags the run in flight, which checks the flag before every step."""

    def __init__(self, engine: Img2ImgEngine, clock: Callable[[], float]):
        self.engine, self.clock = engine, clock
        self.events: list[tuple[str, int, int, float]] = []  # (kind, job id, step, time)
        self._cv = threading.Condition()
        self._job = None
        self._next_id = 0
        self.restart = False
        self._closing = False
        self._current = 0  # the job running now
        self._unet_hook = engine.pipe.unet.register_forward_pre_hook(self._on_unet)
        self._thread = threading.Thread(target=self._loop, name="bench-engine-runner", daemon=True)
        self._thread.start()

    def _on_unet(self, *_) -> None:
        """Records when each job's first UNet evaluation begins (start-up over, first step under way)."""
        if not any(k == "unet" and i == self._current for k, i, _, _ in self.events):
            self._record("unet", self._current)

    def request(self, params: GenerationParams, sketch: Image.Image, fresh_caches: bool = False) -> int:
        with self._cv:
            self._next_id += 1
            self._job = (self._next_id, params, sketch, fresh_caches)
            self.restart = True
            self._cv.notify_all()
            return self._next_id

    def cancel(self) -> None:
        with self._cv:
            self._job = None
            self.restart = True

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self.restart = True
            self._cv.notify_all()
        self._thread.join()
        self._unet_hook.remove()

    def wait_for(self, kind: str, job_id: int, step: int = 0, timeout: float = 600.0) -> float:
        """When the event happened; kind "end" is "done" or "cancelled", whichever came."""
        kinds = ("done", "cancelled") if kind == "end" else (kind,)

        def found():
            return next((t for k, i, s, t in self.events if k in kinds and i == job_id and s == step), None)

        with self._cv:
            if not self._cv.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no {kind} event for job {job_id}")
            return found()

    def _record(self, kind: str, job_id: int, step: int = 0) -> None:
        now = self.clock()
        with self._cv:
            self.events.append((kind, job_id, step, now))
            self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closing and self._job is None:
                    self._cv.wait()
                if self._closing:
                    return
                (job_id, params, sketch, fresh), self._job = self._job, None
                self.restart = False
                self._current = job_id
            if fresh:
                clear_caches(self.engine)
            result = self.engine.generate(params, sketch, lambda p: self._record("step", job_id, p.step),
                                          lambda: self.restart or self._closing)
            self._record("done" if result is not None else "cancelled", job_id)


class _EncoderTimer:
    """Seconds spent in the text encoder and the VAE encoder, through forward hooks."""

    def __init__(self, pipe, clock: Callable[[], float]):
        self.seconds = 0.0
        self._started: list[float] = []
        self._handles = []
        for module in (pipe.text_encoder, pipe.vae.encoder):
            self._handles.append(module.register_forward_pre_hook(lambda *_: self._started.append(clock())))
            self._handles.append(module.register_forward_hook(lambda *_: self._stop(clock())))

    def _stop(self, now: float) -> None:
        self.seconds += now - self._started.pop()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def longest_unet_stretches(pipe, setup: Setup, ctx: Context) -> dict[str, tuple[float, int]]:
    """In one UNet call, the longest time between two of the engine's stop points, and between two
    leaf modules (one op, mostly an attention: the floor of any check made inside the UNet).
    Returns {kind: (seconds, count of such modules)}."""
    from sketchpad.backends.local import img2img

    unet = pipe.unet
    kinds = {
        "engine stop points": img2img.stop_points(unet),
        "leaf modules": [m for m in unet.modules() if not any(True for _ in m.children())],
    }
    side = setup.size // pipe.vae_scale_factor
    sample = torch.randn(2, unet.config.in_channels, side, side, device=ctx.device, dtype=unet.dtype)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, device=ctx.device, dtype=unet.dtype)
    found = {}
    with torch.no_grad():
        unet(sample, 500, encoder_hidden_states=context)  # warm
        for kind, modules in kinds.items():
            if not modules:
                continue
            stamps: list[float] = []
            handles = [m.register_forward_pre_hook(lambda *_: stamps.append(ctx.clock())) for m in modules]
            try:
                start = ctx.clock()
                unet(sample, 500, encoder_hidden_states=context)
                points = [start, *stamps, ctx.clock()]
            finally:
                for handle in handles:
                    handle.remove()
            found[kind] = (max(b - a for a, b in zip(points, points[1:])), len(modules))
    return found


def _on_own_thread(work: Callable[[], object]) -> object:
    box: dict[str, object] = {}

    def target():
        try:
            box["result"] = work()
        except BaseException as error:  # handed to the caller
            box["error"] = error

    thread = threading.Thread(target=target, name="bench helper")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def bench_restart(engine: Img2ImgEngine, setup: Setup, ctx: Context, phases: list[float],
                  uncached_trials: int = 2) -> list[Figure]:
    """A run in flight (denoise 0.6), then a denoise-only change (0.5) at `phase` of one of its steps."""
    pipe, sketch = engine.pipe, stick_figure(setup.size)
    runner = EngineRunner(engine, ctx.clock)
    encoders = _EncoderTimer(pipe, ctx.clock)
    stale = base_params(setup, strength=0.6, steps=setup.steps + 3, preview_method="latent2rgb")
    fresh = base_params(setup, strength=DENOISE, preview_method="latent2rgb")
    rows: dict[str, list[dict]] = {"cached": [], "uncached": []}

    def trial(kind: str, phase: float) -> dict:
        a = runner.request(stale, sketch)
        t1, t2 = runner.wait_for("step", a, 1), runner.wait_for("step", a, 2)
        step = t2 - t1  # a step of the stale run, preview included
        time.sleep(phase * step)
        spent_before = encoders.seconds
        t0 = ctx.clock()
        b = runner.request(fresh, sketch, fresh_caches=kind == "uncached")
        stopped = runner.wait_for("cancelled", a) - t0
        first = runner.wait_for("step", b, 1) - t0
        unet = runner.wait_for("unet", b) - t0  # the stale run's leftover + the new run's start-up
        encoder_seconds = encoders.seconds - spent_before
        runner.cancel()
        runner.wait_for("end", b)
        # the step the request landed in: until its preview if the stale run finished it, else as usual
        stale_after = [t for k, i, n, t in runner.events if k == "step" and i == a and t > t0]
        in_flight = stale_after[0] - t2 if stale_after else step
        row = dict(phase=phase, step=step, in_flight=in_flight, stale_steps=len(stale_after), stopped=stopped,
                   first=first, excess=unet, own_step=first - unet, startup=unet - stopped, encoders=encoder_seconds)
        ctx.say(f"  restart {kind} phase {phase:.2f}: step {step * 1e3:.1f} ms, stale stopped after "
                f"{stopped * 1e3:.1f} ms, first new preview after {first * 1e3:.1f} ms, encoders {encoder_seconds * 1e3:.1f} ms")
        return row

    try:
        runner.request(stale, sketch)  # warm-up: fills the prompt and sketch caches, warms the kernels
        runner.wait_for("done", 1)
        def guarded_trial(kind: str, phase: float) -> None:
            row, _ = ctx.guard.run(lambda: trial(kind, phase), f"the {kind} trial at phase {phase:.2f}")
            rows[kind].append(row)

        for phase in phases:
            guarded_trial("cached", phase)
        for index in range(uncached_trials):
            guarded_trial("uncached", phases[index % len(phases)] if phases else 0.5)
    finally:
        runner.close()
        encoders.remove()

    label, figures = setup.label, []
    cached = rows["cached"]

    def add(name, values, **kw):
        figures.append(_emit(ctx, Figure("Live restart", label, name, values, "s", **kw)))

    steps = [r["step"] for r in cached]
    add("step time of the stale run (preview included)", steps)
    worst_stop = max(r["stopped"] / r["in_flight"] for r in cached)
    add("request -> stale run stopped", [r["stopped"] for r in cached], reference="the step in flight",
        ratio=worst_stop, target="<= 1 step (every trial)",
        passed=worst_stop <= 1.0 and max(r["stale_steps"] for r in cached) <= 1,
        extra={"max": max(r["stopped"] for r in cached)},
        note=f"request at {', '.join(f'{p:.2f}' for p in sorted(set(phases)))} of a step; ratio: worst trial / "
             f"the step it landed in; stale steps finished after the request: at most "
             f"{max(r['stale_steps'] for r in cached)}")
    first_preview_figure(add, cached, "request -> first preview of the new run")
    add("stale run stopped -> new run's first UNet call (start-up)", [r["startup"] for r in cached],
        note="prompt embeddings and sketch latents come from the caches")
    add("text + VAE encoder time in a denoise-only restart", [r["encoders"] for r in cached], target="0 (cached)",
        passed=max(r["encoders"] for r in cached) == 0.0)
    if rows["uncached"]:
        uncached = rows["uncached"]
        add("uncached restart: text + VAE encoder time", [r["encoders"] for r in uncached],
            note="caches cleared, as a fresh engine would start")
        add("uncached restart: stale run stopped -> new run's first UNet call", [r["startup"] for r in uncached],
            reference="cached restart", ratio=statistics.median(r["startup"] for r in uncached)
            / statistics.median(r["startup"] for r in cached))
        saved = statistics.median(r["startup"] for r in uncached) - statistics.median(r["startup"] for r in cached)
        add("time saved by the caches on a denoise-only restart", [saved], note="median uncached - median cached start-up")
    # on a thread of its own: this one must not own a torch pool while the runner's is at work
    stretches = _on_own_thread(lambda: longest_unet_stretches(pipe, setup, ctx))
    for kind, (seconds, count) in stretches.items():
        add(f"longest UNet stretch between two {kind}", [seconds],
            note=f"{count} per UNet call; a stale run's leftover after a request is at most about this"
            if kind == "engine stop points" else f"{count} per UNet call; the floor of any check inside the UNet")
    return figures


def first_preview_figure(add, rows: list[dict], name: str) -> None:
    """'The first preview of the new run arrives within one step + 50 ms of the request': the new run's
    own first step (first UNet call -> its preview) is the step; everything before it (what the stale
    run still did, the new run's start-up) must fit in the 50 ms."""
    worst = max(r["excess"] for r in rows)
    add(name, [r["first"] for r in rows], reference="the new run's first step", ratio=max(r["first"] / r["own_step"] for r in rows),
        target="<= its step + 50 ms (every trial)", passed=worst <= 0.050, extra={"max": max(r["first"] for r in rows)},
        note=f"time before the new run's first step began (stale leftover + start-up): median "
             f"{statistics.median(r['excess'] for r in rows) * 1e3:.0f} ms, worst {worst * 1e3:.0f} ms")


# ---- thread pools ------------------------------------------------------------------------------
def bench_thread_pools(engine: Img2ImgEngine, setup: Setup, ctx: Context) -> list[Figure]:
    """A generation's step time on this thread, alone vs while another live thread owns a torch CPU pool
    (e.g. a GUI thread that once ran a torch op). CPU only: the pool in question is OpenMP's."""
    if ctx.device.type != "cpu":
        return []
    sketch, params = stick_figure(setup.size), base_params(setup, preview_method="latent2rgb")

    def steps_of_one_run() -> list[float]:
        stamps: list[float] = []
        engine.generate(params, sketch, lambda _: stamps.append(ctx.clock()))
        return [b - a for a, b in zip(stamps, stamps[1:])]

    def with_foreign_pool() -> list[float]:
        ready, release = threading.Event(), threading.Event()

        def owner():
            torch.ones(2**22).add_(1)  # one parallel op: this thread now owns an OpenMP pool
            ready.set()
            release.wait()

        thread = threading.Thread(target=owner, name="bench pool owner")
        thread.start()
        ready.wait()
        try:
            return steps_of_one_run()
        finally:
            release.set()
            thread.join()

    steps_of_one_run()  # warm-up
    alone, shared = [], []
    for index in range(setup.rounds):
        (by_itself, beside), _ = ctx.guard.run(lambda: (steps_of_one_run(), with_foreign_pool()), f"round {index + 1}")
        alone += by_itself
        shared += beside
    ratio = statistics.median(shared) / statistics.median(alone)
    figures = [
        _emit(ctx, Figure("Thread pools", setup.label, "loop step, only this thread runs torch", alone, "s")),
        _emit(ctx, Figure("Thread pools", setup.label, "loop step while another live thread owns a torch pool",
                          shared, "s", reference="only this thread", ratio=ratio,
                          note="libgomp stops spinning when its pools outnumber the cores")),
    ]
    return figures


# ---- 5: memory -----------------------------------------------------------------------------------
def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def bench_memory(engine: Img2ImgEngine, ctx: Context, generations: int = 100, size: int = 128,
                 steps: int = 4) -> list[Figure]:
    """RSS after 100 generations vs after 5: prompts, sketches, schedulers and preview methods vary, so
    every cache fills and evicts."""
    clear_caches(engine)
    sketches = [stick_figure(size, variant) for variant in range(7)]
    schedulers = ("ddim", "euler", "pndm", "dpmpp_2m", "euler_a")
    methods = ("latent2rgb", "taesd", "vae", "none")
    marks, curve = {5, 25, 50, 75, generations}, {}
    start = ctx.clock()
    for index in range(1, generations + 1):
        params = GenerationParams(
            f"{PROMPT}, variant {index % 13}", NEGATIVE, strength=0.3 + 0.05 * (index % 12), steps=steps, cfg=CFG,
            seed=index, scheduler=schedulers[index % len(schedulers)], preview_method=methods[index % len(methods)],
        )
        previews = []
        result = engine.generate(params, sketches[index % len(sketches)], previews.append)
        assert result is not None and len(previews) == result.steps_run
        if index in marks:
            curve[index] = rss_mb()
    seconds = ctx.clock() - start
    growth = curve[generations] - curve[5]
    note = "RSS " + ", ".join(f"after {n}: {mb:.0f} MB" for n, mb in sorted(curve.items()))
    fig = Figure("Memory", f"tiny {size}x{size}, {steps} steps", f"RSS growth, {generations} generations vs 5 (engine)",
                 [growth], "MB", target="<= 50 MB", passed=growth <= 50.0,
                 note=f"{note}; {generations} generations in {seconds:.1f} s")
    ctx.emit(fig)
    return [fig]
