"""Sweep figures, side by side in one run:

    python -m benchmarks.sweep_bench [--local full-size|same|tiny|none] [--local-size 64] [--local-steps 10]
        [--server URL ... | --comfyui DIR [--servers 2]] [--size 128] [--steps 4] [--cells 8] [--rounds 2]

Local engine: a k-cell denoise sweep (sweep_run.run_cells, caches empty at its start) against the sum
of its cells' own times, each cell run alone with the prompt and sketch already encoded (what a cell
cannot do without: its steps and its decode); the encoders run once per sweep, so the ratio is
1 + (one encode) / (the k cells' own time). Both clocks are given: the wall clock, and this process's CPU time, which
other processes on a shared machine hardly change. Also k separate uncached runs (what a sweep saves),
and the UNet calls of a sweep whose values partly run the same steps.
ComfyUI: an 8-cell sweep (4 denoises x 2 seeds) on the first server alone and spread over all of
them. `--comfyui DIR` starts the servers itself (DIR/main.py with DIR/.venv, --cpu, each pinned to
a core of its own with taskset, on free loopback ports) and stops them afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

from .report import Figure, console_line, render_markdown

SECTION_LOCAL, SECTION_SERVERS = "Sweep: local engine", "Sweep: ComfyUI servers"
LOCAL_VALUES = (0.3, 0.45, 0.6, 0.75, 0.9)
SERVER_VALUES = (0.3, 0.5, 0.7, 0.9)


def bench_local(engine, size: int, steps: int, rounds: int, emit, say) -> None:
    from sketchpad.core.params import GenerationParams
    from sketchpad.core.sweep import DENOISE, plan_sweep
    from sketchpad.sweep_run import run_cells

    from .comfy_bench import _sketch
    from .engine_bench import clear_caches, count_calls

    sketch = _sketch(size)
    plan = plan_sweep(GenerationParams("a cat", steps=steps, seed=1, scheduler="euler", preview_method="none"),
                      DENOISE, LOCAL_VALUES)
    setup = f"{engine.model_name}, {size}x{size}, {steps} steps, {len(plan.cells)} cells, {engine.device_name}"
    say(f"local: {setup}")

    def timed(work) -> tuple[float, float]:
        """Wall-clock and CPU seconds (this process, all its threads: what others' load hardly changes)."""
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - wall, time.process_time() - cpu

    def total(pairs) -> tuple[float, float]:
        return tuple(map(sum, zip(*pairs)))

    def own() -> tuple[float, float]:  # each cell alone, its prompt and sketch already encoded
        engine.generate(plan.cells[0].params, sketch)
        return total(timed(lambda cell=cell: engine.generate(cell.params, sketch)) for cell in plan.cells)

    def sweep() -> tuple[float, float]:
        clear_caches(engine)
        return timed(lambda: run_cells(plan.cells, [engine], sketch))

    def separate() -> tuple[float, float]:  # k runs of their own, each encoding prompt and sketch again
        def one(cell):
            clear_caches(engine)
            return timed(lambda: engine.generate(cell.params, sketch))

        return total(one(cell) for cell in plan.cells)

    with count_calls(engine.pipe.text_encoder) as text_calls, count_calls(engine.pipe.vae.encoder) as sketch_calls:
        sweep()  # also the warm-up
    for name, calls, expected in (("text encoder", text_calls, 2), ("VAE encoder", sketch_calls, 1)):
        emit(Figure(SECTION_LOCAL, setup, f"{name} calls in one sweep", [float(calls[0])], "x",
                    target=f"{expected} (as one run of its own)", passed=calls[0] == expected))
    sweeps, owns, separates, shares, stolen = [], [], [], [], []
    for index in range(rounds):
        wait_quiet((), say)
        load = OthersLoad()
        for work, into in ((own, owns), (sweep, sweeps), (separate, separates))[::1 if index % 2 == 0 else -1]:
            into.append(work())
        shares.append(load.share())
        stolen.append(load.stolen())
    note = (f"other processes used {statistics.median(shares):.0%} of the CPUs during a round (median); "
            f"the host took {max(stolen):.0%} at most")
    emit(Figure(SECTION_LOCAL, setup, "sweep wall time (prompt and sketch encoded once)", [w for w, _ in sweeps], "s"))
    emit(Figure(SECTION_LOCAL, setup, "sum of the cells' own times (each alone, encodings cached)",
                [w for w, _ in owns], "s"))
    for clock, which in (("wall-clock", 0), ("CPU", 1)):
        ratios = [s[which] / o[which] for s, o in zip(sweeps, owns)]
        emit(Figure(SECTION_LOCAL, setup, f"sweep / sum of its cells' own times ({clock})", ratios, "x",
                    target="<= 1.05x", passed=statistics.median(ratios) <= 1.05, note=note))
    emit(Figure(SECTION_LOCAL, setup, "separate uncached runs / sweep (CPU)",
                [s[1] / w[1] for s, w in zip(separates, sweeps)], "x", note="what encoding once saves"))
    merged = plan_sweep(plan.params, DENOISE, (0.7, 0.72, 0.74, 0.3, 0.31))  # at 4 steps: 3 pictures
    with count_calls(engine.pipe.unet) as unet_calls:
        run_cells(merged.cells, [engine], sketch)
    expected = sum(cell.plan.run_steps for cell in merged.cells)
    emit(Figure(SECTION_LOCAL, setup, f"UNet calls, {len(merged.values)} values making {len(merged.cells)} pictures",
                [float(unet_calls[0])], "x", target=f"{expected} (each distinct picture once)",
                passed=unet_calls[0] == expected))


class OthersLoad:
    """CPU time of the processes other than this one and `ours` (the servers it started, with their
    children), as a share of the whole machine, since creation."""

    def __init__(self, ours: tuple[int, ...] = ()):
        self._ours = [psutil.Process()] + [psutil.Process(pid) for pid in ours]
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        system = psutil.cpu_times()
        # work done on this machine's CPUs: not idle, waiting or stolen by the host (guest time is in user)
        busy = sum(getattr(system, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
        mine = 0.0
        for process in self._ours:
            for each in [process, *process.children(recursive=True)]:
                try:
                    times = each.cpu_times()
                    mine += times.user + times.system
                except psutil.Error:
                    pass
        return time.perf_counter(), busy - mine, getattr(system, "steal", 0.0)

    def share(self) -> float:
        return self._shares()[0]

    def stolen(self) -> float:
        """The share of the machine's CPU time its host gave to other virtual machines meanwhile."""
        return self._shares()[1]

    def _shares(self) -> tuple[float, float]:
        (t0, theirs0, steal0), (t1, theirs1, steal1) = self._start, self._sample()
        capacity = max((t1 - t0) * (os.cpu_count() or 1), 1e-9)
        return max(0.0, theirs1 - theirs0) / capacity, max(0.0, steal1 - steal0) / capacity


def wait_quiet(ours: tuple[int, ...], say, quiet: float = 0.1, limit: float = 120.0) -> float:
    """Wait (at most `limit` seconds) until other processes use under `quiet` of the CPUs; their share."""
    deadline, told = time.monotonic() + limit, False
    while True:
        load = OthersLoad(ours)
        time.sleep(1.0)
        share = load.share()
        if share < quiet or time.monotonic() > deadline:
            return share
        if not told:
            say(f"  waiting for other processes to quieten (they use {share:.0%} of the CPUs)")
            told = True


def bench_servers(urls: list[str], model: str | None, size: int, steps: int, cells: int, rounds: int,
                  emit, say, ours: tuple[int, ...] = ()) -> None:
    from sketchpad.backends.loading import close_backend, open_backend
    from sketchpad.core.params import GenerationParams
    from sketchpad.core.sweep import DENOISE, plan_sweep
    from sketchpad.sweep_run import run_cells

    from .comfy_bench import _sketch

    sketch = _sketch(size)
    backends = [open_backend(model, "cpu", say, server=url) for url in urls]
    setup = (f"{backends[0].model_name}, {size}x{size}, {steps} steps, {cells} cells; servers: "
             f"{len(backends)} (one CPU core each)")
    say(f"servers: {setup}")

    def sweep(seed: int, on: list) -> float:
        # a new seed each time: the servers re-run the sampler, their caches keep prompt and sketch
        values = SERVER_VALUES * ((cells + len(SERVER_VALUES) - 1) // len(SERVER_VALUES))
        plan = plan_sweep(GenerationParams("a cat", steps=steps, seed=seed, scheduler="euler", preview_method="none"),
                          DENOISE, values[:cells // 2], batch=2)
        wait_quiet(ours, say)
        load = OthersLoad(ours)
        started = time.perf_counter()
        run_cells(plan.cells, on, sketch)
        shares.append(load.share())
        stolen.append(load.stolen())
        return time.perf_counter() - started

    shares: list[float] = []
    stolen: list[float] = []
    try:
        for index, backend in enumerate(backends):  # each loads the checkpoint and encodes once
            sweep(1000 + index, [backend])
        shares.clear()
        stolen.clear()
        ones, alls = [], []
        for index in range(rounds):
            pair = ((ones, backends[:1]), (alls, backends))
            for into, on in pair[::1 if index % 2 == 0 else -1]:
                into.append(sweep(2000 + 10 * len(ones) + len(on), on))
    finally:
        for backend in backends:
            close_backend(backend)
    ratios = [a / o for a, o in zip(alls, ones)]
    whose = "other processes (not the servers)" if ours else "other processes (the servers included)"
    note = (f"{whose} used {statistics.median(shares):.0%} of the CPUs during a sweep (median), at most "
            f"{max(shares):.0%}; the host took {max(stolen):.0%} at most")
    emit(Figure(SECTION_SERVERS, setup, "sweep wall time on one server", ones, "s"))
    emit(Figure(SECTION_SERVERS, setup, f"sweep wall time spread over {len(backends)} servers", alls, "s"))
    emit(Figure(SECTION_SERVERS, setup, f"{len(backends)} servers / one", ratios, "x", target="<= 0.6x",
                passed=statistics.median(ratios) <= 0.6, note=note))


@contextmanager
def comfyui_servers(folder: Path, count: int, say):
    """`count` ComfyUI servers from `folder`, each pinned to a core of its own, on free loopback ports,
    with folders of their own (never another server's); stopped on leaving."""
    python = folder / ".venv" / "bin" / "python"
    workdir = Path(tempfile.mkdtemp(prefix="sketchpad-sweep-bench-"))
    processes, urls = [], []
    try:
        for index in range(count):
            own = workdir / f"server-{index}"
            for name in ("input", "output", "temp", "user"):
                (own / name).mkdir(parents=True)
            port = _free_port()
            command = [str(python), str(folder / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                       "--preview-method", "latent2rgb", "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
                       *(f"--{name}-directory={own / name}" for name in ("input", "output", "temp", "user"))]
            if shutil.which("taskset"):
                command = ["taskset", "-c", str(index % (os.cpu_count() or 1)), *command]
            log = open(own / "server.log", "wb")
            processes.append(subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                              env=dict(os.environ, OMP_NUM_THREADS="1")))
            say(f"started ComfyUI on port {port} (log: {own / 'server.log'})")
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes):
            _wait_until_up(url, process)
        yield urls, tuple(process.pid for process in processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the ComfyUI server for {url} exited with code {process.returncode}; see its log")
        try:
            urllib.request.urlopen(f"{url}/system_stats", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _local_engine(kind: str, models_dir: Path, say):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    if kind == "full-size":
        from . import engine_bench as eb

        folder = eb.ensure_model(models_dir, kind, say)
        ctx = eb.Context(eb.resolve_device("auto"), None, emit=lambda fig: None)
        return Img2ImgEngine(eb.load(folder, ctx), kind)
    from .comfy_bench import _LOCAL_LABELS, _local_pipeline

    return Img2ImgEngine(_local_pipeline(kind), _LOCAL_LABELS[kind].split(" (")[0])


def main(argv=None) -> int:
    from .__main__ import REPO

    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", choices=("full-size", "same", "tiny", "none"), default="full-size",
                        help="the local engine's model: full-size SD1.5 (default; random weights, written once "
                        "into --models-dir), the server checkpoint's one-level architecture, the tests' tiny one, "
                        "or none")
    parser.add_argument("--local-size", type=int, default=64, help="the local sketch's side (default 64)")
    parser.add_argument("--local-steps", type=int, default=10,
                        help="steps on the local engine (default 10: the encoders' share of a sweep is one "
                        "encode against k cells of this many steps, so fewer steps is the harder case)")
    parser.add_argument("--size", type=int, default=128, help="the sketch's side on the servers (default 128)")
    parser.add_argument("--steps", type=int, default=4, help="steps on the servers (default 4)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--server", action="append", default=[], metavar="URL", help="a running ComfyUI server")
    parser.add_argument("--comfyui", type=Path, metavar="DIR", help="start the servers from this ComfyUI checkout")
    parser.add_argument("--servers", type=int, default=2, help="how many to start with --comfyui (default 2)")
    parser.add_argument("--server-model", default=None, metavar="CKPT")
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--models-dir", default=str(REPO / ".bench-models"))
    parser.add_argument("--out", default=str(REPO / "BENCHMARKS-sweep.md"))
    args = parser.parse_args(argv)
    figures: list[Figure] = []

    def emit(fig: Figure) -> None:
        figures.append(fig)
        print(console_line(fig), flush=True)

    def say(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    with ExitStack() as stack:
        urls, ours = args.server, ()
        if args.comfyui is not None:
            urls, ours = stack.enter_context(comfyui_servers(args.comfyui, args.servers, say))
        if urls:
            bench_servers(urls, args.server_model, args.size, args.steps, args.cells, args.rounds, emit, say, ours)
    if args.local != "none":
        engine = _local_engine(args.local, Path(args.models_dir), say)
        bench_local(engine, args.local_size, args.local_steps, args.rounds, emit, say)
    shown = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.sweep_bench" + ("" if not shown else " " + " ".join(shown))
    rows = [("CPU cores", str(os.cpu_count())), ("run", f"{(time.perf_counter() - started) / 60:.1f} min")]
    Path(args.out).write_text(render_markdown("Sketchpad sweep benchmarks", command, rows, figures,
                                              [__doc__.split("\n\n", 2)[2].strip()], [], []), encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
