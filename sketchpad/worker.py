"""The only bridge between Qt and the engine: one long-lived thread that owns the pipeline.

Modelled on Qt's Mandelbrot RenderThread: the GUI posts the newest request under a mutex and wakes
the thread; a run in flight checks `restart`/`abort` before every step and leaves at once, so a
stale run never pays for its final VAE decode. Only this thread ever touches the pipeline.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass

import numpy as np
from PIL import Image
from PySide6.QtCore import QMutex, QMutexLocker, QThread, QWaitCondition, Signal
from PySide6.QtGui import QImage

from .core.errors import SketchpadError
from .core.params import GenerationParams
from .core.storage import ResultInfo


@dataclass(frozen=True)
class Outcome:
    """A finished run, as the GUI needs it."""

    request_id: int
    image: QImage
    info: ResultInfo
    sketch: QImage
    seconds: float


@dataclass(frozen=True)
class _Job:
    request_id: int
    params: GenerationParams
    sketch: QImage


class GenerationWorker(QThread):
    model_loading = Signal(str)  # a progress line
    model_ready = Signal(str, str)  # model name, device name
    model_failed = Signal(str)  # one-line reason
    step_preview = Signal(int, int, int, QImage)  # request id, step (1-based), total, preview
    result_ready = Signal(object)  # Outcome
    request_failed = Signal(int, str)  # request id, one-line reason
    request_cancelled = Signal(int)  # request id (replaced by a newer one, or cancelled)
    notice = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._mutex = QMutex()
        self._wake = QWaitCondition()
        self._job: _Job | None = None
        self._model_request: tuple[str | None, str] | None = None
        self._next_id = 0
        self._cancel_up_to = 0  # requests with an id <= this are abandoned
        self._restart = False
        self._abort = False
        self._engine = None
        self.model_name = ""

    # ---- called from the GUI thread ------------------------------------------------------
    def load_model(self, model: str | None, device: str = "auto") -> None:
        with QMutexLocker(self._mutex):
            self._model_request = (model, device)
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

    def cancel(self) -> None:
        with QMutexLocker(self._mutex):
            self._cancel_up_to = self._next_id
            if self._job is not None:
                self.request_cancelled.emit(self._job.request_id)
                self._job = None
            self._restart = True

    def stop(self) -> None:
        """Abandon everything and wait for the thread to end (within one step)."""
        with QMutexLocker(self._mutex):
            self._abort = True
            self._wake_locked()
        self.wait()

    def has_model(self) -> bool:
        return self._engine is not None

    def _wake_locked(self) -> None:
        if not self.isRunning():
            self.start()
        else:
            self._wake.wakeOne()

    # ---- the thread ----------------------------------------------------------------------
    def run(self) -> None:
        while True:
            with QMutexLocker(self._mutex):
                while not self._abort and self._job is None and self._model_request is None:
                    self._wake.wait(self._mutex)
                if self._abort:
                    return
                model_request, self._model_request = self._model_request, None
                job = self._job if model_request is None else None
                if job is not None:
                    self._job = None
                self._restart = False
            if model_request is not None:
                self._load(*model_request)
            elif job is not None:
                self._generate(job)

    def _load(self, model: str | None, device_name: str) -> None:
        from .backends.local.img2img import Img2ImgEngine
        from .backends.local.models import load_pipeline, pick_device, resolve_model_source

        self._engine = None
        try:
            source = resolve_model_source(model)
            device = pick_device(device_name)
            pipe = load_pipeline(source, device, progress=self.model_loading.emit)
        except SketchpadError as error:
            self.model_failed.emit(str(error))
            return
        except Exception as error:  # keep the app alive whatever the libraries throw
            traceback.print_exc(file=sys.stderr)
            self.model_failed.emit(f"could not load the model: {error}")
            return
        self._engine = Img2ImgEngine(pipe, source.name, notify=self.notice.emit)
        self.model_name = source.name
        self.model_ready.emit(source.name, device.type)

    def _generate(self, job: _Job) -> None:
        if self._engine is None:
            self.request_failed.emit(job.request_id, "no model is loaded; choose one under Model")
            return

        def should_stop() -> bool:
            return self._abort or self._restart or job.request_id <= self._cancel_up_to

        def on_step(step) -> None:
            image = numpy_to_qimage(step.image) if step.image is not None else QImage()
            self.step_preview.emit(job.request_id, step.step, step.total, image)

        try:
            result = self._engine.generate(job.params, qimage_to_pil(job.sketch), on_step, should_stop)
        except SketchpadError as error:
            self.request_failed.emit(job.request_id, str(error))
            return
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            self.request_failed.emit(job.request_id, _describe_failure(error))
            return
        if result is None:
            self.request_cancelled.emit(job.request_id)
            return
        image = result.image
        info = ResultInfo(result.params, image.width, image.height, self._engine.model_name, result.sampler)
        self.result_ready.emit(Outcome(job.request_id, pil_to_qimage(image), info, job.sketch, result.seconds))


def _describe_failure(error: Exception) -> str:
    text = " ".join(str(error).split())[:200]
    if "out of memory" in text.lower():
        return "out of memory: try a smaller canvas, fewer steps, or the CPU device"
    return f"generation failed: {text or type(error).__name__}"


def qimage_to_pil(image: QImage) -> Image.Image:
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    buffer = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * height)
    rows = buffer.reshape(height, stride)[:, : width * 3]
    return Image.fromarray(rows.reshape(height, width, 3).copy(), "RGB")


def numpy_to_qimage(array: np.ndarray) -> QImage:
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    # copy(): the QImage must own its pixels once the numpy buffer is gone
    return QImage(array.data, width, height, width * 3, QImage.Format.Format_RGB888).copy()


def pil_to_qimage(image: Image.Image) -> QImage:
    return numpy_to_qimage(np.asarray(image.convert("RGB")))
