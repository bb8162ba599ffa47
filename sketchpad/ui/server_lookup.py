"""CheckpointLookup: asks a ComfyUI server for its checkpoints on a short-lived thread, so pressing
Connect never freezes the window while a slow or silent server makes us wait (up to LOOKUP_TIMEOUT).
Only the newest question's answer is delivered: pressing Connect again supersedes the last one.

The lookup itself (the ComfyUI client's list_checkpoints) is handed in by the app, so no widget
module loads the client."""

from __future__ import annotations

import threading
from typing import Callable

from PySide6.QtCore import QObject, Signal

from ..core.errors import SketchpadError

Lookup = Callable[[str], list]  # a server's address -> its checkpoints' names; raises SketchpadError


class CheckpointLookup(QObject):
    answered = Signal(str, list, str)  # url as asked, the checkpoint names, one-line problem ("" if none)
    _arrived = Signal(int, str, list, str)  # from the lookup thread; queued onto the GUI thread

    def __init__(self, lookup: Lookup, parent: QObject | None = None):
        super().__init__(parent)
        self._lookup = lookup
        self._newest = 0
        self._arrived.connect(self._deliver)

    def ask(self, url: str) -> None:
        self._newest += 1
        threading.Thread(target=self._look_up, args=(self._newest, url), name="sketchpad-checkpoints",
                         daemon=True).start()

    def pending(self) -> bool:
        return self._newest > 0

    def _look_up(self, ticket: int, url: str) -> None:
        try:
            names, problem = list(self._lookup(url)), ""
        except SketchpadError as error:
            names, problem = [], str(error)
        except Exception as error:  # whatever the network stack throws, one line and the window goes on
            names, problem = [], f"could not ask the server for its checkpoints: {' '.join(str(error).split())[:200]}"
        try:
            self._arrived.emit(ticket, url, names, problem)
        except RuntimeError:  # the window closed while we waited: nobody is left to tell
            pass

    def _deliver(self, ticket: int, url: str, names: list, problem: str) -> None:
        if ticket == self._newest:
            self._newest = 0
            self.answered.emit(url, names, problem)
