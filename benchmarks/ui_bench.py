"""Qt benchmarks: canvas painting cost, undo history bound, and the GUI thread while the worker generates.

Imported only when PySide6 is installed (see __main__). Runs offscreen unless QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import PySide6  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, QObject, QPointF, QRectF, QSizeF, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QImage, QMouseEvent, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from sketchpad.core.params import GenerationParams  # noqa: E402
from sketchpad.ui.canvas import SketchCanvas  # noqa: E402
from sketchpad.qimages import pil_to_qimage  # noqa: E402
from sketchpad.worker import GenerationWorker  # noqa: E402

from . import engine_bench as eb  # noqa: E402  (torch-only helpers; no Qt there)
from .report import Figure, percentile  # noqa: E402

QT_VERSION = PySide6.__version__


def app() -> QApplication:
    return QApplication.instance() or QApplication(["sketchpad-benchmarks"])


def _tails(values: list[float]) -> dict[str, float]:
    return {"p99": percentile(values, 0.99), "max": max(values)}


# ---- 4b: painting a stroke ------------------------------------------------------------------
class _PaintCounter(QObject):
    def __init__(self):
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def _mouse(kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton) -> QMouseEvent:
    return QMouseEvent(kind, pos, pos, button, buttons, Qt.KeyboardModifier.NoModifier)


def bench_strokes(emit: Callable[[Figure], None], guard: eb.LoadGuard, view: int = 768, brushes=(8, 64),
                  moves: int = 600) -> list[Figure]:
    """Mouse-move events on a 1024x1024 page shown in a `view`-pixel widget (scaled, as in the window).
    Per event: the handler (paint into the page, schedule the dirty rect) and then its repaint."""
    qapp = app()
    canvas = SketchCanvas()
    canvas.resize_canvas(1024, 1024)
    canvas.resize(view, view)
    canvas.show()
    counter = _PaintCounter()
    canvas.installEventFilter(counter)
    qapp.processEvents()
    figures = []
    setup = f"1024x1024 page in a {view}x{view} view"
    for brush in brushes:
        canvas.set_brush_size(brush)
        (handled, total, repaints, points), _ = guard.run(
            lambda: _stroke(qapp, canvas, counter, view, moves), f"the {brush} px stroke")
        segment = statistics.median(_distance(a, b) for a, b in zip(points, points[1:])) * 1024 / view
        figures.append(_emit(emit, Figure(
            "UI responsiveness", f"{setup}, brush {brush} px", "mouse-move: handler + its repaint", total, "s",
            target="<= 2 ms (p99)", passed=percentile(total, 0.99) <= 0.002, extra=_tails(total),
            note=f"{moves} moves, median segment {segment:.1f} page px, {repaints} repaints")))
        figures.append(_emit(emit, Figure(
            "UI responsiveness", f"{setup}, brush {brush} px", "mouse-move: handler only", handled, "s",
            extra=_tails(handled))))
    canvas.removeEventFilter(counter)
    canvas.close()
    canvas.deleteLater()
    return figures


def _stroke(qapp, canvas, counter, view: int, moves: int):
    """One long stroke: press, `moves` timed mouse moves (each followed by its repaint), release."""
    handled, total = [], []
    center = view / 2
    points = [QPointF(center + 0.4 * view * _sin(i * 0.011), center + 0.4 * view * _sin(i * 0.017 + 1.0))
              for i in range(moves + 1)]
    qapp.sendEvent(canvas, _mouse(QEvent.Type.MouseButtonPress, points[0], Qt.MouseButton.LeftButton,
                                  Qt.MouseButton.LeftButton))
    qapp.processEvents()
    counter.paints = 0
    for point in points[1:]:
        event = _mouse(QEvent.Type.MouseMove, point, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
        start = time.perf_counter()
        qapp.sendEvent(canvas, event)
        middle = time.perf_counter()
        qapp.processEvents()  # the repaint the move scheduled
        total.append(time.perf_counter() - start)
        handled.append(middle - start)
    repaints = counter.paints
    qapp.sendEvent(canvas, _mouse(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.LeftButton,
                                  Qt.MouseButton.NoButton))
    qapp.processEvents()
    return handled, total, repaints, points


def _sin(x: float) -> float:
    return math.sin(x)


def _distance(a: QPointF, b: QPointF) -> float:
    return ((a.x() - b.x()) ** 2 + (a.y() - b.y()) ** 2) ** 0.5


# ---- 5b: the undo history's byte bound -------------------------------------------------------
def bench_undo_bound(emit: Callable[[Figure], None], strokes: int = 400, budget: int = 8 * 2**20) -> list[Figure]:
    qapp = app()
    canvas = SketchCanvas(width=1024, height=1024, undo_budget_bytes=budget)
    canvas.resize(768, 768)
    canvas.show()
    qapp.processEvents()
    rng = random.Random(7)
    peaks, releases = [], []
    for _ in range(strokes):
        canvas.set_brush_size(rng.choice((4, 8, 16, 48, 120)))
        x, y = rng.uniform(50, 700), rng.uniform(50, 700)
        qapp.sendEvent(canvas, _mouse(QEvent.Type.MouseButtonPress, QPointF(x, y), Qt.MouseButton.LeftButton,
                                      Qt.MouseButton.LeftButton))
        for _ in range(12):
            x, y = min(760, max(5, x + rng.uniform(-40, 40))), min(760, max(5, y + rng.uniform(-40, 40)))
            qapp.sendEvent(canvas, _mouse(QEvent.Type.MouseMove, QPointF(x, y), Qt.MouseButton.NoButton,
                                          Qt.MouseButton.LeftButton))
        start = time.perf_counter()
        qapp.sendEvent(canvas, _mouse(QEvent.Type.MouseButtonRelease, QPointF(x, y), Qt.MouseButton.LeftButton,
                                      Qt.MouseButton.NoButton))
        releases.append(time.perf_counter() - start)
        peaks.append(canvas.undo_history_bytes())
        qapp.processEvents()
    worst = max(peaks)
    setup = f"1024x1024 page, {strokes} strokes, budget {budget / 2**20:.0f} MiB"
    figures = [
        _emit(emit, Figure("Memory", setup, "undo history bytes after each stroke", peaks, "B",
                           reference="budget", ratio=worst / budget, target="<= budget (every stroke)",
                           passed=worst <= budget, extra={"max": worst},
                           note=f"{canvas.undo_stack().count()} commands kept at the end")),
        _emit(emit, Figure("UI responsiveness", setup, "stroke release (commit + history trim)", releases, "s",
                           extra=_tails(releases))),
    ]
    canvas.close()
    canvas.deleteLater()
    return figures


# ---- the worker, driven as the window drives it ------------------------------------------------
class _ImageView(QWidget):
    """Stand-in for the preview panel: draws the newest preview scaled to fit, smoothly."""

    def __init__(self):
        super().__init__()
        self.image = QImage()
        self.resize(512, 512)

    def set_image(self, image: QImage) -> None:
        self.image = image
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(event.rect(), Qt.GlobalColor.darkGray)
        if not self.image.isNull():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            size = QSizeF(self.image.size()).scaled(QSizeF(self.size()), Qt.AspectRatioMode.KeepAspectRatio)
            painter.drawImage(QRectF((self.width() - size.width()) / 2, (self.height() - size.height()) / 2,
                                     size.width(), size.height()), self.image)


class WorkerHarness:
    """A GenerationWorker plus a log of its signals as the GUI thread receives them."""

    def __init__(self, model_dir: Path, device: str, timeout: float = 900.0):
        self.timeout = timeout
        self.events: list[tuple[str, int, int, float]] = []
        self.view = _ImageView()
        self.view.show()
        self.worker = GenerationWorker()
        self._loop: QEventLoop | None = None
        self._until: Callable[[], bool] = lambda: True
        w = self.worker
        w.model_ready.connect(lambda *_: self._log("ready", 0))
        w.model_failed.connect(lambda reason: self._log("failed", 0, note=reason))
        w.step_preview.connect(self._on_step)
        w.result_ready.connect(lambda outcome: self._log("done", outcome.request_id))
        w.request_cancelled.connect(lambda rid: self._log("cancelled", rid))
        w.request_failed.connect(lambda rid, reason: self._log("failed", rid, note=reason))
        self.failure = ""
        w.load_model(str(model_dir), device)
        self.wait(lambda: self.find("ready") is not None or self.find("failed") is not None)
        if self.find("ready") is None:
            raise RuntimeError(f"the worker could not load {model_dir}: {self.failure}")
        # when each UNet evaluation begins (on the worker thread); the worker's own pipeline, benchmark only
        self.unet_calls: list[float] = []
        self._unet_hook = self.worker._engine.pipe.unet.register_forward_pre_hook(
            lambda *_: self.unet_calls.append(time.perf_counter()))

    def _on_step(self, rid: int, step: int, total: int, image: QImage) -> None:
        self.view.set_image(image)
        self._log("step", rid, step)

    def _log(self, kind: str, rid: int, step: int = 0, note: str = "") -> None:
        self.events.append((kind, rid, step, time.perf_counter()))
        if note:
            self.failure = note
        if self._loop is not None and self._until():
            self._loop.quit()

    def find(self, kind: str, rid: int = 0, step: int = 0) -> float | None:
        return next((t for k, i, s, t in self.events if k == kind and i == rid and s == step), None)

    def ended(self, rid: int) -> float | None:
        return next((t for k, i, _, t in self.events if k in ("done", "cancelled", "failed") and i == rid), None)

    def wait(self, until: Callable[[], bool], timeout: float | None = None) -> None:
        """Run the GUI event loop until `until()` holds (checked on every worker signal)."""
        if until():
            return
        loop = QEventLoop()
        self._loop, self._until = loop, until
        QTimer.singleShot(int((timeout or self.timeout) * 1000), loop.quit)
        loop.exec()
        self._loop = None
        if not until():
            raise TimeoutError("the worker did not answer in time")

    def close(self) -> None:
        self.worker.stop()
        self._unet_hook.remove()
        self.view.close()


class _StallProbe:
    """A 1 ms precise QTimer on the GUI thread; the gaps between its ticks are the thread's stalls."""

    def __init__(self):
        self.gaps: list[float] = []
        self._last: float | None = None
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(1)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = None
        self._timer.start()

    def stop(self) -> list[float]:
        self._timer.stop()
        return list(self.gaps)


def bench_gui_stalls(harness: WorkerHarness, setup: eb.Setup, emit: Callable[[Figure], None], guard: eb.LoadGuard,
                     methods=("latent2rgb",), idle_seconds: float = 1.0) -> list[Figure]:
    sketch = pil_to_qimage(eb.stick_figure(setup.size))
    probe = _StallProbe()
    figures = []
    probe.start()
    loop = QEventLoop()
    QTimer.singleShot(int(idle_seconds * 1000), loop.quit)
    loop.exec()
    idle = probe.stop()
    figures.append(_emit(emit, Figure("UI responsiveness", setup.label, "GUI thread gap, idle (1 ms timer)", idle, "s",
                                      extra=_tails(idle), note="the probe's own resolution")))
    for method in methods:
        params = eb.base_params(setup, preview_method=method)

        def probed_run() -> list[float]:
            probe.start()
            rid = harness.worker.request(params, sketch)
            harness.wait(lambda: harness.ended(rid) is not None)
            return probe.stop()

        gaps, share = guard.run(probed_run, f"the GUI probe ({method})")
        seconds = sum(gaps)
        figures.append(_emit(emit, Figure(
            "UI responsiveness", setup.label, f"GUI thread gap while the worker generates ({method} previews)", gaps, "s",
            target="<= 16 ms (max)", passed=max(gaps) <= 0.016, extra=_tails(gaps),
            note=f"{len(gaps)} ticks over {seconds:.1f} s; previews drawn scaled into a 512 px view; "
                 f"other processes {share:.0%}")))
    return figures


def bench_worker_restart(harness: WorkerHarness, setup: eb.Setup, emit: Callable[[Figure], None],
                         guard: eb.LoadGuard, phases: list[float]) -> list[Figure]:
    """The live restart through the real worker and Qt signals: times are when the GUI thread sees them."""
    sketch = pil_to_qimage(eb.stick_figure(setup.size))
    stale = eb.base_params(setup, strength=0.6, steps=setup.steps + 3, preview_method="latent2rgb")
    fresh = eb.base_params(setup, strength=eb.DENOISE, preview_method="latent2rgb")
    warm = harness.worker.request(stale, sketch)  # fills the caches
    harness.wait(lambda: harness.ended(warm) is not None)
    rows = []

    def trial(phase: float) -> dict:
        a = harness.worker.request(stale, sketch)
        harness.wait(lambda: harness.find("step", a, 2) is not None)
        step = harness.find("step", a, 2) - harness.find("step", a, 1)
        sent: dict[str, float] = {}

        def send():
            sent["t0"] = time.perf_counter()
            sent["id"] = harness.worker.request(fresh, sketch)

        QTimer.singleShot(max(0, round(phase * step * 1000)), send)
        harness.wait(lambda: "id" in sent and harness.find("step", sent["id"], 1) is not None
                     and harness.ended(a) is not None)
        b, t0 = sent["id"], sent["t0"]
        stale_after = [t for k, i, _, t in harness.events if k == "step" and i == a and t > t0]
        in_flight = stale_after[0] - harness.find("step", a, 2) if stale_after else step
        harness.worker.cancel()
        harness.wait(lambda: harness.ended(b) is not None)
        first, unet = harness.find("step", b, 1) - t0, next(t for t in harness.unet_calls if t > t0) - t0
        return dict(step=step, in_flight=in_flight, stale_steps=len(stale_after), stopped=harness.ended(a) - t0,
                    first=first, excess=unet, own_step=first - unet)

    for phase in phases:
        rows.append(guard.run(lambda: trial(phase), f"the worker restart trial at phase {phase:.2f}")[0])
    label = f"{setup.label} (GenerationWorker, Qt signals)"
    figures: list[Figure] = []

    def add(name, values, **kw):
        figures.append(_emit(emit, Figure("Live restart", label, name, values, "s", **kw)))

    add("request -> stale run's request_cancelled", [r["stopped"] for r in rows], reference="the step in flight",
        ratio=max(r["stopped"] / r["in_flight"] for r in rows), target="<= 1 step (every trial)",
        passed=all(r["stopped"] <= r["in_flight"] and r["stale_steps"] <= 1 for r in rows),
        extra={"max": max(r["stopped"] for r in rows)},
        note=f"step time median {statistics.median(r['step'] for r in rows) * 1e3:.1f} ms")
    eb.first_preview_figure(add, rows, "request -> first step_preview of the new run")
    return figures


def bench_worker_memory(harness: WorkerHarness, emit: Callable[[Figure], None], generations: int = 100,
                        size: int = 128) -> list[Figure]:
    sketches = [pil_to_qimage(eb.stick_figure(size, variant)) for variant in range(7)]
    curve = {}
    for index in range(1, generations + 1):
        params = GenerationParams(f"{eb.PROMPT}, variant {index % 13}", strength=0.3 + 0.05 * (index % 12), steps=4,
                                  seed=index, preview_method=("latent2rgb", "taesd")[index % 2])
        rid = harness.worker.request(params, sketches[index % len(sketches)])
        harness.wait(lambda: harness.ended(rid) is not None)
        if index in (5, generations):
            curve[index] = eb.rss_mb()
    growth = curve[generations] - curve[5]
    return [_emit(emit, Figure(
        "Memory", f"tiny {size}x{size}, 4 steps", f"RSS growth, {generations} generations vs 5 (GenerationWorker)",
        [growth], "MB", target="<= 50 MB", passed=growth <= 50.0,
        note=f"RSS after 5: {curve[5]:.0f} MB, after {generations}: {curve[generations]:.0f} MB"))]


def _emit(emit: Callable[[Figure], None], fig: Figure) -> Figure:
    emit(fig)
    return fig
