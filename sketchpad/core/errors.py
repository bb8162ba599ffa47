"""Failures with a kind, and a server connection's state: one vocabulary from the backends to the window.

A failure's `kind` is set where it happens and travels unchanged (backend -> worker -> session); the
session decides what the status line and the server state say from the kind alone. The message is
for people only: nothing decides anything by reading it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureKind(enum.Enum):
    BAD_INPUT = "bad input"  # the request, a file or an option the person gave
    MODEL = "model problem"  # a model, LoRA or ControlNet that is missing, of the wrong kind or unreadable
    NEEDS_DOWNLOAD = "needs a download"  # weights that are not here, and the Hub cannot be reached
    UNREACHABLE = "unreachable"  # a server that cannot be reached at all
    NOT_ANSWERING = "not answering"  # a server that is reached but answers nothing (stopped, hung)
    CONNECTION_LOST = "connection lost"  # a server that went away during a job
    REFUSED = "refused by the server"  # the server answered, and said no (credentials, a rejected graph)
    SERVER_FAILED = "failed on the server"  # the server accepted the job and it failed there
    OUT_OF_MEMORY = "out of memory"
    STORAGE = "storage"  # a file or folder that cannot be written or read
    INTERNAL = "internal"  # anything unexpected: a bug, with its cause in the log

    @property
    def server_gone(self) -> bool:
        """The server itself cannot be used now (as opposed to the request or the model)."""
        return self in (FailureKind.UNREACHABLE, FailureKind.NOT_ANSWERING, FailureKind.CONNECTION_LOST)


class SketchpadError(Exception):
    """A problem the user can fix. The message is one or two lines: what is wrong, and how to fix it.

    `kind` says what sort of problem it is; subclasses set their own, a raise site may override it.
    """

    kind: FailureKind = FailureKind.BAD_INPUT

    def __init__(self, message: str = "", kind: FailureKind | None = None):
        super().__init__(message)
        if kind is not None:
            self.kind = kind

    @property
    def message(self) -> str:
        return str(self)


class ModelError(SketchpadError):
    kind = FailureKind.MODEL


@dataclass(frozen=True)
class Failure:
    """A failure as it crosses threads and layers: its kind and the line a person reads."""

    kind: FailureKind
    message: str
    choices: tuple[str, ...] = ()  # for a missing model: what there is instead (a server's checkpoints)

    @staticmethod
    def of(error: BaseException) -> Failure:
        """The failure an exception stands for; anything not ours is INTERNAL (or OUT_OF_MEMORY)."""
        if isinstance(error, SketchpadError):
            return Failure(error.kind, str(error), tuple(getattr(error, "available", ()) or ()))
        if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":  # torch's, by type
            return Failure(FailureKind.OUT_OF_MEMORY,
                           "out of memory: try a smaller canvas, fewer steps, or the CPU device")
        text = " ".join(str(error).split())[:200]
        return Failure(FailureKind.INTERNAL, f"generation failed: {text or type(error).__name__}")


class ServerState(enum.Enum):
    """A server's connection, as the client knows it and the status bar says it."""

    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    UNREACHABLE = "unreachable"
    NOT_ANSWERING = "not answering"
    CLOSED = "closed"

    @property
    def usable(self) -> bool:
        return self is ServerState.READY


class MissingModel(ModelError):
    """A model the server lacks, with the names it has instead, so the window can offer them."""

    def __init__(self, message: str, available: tuple[str, ...] | list[str] = ()):
        super().__init__(message)
        self.available = tuple(available)
