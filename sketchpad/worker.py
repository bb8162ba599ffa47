"""The only bridge between Qt and the backends: one long-lived thread that owns the active backend.

Modelled on Qt's Mandelbrot RenderThread: the GUI posts the newest request under a mutex and wakes
the thread; a run in flight checks `restart`/`abort` before every step and leaves at once, so a
stale run never pays for its final VAE decode. Only this thread ever touches the backend.

A sweep (core/sweep.py) is one request too: its cells run one after another on the same backend
(sweep_run.run_cells), each delivered as an ordinary result as it finishes; a newer request or
Cancel stops the rest, and the finished cells stay delivered. On a ComfyUI server, other servers
named for the sweep share its cells, each connected for that sweep only.

Signals are never emitted while the mutex is held: a slot may call straight back into request().
A model load (maybe a 2.7 GB first download) cannot be interrupted, so it runs on a daemon thread
that this one waits on while watching `abort`: stop() returns at once, and a model that finishes
loading after that is closed unused.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image
from PySide6.QtCore import QMutex, QMutexLocker, QThread, QWaitCondition, Signal
from PySide6.QtGui import QImage

from .backends import loading
from .core.backend import Waiting
from .core.errors import Failure, FailureKind, ServerState, SketchpadError
from .core.params import GenerationParams
from .core.server_address import display_address
from .core.result_archive import ResultArchive
from .core.storage import ResultInfo
from .core.sweep import Cell
from .qimages import numpy_to_qimage, pil_to_qimage, qimage_to_pil
from .sweep_run import CellResult, run_cells

log = logging.getLogger(__name__)

LOAD_POLL_SECONDS = 0.05  # how often a waiting load checks for stop(): well inside the 2 s quit budget
NO_MODEL_LOADED = "no model is loaded yet: choose one with Choose… beside Model"
IDLE_CHECK_MS = 1000  # how often an idle server backend looks at its connection, so the status line is true


@dataclass(frozen=True)
class Outcome:
    """A finished run, as the GUI needs it."""

    request_id: int
    image: QImage
    info: ResultInfo
    sketch: QImage
    seconds: float
    archived: Path | None = None  # where the result archive kept it, if it could


@dataclass(frozen=True)
class _Job:
    request_id: int
    params: GenerationParams
    sketch: QImage


@dataclass(frozen=True)
class _SweepJob:
    request_id: int
    cells: tuple[Cell, ...]
    sketch: QImage
    servers: tuple[str, ...] = ()  # other ComfyUI servers sharing the cells


@dataclass(frozen=True)
class _ModelChoice:
    model: str | None
    device: str
    server: str | None


class _Load:
    """One backend being opened on its own daemon thread; abandoning it closes what it opens too late."""

    def __init__(self, choice: _ModelChoice, notify, on_state=None):
        self.choice, self.notify, self.on_state = choice, notify, on_state
        self.done = threading.Event()
        self.progress: queue.SimpleQueue[str] = queue.SimpleQueue()  # lines for the worker to emit
        self.backend = None
        self.failure: Failure | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        self.thread = threading.Thread(target=self._run, name="sketchpad-model-load", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            backend = loading.open_backend(self.choice.model, self.choice.device, self.progress.put,
                                           server=self.choice.server, notify=self.notify,
                                           on_state=self.on_state)
        except SketchpadError as error:
            log.info("loading %s failed: %s", self.choice.model, error, exc_info=error.__cause__ is not None)
            self.failure = Failure.of(error)
        except Exception as error:  # keep the app alive whatever the libraries throw
            log.exception("loading %s failed", self.choice.model)
            text = " ".join(str(error).split())[:200] or type(error).__name__
            self.failure = Failure(Failure.of(error).kind, f"could not load the model: {text}")
        else:
            with self._lock:
                if not self._abandoned:
                    self.backend, backend = backend, None
            if backend is not None:  # nobody wants it any more
                loading.close_backend(backend)
        finally:
            self.done.set()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True


class GenerationWorker(QThread):
    model_loading = Signal(str)  # a progress line
    model_ready = Signal(str, str)  # model name, device name
    model_failed = Signal(object)  # Failure
    step_preview = Signal(int, int, int, QImage)  # request id, step (1-based), total, preview
    result_ready = Signal(object)  # Outcome
    request_waiting = Signal(int, object)  # request id, Waiting (queued on a server, the model loading there)
    request_failed = Signal(int, object)  # request id, Failure
    request_cancelled = Signal(int)  # request id (replaced by a newer one, or cancelled)
    notice = Signal(str)
    server_state = Signal(object)  # a server backend's connection: a ServerState
    server_offers = Signal(object, object, object)  # a server's checkpoints, LoRAs and ControlNets, once ready
    cell_step = Signal(int, object, int, int, QImage)  # sweep request id, Cell, step (1-based), total, preview
    cell_ready = Signal(object, object)  # Cell, Outcome: one finished cell of a sweep
    sweep_finished = Signal(int)  # sweep request id: every cell ran (else request_cancelled or request_failed)

    def __init__(self, parent=None, *, archive: ResultArchive | None = None):
        super().__init__(parent)
        self._mutex = QMutex()
        self._wake = QWaitCondition()
        self._job: _Job | _SweepJob | None = None
        self._model_request: _ModelChoice | None = None
        self._next_id = 0
        self._cancel_up_to = 0  # requests with an id <= this are abandoned
        self._restart = False
        self._abort = False
        self._engine = None  # the active backend; only the worker thread touches it
        self._archive = archive
        self._embed_sketch = True  # kept results carry the sketch they were made from
        self._abandoned_loads: list[_Load] = []

    # ---- called from the GUI thread ------------------------------------------------------
    def load_model(self, model: str | None, device: str = "auto", server: str | None = None) -> None:
        """Replace the backend: the old one is closed before the new one loads, so both never fill memory."""
        with QMutexLocker(self._mutex):
            self._model_request = _ModelChoice(model, device, server)
            self._restart = True
            self._wake_locked()

    def request(self, params: GenerationParams, sketch: QImage) -> int:
        """Queue a run; it replaces any queued one and abandons the one in flight. Returns its id."""
        with QMutexLocker(self._mutex):
            self._next_id += 1
            self._job = _Job(self._next_id, params, sketch.copy())
            self._restart = True
            self._wake_locked()
            return self._next_id

    def request_sweep(self, cells, sketch: QImage, servers=()) -> int:
        """Queue a sweep's cells (core.sweep.Cell), run in this order; like request(), it replaces
        any queued request and abandons the one in flight. `servers`: other ComfyUI servers that
        share the cells when the model runs on a server. Returns its id."""
        with QMutexLocker(self._mutex):
            self._next_id += 1
            self._job = _SweepJob(self._next_id, tuple(cells), sketch.copy(), tuple(servers))
            self._restart = True
            self._wake_locked()
            return self._next_id

    def cancel(self) -> None:
        """Abandon the queued request and the one in flight; each says request_cancelled once."""
        with QMutexLocker(self._mutex):
            self._cancel_up_to = self._next_id
            queued, self._job = self._job, None
            self._restart = True
        if queued is not None:  # outside the lock: a slot may call request() right back
            self.request_cancelled.emit(queued.request_id)

    def set_archive(self, archive: ResultArchive | None) -> None:
        """Where finished results are kept from now on (None: nowhere)."""
        self._archive = archive  # one reference swap; the worker reads it once per result

    def set_embed_sketch(self, on: bool) -> None:
        """Whether kept results carry their sketch from now on."""
        self._embed_sketch = on  # read once per result, like the archive

    def stop(self) -> None:
        """Abandon everything and wait for the thread to end: within one step, or at once during a load."""
        with QMutexLocker(self._mutex):
            self._abort = True
            self._wake.wakeAll()  # never start() here: a thread that never ran has nothing to stop
        self.wait()

    def has_model(self) -> bool:
        return self._engine is not None

    def loading_in_background(self) -> bool:
        """True while a load given up by stop() still runs (a download, say): it cannot be interrupted."""
        return any(load.thread.is_alive() for load in self._abandoned_loads)

    def _wake_locked(self) -> None:
        if self._abort:  # stopped for good
            return
        if not self.isRunning():
            self.start()
        else:
            self._wake.wakeOne()

    # ---- the thread ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                watch_idle = getattr(self._engine, "check_idle", None)  # a server backend's; None locally
                with QMutexLocker(self._mutex):
                    while not self._abort and self._job is None and self._model_request is None:
                        if watch_idle is None:
                            self._wake.wait(self._mutex)
                        elif not self._wake.wait(self._mutex, IDLE_CHECK_MS):
                            break  # nothing asked for a while: time to look at the server
                    if self._abort:
                        return
                    choice, self._model_request = self._model_request, None
                    job = None
                    if choice is None:
                        job, self._job = self._job, None
                    self._restart = False
                if choice is not None:
                    self._load(choice)
                elif isinstance(job, _SweepJob):
                    self._sweep(job)
                elif job is not None:
                    self._generate(job)
                elif watch_idle is not None:
                    self._check_idle(watch_idle)
        finally:
            self._drop_backend()

    def _check_idle(self, check) -> None:
        try:
            check()  # between jobs, on this thread: the backend is never used by two threads at once
        except Exception:  # a watcher must never end the worker
            log.exception("watching the server between jobs failed")

    def _drop_backend(self) -> None:
        backend, self._engine = self._engine, None
        if backend is None:
            return
        try:
            loading.close_backend(backend)
        except Exception:  # a failing close must not keep the next model from loading
            log.exception("closing the backend failed")
        del backend  # the last reference: the weights go now, before the next model arrives
        loading.release_cached_memory()

    def _load(self, choice: _ModelChoice) -> None:
        self._drop_backend()  # free the old weights before the new ones arrive
        load = _Load(choice, self.notice.emit, self.server_state.emit)
        load.start()
        while not load.done.wait(LOAD_POLL_SECONDS):
            self._emit_progress(load)
            if self._abort:
                load.abandon()
                self._abandoned_loads.append(load)
                return
        self._emit_progress(load)
        if load.failure is not None:
            self.model_failed.emit(load.failure)
            return
        with QMutexLocker(self._mutex):
            superseded = self._model_request is not None or self._abort
        if superseded:  # another model was chosen meanwhile: it loads next, this one goes unused
            loading.close_backend(load.backend)
            return
        self._engine = load.backend
        if self._on_server():
            engine = self._engine
            self.server_offers.emit(tuple(engine.checkpoints), tuple(engine.loras), tuple(engine.controlnets))
        self.model_ready.emit(self._engine.model_name, getattr(self._engine, "device_name", ""))

    def _emit_progress(self, load: _Load) -> None:
        while True:
            try:
                line = load.progress.get_nowait()
            except queue.Empty:
                return
            self.model_loading.emit(line)

    def _stops(self, job) -> Callable[[], bool]:
        return lambda: self._abort or self._restart or job.request_id <= self._cancel_up_to

    def _generate(self, job: _Job) -> None:
        if self._engine is None:
            self.request_failed.emit(job.request_id, Failure(FailureKind.MODEL, NO_MODEL_LOADED))
            return
        should_stop = self._stops(job)

        def on_step(step) -> None:
            self.step_preview.emit(job.request_id, step.step, step.total, _preview_image(step))

        def on_waiting(waiting: Waiting) -> None:
            self.request_waiting.emit(job.request_id, waiting)

        sketch = qimage_to_pil(job.sketch)
        try:
            result = self._engine.generate(job.params, sketch, on_step, should_stop, on_waiting=on_waiting)
        except Exception as error:
            self._failed(job, error)
            return
        if result is None:
            self.request_cancelled.emit(job.request_id)
            return
        self.result_ready.emit(self._outcome(job, result, self._engine.model_name, sketch))

    def _sweep(self, job: _SweepJob) -> None:
        if self._engine is None:
            self.request_failed.emit(job.request_id, Failure(FailureKind.MODEL, NO_MODEL_LOADED))
            return

        def on_step(cell: Cell, step) -> None:
            self.cell_step.emit(job.request_id, cell, step.step, step.total, _preview_image(step))

        def on_done(done: CellResult) -> None:
            self.cell_ready.emit(done.cell, self._outcome(job, done.result, done.model_name, sketch))

        def on_lost(backend, error: SketchpadError) -> None:
            self.notice.emit(f"{error}; the other servers make its pictures")

        sketch = qimage_to_pil(job.sketch)
        helpers = self._helpers(job.servers) if job.servers and self._on_server() else []
        try:  # one backend: the cells run here, on this thread; several: a thread each (run_cells)
            finished = run_cells(job.cells, [self._engine, *helpers], sketch, on_step=on_step, on_done=on_done,
                                 on_waiting=lambda cell, waiting: self.request_waiting.emit(job.request_id, waiting),
                                 on_lost=on_lost, should_stop=self._stops(job))
        except Exception as error:  # the cells finished before it stay delivered
            self._failed(job, error)
            return
        finally:
            for helper in helpers:
                loading.close_backend(helper)
        if len(finished) < len(job.cells):
            self.request_cancelled.emit(job.request_id)
        else:
            self.sweep_finished.emit(job.request_id)

    def _on_server(self) -> bool:
        return getattr(self._engine, "checkpoints", None) is not None  # only a server backend lists them

    def _helpers(self, servers) -> list:
        """Backends on the other servers, on the checkpoint in use here; one that cannot be reached,
        or lacks that checkpoint, is said and left out."""
        opened = []
        for url in servers:
            try:
                opened.append(loading.open_backend(self._engine.model_name, "auto", lambda line: None, server=url,
                                                   notify=self.notice.emit))
            except SketchpadError as error:
                self.notice.emit(f"{display_address(url)} makes none of this sweep's pictures: {error}")
        return opened

    def _failed(self, job, error: Exception) -> None:
        if not isinstance(error, SketchpadError) or error.__cause__ is not None:
            log.error("request %d failed", job.request_id, exc_info=error)
        self.request_failed.emit(job.request_id, Failure.of(error))

    def _outcome(self, job, result, model_name: str, sketch: Image.Image) -> Outcome:
        info = ResultInfo.of(result, model_name)
        # a Live draft is shown, never kept: its refine (the same picture, fully decoded) is the result
        archived = None if result.params.draft else self._keep(result.image, info, sketch)
        return Outcome(job.request_id, pil_to_qimage(result.image), info, job.sketch, result.seconds, archived)

    def _keep(self, image: Image.Image, info: ResultInfo, sketch: Image.Image) -> Path | None:
        """Write the result to the archive here, off the GUI thread; a failure costs a notice, not the result."""
        archive = self._archive
        if archive is None:
            return None
        try:
            return archive.add(image, info, sketch=sketch if self._embed_sketch else None)
        except Exception as error:
            log.warning("keeping a result failed", exc_info=error)
            self.notice.emit(f"This result was not kept on disk: {Failure.of(error).message}")
        return None


def _preview_image(step) -> QImage:
    """A step's preview as Qt shows it; a null image for a step without one (previews off)."""
    return numpy_to_qimage(step.image) if step.image is not None else QImage()
