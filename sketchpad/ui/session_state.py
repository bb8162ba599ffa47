"""The session's values: which model runs where, the run in flight, the problem on show. Plain data."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from ..core.backend import Waiting
from ..core.errors import FailureKind, ServerState
from ..core.params import GenerationParams
from ..core.picture_key import PictureKey
from ..core.registry import DEFAULT_BACKEND
from ..core.schedule import plan_steps
from ..core.sources import DEFAULT_MODEL

SERVER_BACKEND = "comfyui"


class ModelStatus(enum.Enum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelState:
    """Which model runs where: this computer's model and a server's checkpoint are kept apart, so
    switching back to this computer loads its own model again."""

    model: str = DEFAULT_MODEL  # this computer's model
    device: str = "auto"
    backend: str = DEFAULT_BACKEND
    server_url: str = ""  # as the person gave it (may carry credentials: show display_address only)
    server_model: str = ""  # the server's checkpoint; "" for its first
    server_state: ServerState | None = None  # None on this computer
    checkpoints: tuple[str, ...] = ()  # what the server offers, once known
    loras: tuple[str, ...] = ()  # the server's LoRA files, once known
    controlnets: tuple[str, ...] = ()  # the server's ControlNet files, once known
    status: ModelStatus = ModelStatus.UNLOADED
    message: str = ""  # the loading progress line, or why it failed
    failure: FailureKind | None = None  # why it failed
    loaded_name: str = ""  # as the backend names it once ready
    loaded_device: str = ""

    @property
    def on_server(self) -> bool:
        return self.backend == SERVER_BACKEND and bool(self.server_url)

    @property
    def chosen(self) -> str:
        """The model the chosen backend loads: the checkpoint on a server, else the local model."""
        return self.server_model if self.on_server else self.model

    @property
    def display_name(self) -> str:
        if self.loaded_name:
            return self.loaded_name
        if self.on_server:
            return self.server_model or "the server's first checkpoint"
        return Path(self.model).name or self.model

    @property
    def identity(self) -> str:
        """What paints, for comparing pictures: the backend, its server and the model."""
        return f"{self.backend}|{self.server_url if self.on_server else ''}|{self.loaded_name or self.chosen}"


class RunStatus(enum.Enum):
    IDLE = "idle"
    GENERATING = "generating"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class Run:
    request_id: int = 0
    params: GenerationParams | None = None
    key: PictureKey | None = None
    status: RunStatus = RunStatus.IDLE
    step: int = 0  # as a person counts them: 1..total, total = the steps that run
    total: int = 0
    message: str = ""  # why it failed
    failure: FailureKind | None = None
    seconds: float = 0.0
    waiting: Waiting | None = None  # why no step has come yet (a server's queue, its model loading)

    @property
    def active(self) -> bool:
        return self.status is RunStatus.GENERATING


class Cause(enum.Enum):
    """What an error on show is about; it goes when its cause does."""

    REQUEST = "request"  # the values being edited cannot make a request: goes once they can
    RUN = "run"  # the last run failed: goes with the next run, an edit of the request, or the server back
    MODEL = "model"  # the model failed to load: goes when another load starts
    ACTION = "action"  # a file action (open, save) failed: goes with the next action that works


@dataclass(frozen=True)
class Problem:
    cause: Cause
    text: str


def displayed_step(params: GenerationParams, step: int, total: int) -> tuple[int, int] | None:
    """The engine's (step, total) as a person counts them against the Steps box, or None to hide.

    A scheduler may evaluate the model more often than the steps that run (PLMS warms up with an
    extra one: 21 for 20); those first evaluations belong to step 1 and are not shown on their own.
    """
    runs = plan_steps(params).run_steps
    if runs <= 0 or total <= runs:
        return step, total
    extra = total - runs
    return (step - extra, runs) if step > extra else None
