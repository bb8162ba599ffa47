"""Long sessions and crashes: RSS of the real window over many live runs, drawing lost to a kill -9.

Imported only when PySide6 is installed (see __main__). Runs offscreen unless QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from . import engine_bench as eb  # noqa: E402
from .report import Figure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RSS_TARGET_MB = 50.0


def bench_window_live_memory(model_dir: Path, emit: Callable[[Figure], None], runs: int = 1000, size: int = 256,
                             steps: int = 2, early: int = 10, timeout: float = 120.0,
                             say: Callable[[str], None] = print) -> list[Figure]:
    """Live mode in the real MainWindow + GenerationWorker: turn the dial, wait for the result on screen."""
    from sketchpad.ui.main_window import MainWindow
    from sketchpad.worker import GenerationWorker

    from .ui_bench import app

    app()
    with tempfile.TemporaryDirectory(prefix="sketchpad-memory-bench-") as scratch:
        scratch = Path(scratch)
        settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
        worker = GenerationWorker()
        window = MainWindow(worker, model=str(model_dir), device="cpu", output_dir=scratch / "out",
                            settings=settings, state_dir=scratch / "state")
        window.confirm_discard = lambda: True
        window.canvas.resize_canvas(size, size)
        window.panel.set_params(window.panel.params().replace(steps=steps, scheduler="euler", prompt="a knight"))
        window.panel.set_locked(False)
        window.show()
        rss: dict[int, float] = {}
        try:
            _wait_for(worker.model_ready, window.start, timeout)
            window.panel.set_live(True)
            values = _dial_values(steps)
            for run in range(1, runs + 1):
                value = values[run % len(values)]
                before = _shown_request(window)
                _wait_for(worker.result_ready, lambda v=value: window.panel.dial.setValue(v), timeout,
                          until=lambda b=before: _shown_request(window) > b)
                if run in (early, runs) or run % 100 == 0:
                    rss[run] = eb.rss_mb()
                    say(f"  after {run} live runs: RSS {rss[run]:.0f} MB")
        finally:
            window.close()
            worker.stop()
    growth = rss[runs] - rss[early]
    return [_emit(emit, Figure(
        "Memory", f"tiny, {size}x{size} canvas, {steps} steps, live dial",
        f"RSS growth, {runs} live runs vs {early} (MainWindow + GenerationWorker)", [growth], "MB",
        target=f"<= {RSS_TARGET_MB:.0f} MB", passed=growth <= RSS_TARGET_MB,
        note=f"RSS after {early}: {rss[early]:.0f} MB, after {runs}: {rss[runs]:.0f} MB"))]


def _dial_values(steps: int) -> list[int]:
    """Dial positions (hundredths) in which each runs other steps than the one before, so every turn
    is a new request (Live skips a value that runs the steps already on show)."""
    from sketchpad.core.schedule import plan_denoise

    values, last = [], None
    for value in [20 + (i * 7) % 70 for i in range(70)]:
        plan = plan_denoise(steps, value / 100)
        if plan != last:
            values.append(value)
            last = plan
    if plan_denoise(steps, values[0] / 100) == last:
        values.pop()  # the cycle wraps round: its last and first must differ too
    return values


def _shown_request(window) -> int:
    shown = window.session.shown
    return 0 if shown is None else shown.request_id


def _wait_for(signal_, start: Callable[[], object], timeout: float, until: Callable[[], bool] | None = None) -> None:
    """Run the event loop from `start()` until `signal_` fires and `until()` holds."""
    loop = QEventLoop()
    check = until or (lambda: True)

    def maybe_quit(*_):
        if check():
            loop.quit()

    signal_.connect(maybe_quit)
    timer = QTimer(singleShot=True, interval=int(timeout * 1000))
    timer.timeout.connect(loop.quit)
    try:
        timer.start()
        start()
        if until is None or not check():
            loop.exec()
    finally:
        timer.stop()
        signal_.disconnect(maybe_quit)
    if until is not None and not check():
        raise TimeoutError("the window did not show the result in time")


# ---- drawing lost to a kill -9 -------------------------------------------------------------------------------

# A person drawing without pause in one window: a short stroke every STROKE_S, each on its own row, the
# end time of each printed as it lands. The autosaver runs at the window's interval.
_DRAWER = textwrap.dedent("""
    import sys, time
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from sketchpad.ui.autosave import SketchAutosaver
    from sketchpad.ui.canvas import SketchCanvas

    state, interval_ms, stroke_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    STROKES = 125
    app = QApplication([])
    app.setApplicationName("Sketchpad")
    canvas = SketchCanvas(width=256, height=512)
    canvas.set_brush_size(2)
    canvas.resize(256, 512)
    canvas.show()
    saver = SketchAutosaver(canvas, state, session=lambda: {"prompt": "drawing"}, interval_ms=interval_ms)
    point = lambda x, y: canvas.image_to_widget(QPointF(x, y)).toPoint()
    left = Qt.MouseButton.LeftButton
    for k in range(STROKES):
        y = 4 + 4 * k  # stroke k is the only one near row y
        QTest.mousePress(canvas, left, Qt.KeyboardModifier.NoModifier, point(20, y))
        for x in (60, 100, 140):
            QTest.mouseMove(canvas, point(x, y))
        QTest.mouseRelease(canvas, left, Qt.KeyboardModifier.NoModifier, point(180, y))
        print(k, time.time(), flush=True)
        deadline = time.monotonic() + stroke_s
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.005)
""")


def bench_drawing_lost(emit: Callable[[Figure], None], trials: int = 10, interval_ms: int = 2000,
                       stroke_s: float = 0.1, seed: int = 1) -> list[Figure]:
    """Draw continuously in a child process, SIGKILL it at a random moment, see what recovery offers back."""
    from sketchpad.ui.autosave import SketchAutosaver
    from sketchpad.ui.canvas import SketchCanvas

    from .ui_bench import app

    app()
    chance = random.Random(seed)
    lost = []
    for _ in range(trials):
        with tempfile.TemporaryDirectory(prefix="sketchpad-kill-bench-") as state:
            child = subprocess.Popen([sys.executable, "-c", _DRAWER, state, str(interval_ms), str(stroke_s)],
                                     cwd=REPO, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
                                     stdout=subprocess.PIPE, text=True)
            ends = {}
            kill_after = chance.uniform(3.0, 9.0)  # past the first snapshot, anywhere in the cycle
            started = None
            while True:
                line = child.stdout.readline()
                if not line:
                    raise RuntimeError("the drawing process ended early")
                k, at = line.split()
                ends[int(k)] = float(at)
                started = started or float(at)
                if float(at) - started >= kill_after:
                    break
            killed_at = time.time()
            child.send_signal(signal.SIGKILL)
            child.wait()
            canvas = SketchCanvas(width=256, height=512)
            saver = SketchAutosaver(canvas, Path(state), interval_ms=interval_ms)
            offered = saver.orphans()
            for recovered in offered:
                saver.take(recovered)
            saver.discard()
            kept = _strokes_in(offered[0].image) if offered else set()
            last_kept = max(kept, default=None)
            lost.append(killed_at - (ends[last_kept] if last_kept is not None else started))
    return [_emit(emit, Figure(
        "Recovery", f"autosave every {interval_ms / 1000:g} s, a stroke every {stroke_s * 1000:.0f} ms, "
        f"{trials} kills at random moments", "drawing lost after kill -9 (time since the last recovered stroke)",
        lost, "s", extra={"max": max(lost)},
        note=f"median {statistics.median(lost):.2f} s, max {max(lost):.2f} s"))]


def _strokes_in(image: QImage) -> set[int]:
    """Which strokes the recovered picture holds: stroke k darkened row 4 + 4k between x = 20 and 180."""
    return {k for k in range(125) if image.pixelColor(100, 4 + 4 * k).lightness() < 128}


def _emit(emit: Callable[[Figure], None], fig: Figure) -> Figure:
    emit(fig)
    return fig
