"""The contract every backend keeps, so the worker and the command line drive any of them alike.

A backend takes a request and a sketch; it reports one preview per executed step through `on_step`,
polls `should_stop` often (the newest request wins), and returns the result, or None when it was
told to stop. Problems the person can fix are raised as SketchpadError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
from PIL import Image

from .params import GenerationParams


@dataclass(frozen=True)
class StepPreview:
    step: int  # 1-based
    total: int
    image: np.ndarray | None  # (h, w, 3) uint8, None when previews are off


@dataclass(frozen=True)
class GenerationResult:
    image: Image.Image
    params: GenerationParams  # with the seed actually used
    sampler: str  # the scheduler that ran, by our name
    steps_run: int  # model evaluations; PNDM spends one more than `steps` on its warm-up
    seconds: float


@dataclass(frozen=True)
class Waiting:
    """Why a run has shown no step yet: queued behind other jobs on a server, or the server loading
    the model. Reported on every change; a backend that never waits never reports one."""

    jobs_ahead: int = 0  # prompts the server runs before ours (0: ours is next or running)
    loading_model: bool = False  # ours runs, but the server is still loading the checkpoint

    @property
    def text(self) -> str:
        """What the person is told (the window and the command line alike); "" once nothing holds the run up."""
        if self.jobs_ahead:
            return f"waiting: {self.jobs_ahead} job{'s' if self.jobs_ahead > 1 else ''} ahead on the server"
        return "the server is loading the model…" if self.loading_model else ""


OnStep = Callable[[StepPreview], None]
ShouldStop = Callable[[], bool]
OnWaiting = Callable[[Waiting], None]


class Backend(Protocol):
    model_name: str  # written into saved pictures' metadata
    device_name: str  # what the status bar shows: "cuda", "cpu", a server's address...

    def generate(
        self,
        params: GenerationParams,
        sketch: Image.Image,
        on_step: OnStep | None = None,
        should_stop: ShouldStop | None = None,
        on_waiting: OnWaiting | None = None,
    ) -> GenerationResult | None: ...
