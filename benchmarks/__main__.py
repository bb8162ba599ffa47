"""Run Sketchpad's benchmarks and write BENCHMARKS.md:

    python -m benchmarks [--quick | --full] [--long] [--device auto|cpu|cuda] [--dtype auto|float32|float16|bfloat16]

--quick: the tiny model only (minutes). --long: the window's memory over 1000 live runs instead of 200
(about 15 minutes more on 2 CPU cores; the growth levelled off from about run 400 when last measured).
Default: also
the full-size SD1.5 architecture (random weights, written once into .bench-models/) at 256x256 and
512x512 (about 30 minutes on 2 CPU cores, longer on a busy machine: timed work waits until other
processes are quiet).
--full: more repeats and steps, and the restart and GUI figures at 512x512 as well.
Engine figures need no Qt; the Qt figures are skipped, with a note, where PySide6 is missing.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import os
import sys
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random-weight models only: nothing is downloaded
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the Qt figures load through the worker: fp32 on the CPU, as the engine figures (bf16's: family_bench)
os.environ.setdefault("SKETCHPAD_DTYPE", "fp32")

from .report import Figure, console_line, render_markdown  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DTYPES = ("auto", "float32", "float16", "bfloat16")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny model only (about a minute)")
    mode.add_argument("--full", action="store_true", help="more repeats, and 512x512 for every section")
    parser.add_argument("--long", action="store_true", help="the window's memory over 1000 live runs (not 200)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="UNet and text encoder dtype (auto: float16 on CUDA, float32 on CPU; the VAE stays float32)")
    parser.add_argument("--out", default=str(REPO / "BENCHMARKS.md"), help="report to write (default: BENCHMARKS.md)")
    parser.add_argument("--models-dir", default=str(REPO / ".bench-models"),
                        help="where the random-weight models are cached (git-ignored; default .bench-models)")
    parser.add_argument("--no-ui", action="store_true", help="skip the Qt figures")
    parser.add_argument("--server", default=None, metavar="URL",
                        help="also measure the ComfyUI backend against this server (benchmarks/comfy_bench.py)")
    parser.add_argument("--server-model", default=None, metavar="CKPT", help="the server checkpoint (default: its first)")
    return parser.parse_args(argv)


def plan(args):
    """What to run: per model, the engine setups and the Qt ones."""
    from .engine_bench import Setup
    from .live_bench import LiveSetup

    tiny = dict(
        model="tiny",
        preview=[Setup("tiny", 256, 10, rounds=15, heavy_rounds=15)],
        restart=[(Setup("tiny", 256, 10, 0, 0), [0.0, 0.25, 0.5, 0.75, 0.95] * 2)],
        memory=True,
        ui_stalls=[Setup("tiny", 256, 30, 0, 0)],
        ui_restart=[(Setup("tiny", 256, 10, 0, 0), [0.1, 0.5, 0.9] * 2)],
        ui_canvas=True,
        pools=[Setup("tiny", 256, 10, rounds=5, heavy_rounds=0)],
        # 128 px: small enough for 1000 runs in minutes, big enough that keeping every result
        # (~110 KB a run here) would show as well over the 50 MB bound
        window_memory=dict(runs=1000 if args.long else 200, size=128),
        recovery=True,
        live=[LiveSetup("tiny", 256, rounds=5)],
    )
    if args.quick:
        return [tiny]
    rounds_256, rounds_512 = (7, 5) if args.full else (5, 3)
    steps_512 = 4 if args.full else 3
    full = dict(
        model="full-size",
        preview=[Setup("full-size", 256, 4, rounds=rounds_256, heavy_rounds=3 if args.full else 2),
                 Setup("full-size", 512, steps_512, rounds=rounds_512, heavy_rounds=2 if args.full else 1)],
        restart=[(Setup("full-size", 256, 4, 0, 0), [0.1, 0.5, 0.9])],
        memory=False,
        ui_stalls=[Setup("full-size", 256, 4, 0, 0)],
        ui_restart=[(Setup("full-size", 256, 4, 0, 0), [0.5])],
        ui_canvas=False,
        pools=[Setup("full-size", 256, 4, rounds=2, heavy_rounds=0)],
        live=[LiveSetup("full-size", 256, rounds=3 if args.full else 2, control_rounds=4),
              LiveSetup("full-size", 512, rounds=2, control_rounds=2)],
    )
    if args.full:
        full["restart"].append((Setup("full-size", 512, 4, 0, 0), [0.1, 0.5, 0.9]))
        full["ui_stalls"].append(Setup("full-size", 512, 4, 0, 0))
    return [tiny, full]


INTRO = [
    "Every figure below was measured by the command shown, in one run, on the machine described under "
    "*Machine and software*; nothing is copied from elsewhere, estimated or extrapolated. Figures for other "
    "devices (e.g. a CUDA GPU) come only from running the same command there.",
    "",
    "Models: random-weight Stable Diffusion 1.5 architectures written by `python -m sketchpad.tiny_model` "
    "(cached in `.bench-models/`): *tiny* (about 1.2 M parameters, for the engine's own overhead) and "
    "*full-size* (the real SD1.5 UNet, VAE and CLIP text encoder shapes; random weights draw noise but cost "
    "exactly what trained weights cost).",
]

METHOD = [
    "Clocks: `time.perf_counter`; on CUDA every reading is preceded by `torch.cuda.synchronize()`.",
    "Preview cost / engine overhead: whole generations: text encoder, VAE encoder, N UNet steps with "
    "classifier-free guidance (CFG 7.5, batch 2), final VAE decode. Ours: `Img2ImgEngine.generate` with "
    "denoise 0.5 and N steps; reference: diffusers' `StableDiffusionImg2ImgPipeline` over the very same "
    "modules, strength 0.5 and 2N inference steps. Both use DDIM (first order, no warm-up step), so both "
    "run the same N timesteps on the same latent size; a forward hook counts the UNet calls on both sides "
    "during the warm-up and the run stops if they differ. The engine's prompt and sketch caches are cleared "
    "before every timed engine run, so both sides do the same work. The reference runs the very UNet the "
    "engine hooks its stop checks into during its own runs only.",
    "Interleaving: each round runs every variant once (reference, none, latent2rgb, taesd, vae), the order "
    "reversed every other round. A ratio is the median over rounds of (variant / the reference run of the "
    "same round), so load that comes and goes between rounds cancels; the ratio of medians and of minimums "
    "are in the note. The slow full-VAE preview variant runs in fewer rounds at full size. One warm-up run "
    "of each side is not timed.",
    "A shared machine: before every timed unit (a round, a restart trial, a GUI probe) the run waits until "
    "other processes use under 5% of the CPUs, and redoes the unit (up to twice) if they took over 5% "
    "while it ran; the decision depends only on the other processes' CPU time, never on the figure. "
    "Other processes' share is also given per section.",
    "Per-step figures: the time between consecutive step callbacks inside the same runs, i.e. what every "
    "further step costs once the fixed costs (encoders, final decode) of a short run are paid.",
    "Live restart (engine, no Qt): a thread owns the engine and follows GenerationWorker's protocol "
    "(the newest request replaces the queued one and sets a flag the running generation checks before "
    "every step). A stale run (denoise 0.6) is interrupted during its third step, at the stated fraction "
    "of a step, by a denoise-only change (0.5, same prompt and sketch). Encoder time is measured with "
    "forward hooks on the text encoder and the VAE encoder, the start of the new run's first UNet "
    "evaluation with one on the UNet. 'Within one step + 50 ms' is judged as: the new run's own first step "
    "is the step, and everything before it began (what the stale run still did, the new run's start-up) "
    "fits in 50 ms; judging against another step's duration would let step-to-step jitter (a few percent "
    "of a multi-second CPU step) decide. 'Uncached' clears the engine's caches first, as a fresh engine "
    "would. The longest UNet stretches (one UNet call, forward pre-hooks) bound how long a stale run can "
    "go on after a request: between the engine's stop points, and between leaf modules (single ops: the "
    "floor for any check inside the UNet).",
    "ComfyUI server (only with --server URL): `benchmarks/comfy_bench.py` against that server; client "
    "overhead is a job's wall time in `ComfyBackend.generate` outside the server's execution (until its "
    "execution_start arrives, and from the result picture to the return), split into our own work, the "
    "POST /prompt and the server's pick-up; live restart stops a stale job after its first preview "
    "and sends a denoise-only request at once.",
    "Live restart (Qt): the same through the real `GenerationWorker`, times taken when the GUI thread "
    "receives the signals.",
    "GUI stalls: a 1 ms `Qt.PreciseTimer` on the GUI thread while the worker generates; each preview is "
    "drawn scaled into a 512 px widget. The figure is the gap between consecutive ticks.",
    "Stroke cost: `QMouseEvent`s sent to a `SketchCanvas` whose page was set with `resize_canvas(1024, 1024)`, "
    "shown in a 768 px widget (scaled, smooth), offscreen; per event: the handler, then the repaint it "
    "scheduled (processed at once).",
    "Thread pools (CPU): a generation's loop step alone vs while another live thread owns a torch "
    "(OpenMP) pool, interleaved. Every torch section of this run executes on a thread of its own, so the "
    "GUI thread of the Qt figures has never run torch, as in the app.",
    "Live-fast vs Quality, ControlNet cost: see `benchmarks/live_bench.py` (also runnable alone as "
    "`python -m benchmarks.live_bench`): dial change -> final picture with warm caches, Quality (PLMS, 20 steps, "
    "CFG 7.5, VAE decode) against the LCM preset (4 steps, no CFG, a fused stand-in LoRA of LCM-LoRA's shape, "
    "TAESD draft decode), interleaved; the ControlNet (a random one of the model's shape) per step at "
    "Live-fast settings.",
    "Memory: process RSS (psutil, after `gc.collect()`) after 5 and after 100 generations on the tiny model "
    "with prompts, sketches, schedulers and preview methods varied so every cache fills and evicts.",
    "Memory over a live session: the real `MainWindow` and `GenerationWorker` on the tiny model, Live on, "
    "the denoise dial turned to a value that runs other steps than the last (Live skips one that would paint "
    "the picture on show) and the next turn made once the result is on screen; RSS (after `gc.collect()`) "
    "after 10 runs and after 200 (1000 with `--long`).",
    "Drawing lost after kill -9: a child process draws a short stroke every 100 ms on a `SketchCanvas` "
    "(mouse events, each stroke on its own row) with a `SketchAutosaver` at the window's interval, and "
    "is killed with SIGKILL 3 to 9 s (uniformly at random, fixed seed) into drawing; a new autosaver "
    "then takes what `orphans()` offers, and the figure is the time from the end of the last stroke in "
    "that picture to the kill.",
]


# THREADS: torch's CPU ops run on an OpenMP pool that belongs to the thread that calls them and lives
# as long as that thread. If two threads own such pools at once and together they outnumber the
# cores, libgomp stops spinning between parallel regions and every op pays a wake-up (measured in
# the "Thread pools" figures). The app's GUI thread never runs torch; so that the Qt figures see the
# same, the main thread here never does either: every torch section runs on a thread of its own.


class Run:
    def __init__(self, args, argv):
        self.args, self.argv = args, argv
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.started = time.perf_counter()
        self.machine: list[tuple[str, str]] = []

    def emit(self, fig: Figure) -> None:
        self.figures.append(fig)
        print(console_line(fig), flush=True)

    def say(self, line: str) -> None:
        print(line, flush=True)

    def write(self, finished: bool) -> None:
        minutes = (time.perf_counter() - self.started) / 60
        status = "complete" if finished else "in progress (partial)"
        rows = self.machine + [("run", f"{datetime.datetime.now().isoformat(timespec='minutes')}, "
                                       f"{minutes:.1f} min, {status}")]
        command = "python -m benchmarks" + ("" if not self.argv else " " + " ".join(self.argv))
        text = render_markdown("Sketchpad benchmarks", command, rows, self.figures, INTRO, METHOD, self.notes)
        Path(self.args.out).write_text(text, encoding="utf-8")

    def section(self, name: str, work, own_thread: bool = True) -> None:
        """Run one section, by default on a fresh thread that ends with it (see THREADS)."""
        self.say(f"\n== {name} ==")
        started = time.perf_counter()

        def guarded():
            try:
                work()
            except Exception as error:  # one failing section must not lose the others' figures
                traceback.print_exc()
                self.notes.append(f"section '{name}' failed: {type(error).__name__}: {error}")

        from .engine_bench import OtherLoad

        load = OtherLoad()
        if own_thread:
            thread = threading.Thread(target=guarded, name=f"bench {name}", daemon=True)
            thread.start()
            thread.join()
        else:
            guarded()
        share = load.share()
        self.say(f"   ({time.perf_counter() - started:.0f} s; other processes used {share:.0%} of the CPUs)")
        if share > 0.05:
            self.notes.append(f"While '{name}' ran, other processes used {share:.0%} of the machine's CPU time; "
                              "its figures are noisier than on an idle machine.")
        self.write(finished=False)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch

    from . import engine_bench as eb
    from . import live_bench as lb

    from sketchpad.core.errors import SketchpadError

    run = Run(args, argv)
    try:
        device = eb.resolve_device(args.device)
    except SketchpadError as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 2
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    ctx = eb.Context(device, dtype, emit=run.emit, say=run.say, notes=run.notes, guard=eb.LoadGuard(run.say))
    run.machine = eb.machine_rows(ctx)
    ui = None
    if args.no_ui:
        run.notes.append("Qt figures skipped (--no-ui).")
    elif importlib.util.find_spec("PySide6") is None:
        message = "Qt figures (UI responsiveness, worker restart, canvas) skipped: PySide6 is not installed."
        run.say(message)
        run.notes.append(message)
    else:
        from . import memory_bench as mb
        from . import ui_bench as ui

        run.machine.append(("PySide6", ui.QT_VERSION))
    if ui is not None and device.type != "cpu":
        run.notes.append("The Qt worker loads the model with the app's own dtype for the device (--dtype applies "
                         "to the engine figures only).")
    run.say("Sketchpad benchmarks: " + "; ".join(f"{k}: {v}" for k, v in run.machine))
    models_dir = Path(args.models_dir)
    if args.server:
        from . import comfy_bench

        run.section("ComfyUI server", lambda: comfy_bench.run(args.server, args.server_model, 128, 6, 6,
                                                              emit=run.emit, say=run.say, local="same"))

    for entry in plan(args):
        model = entry["model"]
        folder = eb.ensure_model(models_dir, model, run.say)
        holder = {}

        def load():
            started = time.perf_counter()
            # one engine per pipeline: an engine hooks its stop checks into the pipeline's UNet for good
            holder["engine"] = eb.Img2ImgEngine(eb.load(folder, ctx), model, notify=ctx.note)
            run.say(f"loaded {model} from {folder} in {time.perf_counter() - started:.1f} s")

        run.section(f"load {model}", load)
        if "engine" not in holder:
            continue
        engine = holder["engine"]
        for setup in entry["preview"]:
            run.section(f"preview cost and overhead: {setup.label}",
                        lambda setup=setup: eb.bench_preview_cost(engine, setup, ctx))
        for setup, phases in entry["restart"]:
            run.section(f"live restart (engine): {setup.label}",
                        lambda setup=setup, phases=phases: eb.bench_restart(engine, setup, ctx, phases))
        if entry["memory"]:
            run.section("memory: 100 generations (engine)", lambda: eb.bench_memory(engine, ctx))
        for setup in entry["pools"]:
            run.section(f"thread pools: {setup.label}", lambda setup=setup: eb.bench_thread_pools(engine, setup, ctx))
        for setup in entry["live"]:  # last: it leaves a ControlNet loaded
            run.section(f"live-fast and ControlNet: {setup.label}",
                        lambda setup=setup: lb.bench_live(engine, setup, ctx, models_dir))
        holder.clear()
        del engine
        gc.collect()
        if ui is None:
            continue
        if entry["ui_canvas"]:
            run.section("canvas: stroke cost", lambda: ui.bench_strokes(run.emit, ctx.guard), own_thread=False)
            run.section("canvas: undo history bound", lambda: ui.bench_undo_bound(run.emit), own_thread=False)
        run.section(f"Qt worker: {model}", lambda: _worker_sections(ui, run, ctx.guard, folder, args.device, entry),
                    own_thread=False)
        gc.collect()
        if entry.get("window_memory"):
            runs = entry["window_memory"]["runs"]
            run.section(f"window: memory over {runs} live runs",
                        lambda: mb.bench_window_live_memory(folder, run.emit, say=run.say,
                                                            **entry["window_memory"]),
                        own_thread=False)
            gc.collect()
        if entry.get("recovery"):
            run.section("recovery: drawing lost after kill -9", lambda: mb.bench_drawing_lost(run.emit),
                        own_thread=False)

    run.write(finished=True)
    print(f"\nwrote {args.out} ({(time.perf_counter() - run.started) / 60:.1f} min)")
    misses = [fig for fig in run.figures if fig.passed is False]
    for fig in misses:
        print(f"MISS: [{fig.section}] {fig.setup} | {fig.name} (target {fig.target})")
    return 0


def _worker_sections(ui, run: Run, guard, folder: Path, device: str, entry) -> None:
    harness = ui.WorkerHarness(folder, device)
    try:
        for setup in entry["ui_stalls"]:
            ui.bench_gui_stalls(harness, setup, run.emit, guard)
        for setup, phases in entry["ui_restart"]:
            ui.bench_worker_restart(harness, setup, run.emit, guard, phases)
        if entry["memory"]:
            ui.bench_worker_memory(harness, run.emit)
    finally:
        harness.close()


if __name__ == "__main__":
    sys.exit(main())
