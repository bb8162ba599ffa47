"""Keep the drawing and its session safe: snapshot them a few seconds after each change, off the GUI thread.

Each window owns one recovery slot, `<state_dir>/recovery/<slot id>/` holding `sketch.png`, its
mask as `mask.png` (white redoes; no file while nothing is masked) and `session.json` (prompt,
negative prompt, settings), owned through a QLockFile there. QLockFile
records the owner's process id, so a slot whose owner was killed or crashed can be claimed by the
next window, while the slot of a window still running never can: two windows never share a file,
and a clean quit removes only its own slot. Finding someone else's unowned slot at start-up means
that window did not close properly; `orphans()` offers each such slot once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QLockFile, QObject, QRunnable, QThreadPool, QTimer
from PySide6.QtGui import QImage

from ..core.storage import make_temp_file
from .mask_layer import grey_image, grey_of_image

SKETCH_FILE = "sketch.png"
MASK_FILE = "mask.png"
SESSION_FILE = "session.json"
LOCK_FILE = "owner.lock"


@dataclass
class Recovered:
    """What a window that did not close properly left behind."""

    image: QImage
    session: dict | None  # None when it had none, or it could not be read
    slot: Path
    mask: np.ndarray | None = None  # the mask's values (uint8, height x width); None: nothing masked


class _WriteSnapshot(QRunnable):
    def __init__(self, image: QImage, mask: QImage | None, session: dict | None, folder: Path):
        super().__init__()
        self.image, self.mask, self.session, self.folder = image, mask, session, folder

    def run(self) -> None:
        # each file atomic on its own; the drawing first, it is what matters most
        if not write_image_atomically(self.image, self.folder / SKETCH_FILE):
            return
        if self.mask is None:
            with contextlib.suppress(OSError):
                (self.folder / MASK_FILE).unlink(missing_ok=True)
        elif not write_image_atomically(self.mask, self.folder / MASK_FILE):
            return
        if self.session is not None:
            write_text_atomically(json.dumps(self.session), self.folder / SESSION_FILE)


def _write_atomically(path: Path, write: Callable[[str], bool]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = make_temp_file(path.parent)
        os.close(handle)
    except OSError:  # the state folder went away or filled up: the next snapshot tries again
        return False
    try:
        if not write(temp):
            return False
        os.replace(temp, path)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)  # still there unless os.replace moved it


def write_image_atomically(image: QImage, path: Path) -> bool:
    return _write_atomically(Path(path), lambda temp: image.save(temp, "PNG"))


def write_text_atomically(text: str, path: Path) -> bool:
    def write(temp: str) -> bool:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
        return True

    return _write_atomically(Path(path), write)


def _lock(folder: Path) -> QLockFile:
    lock = QLockFile(str(folder / LOCK_FILE))
    lock.setStaleLockTime(0)  # stale only when its owner's process is gone, never because of its age
    return lock


class SketchAutosaver(QObject):
    """`SketchAutosaver(canvas, state_dir, session=..., interval_ms=2000, parent=None)`.

    `session()` returns the prompt, negative prompt and settings as a JSON-able dict; it is called
    on the GUI thread at each snapshot.
    """

    def __init__(self, canvas, state_dir: Path, session: Callable[[], dict] | None = None,
                 interval_ms: int = 2000, parent=None):
        super().__init__(parent)
        self.canvas = canvas
        self._session = session
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # snapshots land in order
        self._dirty = False
        self._timer = QTimer(self, singleShot=True, interval=interval_ms)
        self._timer.timeout.connect(self.save_now)
        self._claimed: dict[Path, QLockFile] = {}  # orphans offered, held until taken
        self.recovery_dir = Path(state_dir) / "recovery"
        self.slot, self._lock = self._open_own_slot()
        canvas.content_changed.connect(self.mark_changed)
        canvas.mask_changed.connect(self.mark_changed)

    def _open_own_slot(self) -> tuple[Path, QLockFile | None]:
        for _ in range(3):
            slot = self.recovery_dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                slot.mkdir(parents=True)
            except OSError:  # taken (vanishingly rare), or the state folder cannot be written
                continue
            lock = _lock(slot)
            if lock.tryLock(0):
                return slot, lock
        return slot, None  # unwritable state folder: snapshots will fail quietly, drawing goes on

    # ---- snapshots -----------------------------------------------------------------------
    def mark_changed(self) -> None:
        """Something worth keeping changed (drawing, prompt, settings): snapshot within the interval."""
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def save_now(self) -> None:
        if self._dirty:
            self._dirty = False
            session = self._session() if self._session is not None else None
            # the sketch and the mask's picture are this snapshot's own copies: safe to read from another thread
            mask = grey_image(self.canvas.mask_values()) if self.canvas.has_mask() else None
            self._pool.start(_WriteSnapshot(self.canvas.image(), mask, session, self.slot))

    def wait(self) -> None:
        self._pool.waitForDone()

    # ---- recovery ------------------------------------------------------------------------
    def orphans(self) -> list[Recovered]:
        """Every slot whose window is gone (killed, crashed), claimed for this window until `take()`.

        A slot of another running window is never among them; one already offered by another window
        is not offered again. Slots with nothing in them are removed on the way.
        """
        try:
            slots = sorted(p for p in self.recovery_dir.iterdir() if p.is_dir() and p != self.slot)
        except OSError:
            return []
        found = []
        for slot in slots:
            if slot in self._claimed:
                continue
            lock = _lock(slot)
            if not lock.tryLock(0):  # its window is alive, or another window is offering it now
                continue
            image = QImage(str(slot / SKETCH_FILE))
            if image.isNull():  # nothing drawn before it ended: nothing to offer
                _remove_slot(slot, lock)
                continue
            self._claimed[slot] = lock
            mask = _read_mask(slot / MASK_FILE, image)
            found.append(Recovered(image, _read_session(slot / SESSION_FILE), slot, mask))
        return found

    def take(self, recovered: Recovered) -> None:
        """The slot has been offered (whatever the answer): remove it, so it is never offered again.

        A drawing restored onto the canvas before this call is first snapshot into this window's own
        slot, so no moment passes without a copy of it on disk.
        """
        if self._dirty:
            self.save_now()
        self._pool.waitForDone()
        lock = self._claimed.pop(recovered.slot, None)
        if lock is not None:
            _remove_slot(recovered.slot, lock)

    def discard(self) -> None:
        """A clean exit: this window's own slot goes, nobody else's."""
        self._timer.stop()
        self._pool.waitForDone()
        for slot, lock in list(self._claimed.items()):  # offered but never taken: leave them for next time
            lock.unlock()
        self._claimed.clear()
        if self._lock is not None:
            _remove_slot(self.slot, self._lock)
            self._lock = None


def _read_session(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_mask(path: Path, image: QImage) -> np.ndarray | None:
    """The mask kept with `image`; None when there is none, or it is unreadable or of another size
    (a snapshot cut short between the two files)."""
    mask = QImage(str(path)) if path.exists() else QImage()
    if mask.isNull() or mask.size() != image.size():
        return None
    return grey_of_image(mask)


def _remove_slot(slot: Path, lock: QLockFile) -> None:
    for name in (SKETCH_FILE, MASK_FILE, SESSION_FILE):
        with contextlib.suppress(OSError):
            (slot / name).unlink()
    # leftovers of a snapshot cut short go too; the lock file last, so nobody claims a half-removed slot
    for entry in list(slot.iterdir()) if slot.is_dir() else []:
        if entry.name != LOCK_FILE:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    lock.unlock()
    with contextlib.suppress(OSError):
        slot.rmdir()
