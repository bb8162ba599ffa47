"""One prompt on the server, as its websocket messages tell it: why it waits, its steps, its picture.

The server broadcasts a `status` (its queue's length) whenever its queue changes, and sends the
rest of a job only to the client that posted it: `execution_start`, `executing` per node, `progress`
per sampler step with a preview frame, and the picture from SaveImageWebsocket.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...core.backend import OnStep, OnWaiting, StepPreview, Waiting
from ...core.errors import FailureKind, SketchpadError
from . import failures
from .frames import parse_frame
from .workflow import Graph

log = logging.getLogger(__name__)


class JobObserver(Protocol):
    """Told when things happen in a job (time.perf_counter() times), for the benchmark; production
    passes none. Events: started, posted (seconds: the POST's round trip), server_started, preview
    (bytes), stale_stopped (an earlier prompt of ours was interrupted), picture, finished."""

    def job_event(self, event: str, at: float, **details) -> None: ...


class Job:
    """What one prompt's messages have told us so far."""

    def __init__(self, prompt_id: str, number: int | None, graph: Graph, decode_previews: bool, on_step: OnStep,
                 on_waiting: OnWaiting, observer: JobObserver | None):
        self.prompt_id = prompt_id
        self.number = number  # our place in the server's queue, as POST /prompt answered
        self.graph = graph
        self.decode_previews = decode_previews
        self.running = False  # our prompt is the one the server is executing
        self.started = False  # the server has begun our prompt
        self.queue_changed = False  # the server's queue changed before ours started: look at it again
        self.result: Image.Image | None = None
        self.files: list[dict] = []
        self.error: SketchpadError | None = None
        self.steps_seen = 0
        self.previews_seen = 0
        self._on_step = on_step
        self._on_waiting = on_waiting
        self._observer = observer
        self._waiting = Waiting()  # as last reported: nothing holds the run up
        # With prompt-tagged frames the preview arrives before its "progress"; untagged after it.
        self._frame: np.ndarray | None = None
        self._have_frame = False
        self._step: int | None = None

    # -- why it waits ---------------------------------------------------------------------------
    def saw_queue(self, queue: dict, leaving: set[str]) -> None:
        """GET /queue's answer: the prompts the server runs before ours (not those of ours it is
        dropping, `leaving`). Its pending list is a heap, so order comes from the prompt numbers."""
        self.queue_changed = False
        if self.started:
            return
        running = [entry for entry in queue.get("queue_running") or [] if _prompt(entry) not in leaving]
        if any(_prompt(entry) == self.prompt_id for entry in running):
            return  # ours runs: execution_start is on its way
        pending = [entry for entry in queue.get("queue_pending") or [] if _prompt(entry) not in leaving]
        ahead = [entry for entry in pending if self.number is None or _number(entry) < self.number]
        self._report(Waiting(jobs_ahead=len(running) + len(ahead)))

    def _report(self, waiting: Waiting) -> None:
        if waiting != self._waiting:
            self._waiting = waiting
            log.debug("prompt %s waits: %s", self.prompt_id, waiting)
            self._on_waiting(waiting)

    # -- messages -------------------------------------------------------------------------------
    def on_message(self, message: dict) -> bool:
        """True when the server says our prompt is done; raises what failed it."""
        kind, data = message.get("type"), message.get("data") or {}
        if not isinstance(data, dict):
            return False
        if kind == "status":
            self._queue_status(data)
            return False
        if data.get("prompt_id") != self.prompt_id:
            if kind == "execution_interrupted":
                self._observe("stale_stopped")  # an earlier prompt of ours, stopped
            if kind in ("execution_start", "executing") and data.get("prompt_id"):
                self.running = False  # another prompt (a stale one of ours, or someone else's) runs now
            return False
        if kind != "progress" or data.get("node") != self.graph.sampler_node:
            self._flush()
        if kind == "execution_start":
            self.running = self.started = True
            self._observe("server_started")
            self._report(Waiting())
        elif kind == "executing" and data.get("node") is not None:
            self._report(Waiting(loading_model=data["node"] in self.graph.loader_nodes))
        elif kind == "progress" and data.get("node") == self.graph.sampler_node:
            self._progress(int(data.get("value") or 0))
        elif kind == "executed" and data.get("node") == self.graph.output_node:
            self.files = list(((data.get("output") or {}).get("images")) or [])
        elif kind == "execution_error":
            self.error = failures.execution_failed(data)
        elif kind == "execution_interrupted":
            self.error = SketchpadError("the job was interrupted on the ComfyUI server (someone stopped it there)",
                                        FailureKind.SERVER_FAILED)
        elif kind == "executing":  # node None: the server is done with our prompt
            self.running = False
            if self.error is not None:
                raise self.error
            return True
        return False

    def _queue_status(self, data: dict) -> None:
        """A queue of at most one prompt (ours) has nobody ahead; a longer one needs a look at it."""
        if self.started:
            return
        remaining = ((data.get("status") or {}).get("exec_info") or {}).get("queue_remaining")
        if isinstance(remaining, int) and remaining <= 1:
            self._report(Waiting())
        else:
            self.queue_changed = True

    def on_frame(self, data: bytes) -> bool:
        """True when the frame was our result picture."""
        frame = parse_frame(data)
        if frame is None:
            return False
        if frame.prompt_id is not None and frame.prompt_id != self.prompt_id:
            return False
        if frame.prompt_id is None and not self.running:
            return False  # an untagged frame while another prompt runs is not ours
        is_result = frame.node_id == self.graph.output_node if frame.node_id is not None else frame.is_png
        if is_result:
            self._flush()
            self.result = decode_png(frame.image)
            self._observe("picture")
            return True
        self.previews_seen += 1
        self._observe("preview", bytes=len(data))
        image = _decode_preview(frame.image) if self.decode_previews else None
        if self._step is not None:  # untagged order: progress came first
            step, self._step = self._step, None
            self._emit(step, image)
        else:
            self._frame, self._have_frame = image, True
        return False

    def _progress(self, value: int) -> None:
        self._flush()
        if self._have_frame:
            image, self._frame, self._have_frame = self._frame, None, False
            self._emit(value, image)
        else:
            self._step = value  # its frame may follow (untagged order), or never come (previews off)

    def _flush(self) -> None:
        if self._step is not None:
            step, self._step = self._step, None
            self._emit(step, None)

    def _emit(self, step: int, image) -> None:
        self.steps_seen += 1
        total = self.graph.steps
        self._on_step(StepPreview(min(max(step, 1), total), total, image))

    def _observe(self, event: str, **details) -> None:
        observe(self._observer, event, **details)


def observe(observer: JobObserver | None, event: str, **details) -> None:
    if observer is not None:
        observer.job_event(event, time.perf_counter(), **details)


def decode_png(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise SketchpadError("the ComfyUI server sent a picture that cannot be read",
                             FailureKind.SERVER_FAILED) from error


def _decode_preview(data: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # a preview that cannot be read: the step still counts


def _prompt(entry) -> str | None:
    return entry[1] if isinstance(entry, list) and len(entry) > 1 else None


def _number(entry) -> float:
    return entry[0] if isinstance(entry, list) and entry and isinstance(entry[0], (int, float)) else float("inf")
