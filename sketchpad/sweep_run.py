"""Running a sweep's cells (core.sweep): each one an ordinary request, on whichever backend is free.

With one backend the cells run one after another on the calling thread (the window's worker, the
command line), so one thread alone ever touches it. With several (ComfyUI servers) each backend gets
a thread of its own that takes the next cell not yet run; a server that goes away mid-sweep hands
its cell back and the others finish it, so nothing is lost while one server is left. A backend never
learns that it runs a sweep: the prompt and the sketch simply stay encoded in its caches between runs.
Torch- and Qt-free.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from PIL import Image

from .core.backend import Backend, GenerationResult, StepPreview, Waiting
from .core.errors import SketchpadError
from .core.storage import ResultInfo
from .core.sweep import Cell

log = logging.getLogger(__name__)

WAIT_POLL = 0.1  # seconds between looks at should_stop while a free backend waits for a cell to come back


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    result: GenerationResult
    model_name: str  # the backend's, written into the picture's settings
    made_on: str  # where: a server's address, or this computer's device (see `where`)

    @property
    def info(self) -> ResultInfo:
        return ResultInfo.of(self.result, self.model_name)


def where(backend: Backend) -> str:
    """Where a backend runs, as people tell them apart: a server's address, else the device."""
    return getattr(backend, "server", None) or backend.device_name


OnCellStep = Callable[[Cell, StepPreview], None]
OnCellWaiting = Callable[[Cell, Waiting], None]
OnCellDone = Callable[[CellResult], None]
OnLost = Callable[[Backend, SketchpadError], None]


def run_cells(cells: Sequence[Cell], backends: Sequence[Backend], sketch: Image.Image, *,
              on_step: OnCellStep | None = None, on_waiting: OnCellWaiting | None = None,
              on_done: OnCellDone | None = None, on_lost: OnLost | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[CellResult]:
    """Run every cell once and return the finished ones in plan order: all of them, or those done
    before should_stop() said stop (the rest are not run). Callbacks come one at a time, from the
    thread that runs the cell; on_done as each cell finishes. A backend whose server is gone
    (FailureKind.server_gone) is said through on_lost and left out; its cell goes to another. The
    first other failure, or the loss of the last backend, stops the rest and is raised."""
    if not backends:
        raise ValueError("a sweep needs a backend")
    pool = _Pool(cells, len(backends), should_stop or (lambda: False))
    calls = _Callbacks(on_step, on_waiting, on_done, on_lost)
    if len(backends) == 1:
        pool.serve(backends[0], sketch, calls)
    else:
        threads = [threading.Thread(target=pool.serve, args=(backend, sketch, calls), daemon=True,
                                    name=f"sketchpad-sweep-{index}") for index, backend in enumerate(backends)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(WAIT_POLL)  # not a bare join: Ctrl+C must reach this thread
        except BaseException:  # Ctrl+C: each backend leaves its cell (a server drops our prompt)
            pool.halt()
            for thread in threads:
                thread.join()
            raise
    if pool.failure is not None:
        raise pool.failure
    order = {cell: index for index, cell in enumerate(cells)}
    return sorted(pool.finished, key=lambda done: order[done.cell])


class _Callbacks:
    """The caller's callbacks, one at a time whichever backend's thread calls them."""

    def __init__(self, on_step, on_waiting, on_done, on_lost):
        self._lock = threading.Lock()
        self._on_step, self._on_waiting, self._on_done, self._on_lost = on_step, on_waiting, on_done, on_lost

    def step(self, cell: Cell, preview: StepPreview) -> None:
        self._call(self._on_step, cell, preview)

    def waiting(self, cell: Cell, waiting: Waiting) -> None:
        self._call(self._on_waiting, cell, waiting)

    def done(self, result: CellResult) -> None:
        self._call(self._on_done, result)

    def lost(self, backend, error: SketchpadError) -> None:
        self._call(self._on_lost, backend, error)

    def _call(self, callback, *args) -> None:
        if callback is not None:
            with self._lock:
                callback(*args)


class _Pool:
    """The cells not yet run, shared by the backends' threads."""

    def __init__(self, cells: Sequence[Cell], serving: int, should_stop: Callable[[], bool]):
        self._changed = threading.Condition()
        self._todo = deque(cells)
        self._in_flight = 0
        self._serving = serving  # backends still able to take a cell
        self._should_stop = should_stop
        self._halted = False
        self.finished: list[CellResult] = []
        self.failure: BaseException | None = None

    def stopping(self) -> bool:
        return self._halted or self._should_stop()

    def halt(self) -> None:
        with self._changed:
            self._halted = True
            self._changed.notify_all()

    def serve(self, backend, sketch: Image.Image, calls: _Callbacks) -> None:
        """Run cells on `backend` until none is left, a stop, or its server goes away."""
        while (cell := self._take()) is not None:
            try:
                result = backend.generate(cell.params, sketch, on_step=lambda step, cell=cell: calls.step(cell, step),
                                          should_stop=self.stopping,
                                          on_waiting=lambda waiting, cell=cell: calls.waiting(cell, waiting))
                done = None if result is None else CellResult(cell, result, backend.model_name, where(backend))
                if done is not None:
                    calls.done(done)
            except SketchpadError as error:
                if error.kind.server_gone:
                    log.warning("%s went away mid-sweep", where(backend), exc_info=True)
                    if self._hand_back(cell, error):
                        calls.lost(backend, error)
                    return
                self._fail(error)
                return
            except Exception as error:  # anything else ends the sweep; the caller says it
                self._fail(error)
                return
            self._finish(done)

    def _take(self) -> Cell | None:
        """The next cell; while none is left but some still run elsewhere, wait: one may come back."""
        with self._changed:
            while not self._todo and self._in_flight and not self.stopping():
                self._changed.wait(WAIT_POLL)
            if self.stopping() or not self._todo:
                return None
            self._in_flight += 1
            return self._todo.popleft()

    def _finish(self, done: CellResult | None) -> None:
        with self._changed:
            self._in_flight -= 1
            if done is not None:
                self.finished.append(done)
            self._changed.notify_all()

    def _hand_back(self, cell: Cell, error: SketchpadError) -> bool:
        """A backend's server is gone: its cell waits for the others. False when none is left."""
        with self._changed:
            self._in_flight -= 1
            self._serving -= 1
            self._todo.appendleft(cell)
            if self._serving == 0:
                self.failure = self.failure or error
                self._halted = True
            self._changed.notify_all()
            return self._serving > 0

    def _fail(self, error: BaseException) -> None:
        with self._changed:
            self._in_flight -= 1
            self.failure = self.failure or error
            self._halted = True
            self._changed.notify_all()
