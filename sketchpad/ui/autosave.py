"""Keep the drawing safe: snapshot the canvas a few seconds after each change, off the GUI thread.

The snapshot is removed on a clean exit, so finding one at start-up means the last session crashed
or was killed, and its drawing is offered back.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer
from PySide6.QtGui import QImage


class _WriteSnapshot(QRunnable):
    def __init__(self, image: QImage, path: Path):
        super().__init__()
        self.image, self.path = image, path

    def run(self) -> None:
        write_image_atomically(self.image, self.path)


def write_image_atomically(image: QImage, path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".autosave-", suffix=".png")
    os.close(handle)
    try:
        if not image.save(temp, "PNG"):
            return False
        os.replace(temp, path)
        return True
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


class SketchAutosaver(QObject):
    def __init__(self, canvas, path: Path, interval_ms: int = 2000, parent=None):
        super().__init__(parent)
        self.canvas, self.path = canvas, Path(path)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # snapshots land in order
        self._dirty = False
        self._timer = QTimer(self, singleShot=True, interval=interval_ms)
        self._timer.timeout.connect(self.save_now)
        canvas.content_changed.connect(self._changed)

    def _changed(self) -> None:
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def save_now(self) -> None:
        if self._dirty:
            self._dirty = False
            # QImage is implicitly shared: the copy is cheap and safe to read from another thread
            self._pool.start(_WriteSnapshot(self.canvas.image(), self.path))

    def recoverable(self) -> QImage | None:
        if not self.path.is_file():
            return None
        image = QImage(str(self.path))
        return None if image.isNull() else image

    def wait(self) -> None:
        self._pool.waitForDone()

    def discard(self) -> None:
        """A clean exit: nothing to recover next time."""
        self._timer.stop()
        self._pool.waitForDone()
        self.path.unlink(missing_ok=True)
