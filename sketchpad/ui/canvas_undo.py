"""Undo commands for SketchCanvas, the byte bound on its history, and small image helpers.

Each command keeps only what it needs to go both ways:
- StrokeCommand: the touched rectangle's pixels before and after (not the whole image), of the
  sketch or of its mask (a mask stroke, box or lasso).
- ReplaceImageCommand: whole pages, the sketch and its mask, for clear / load / resize / extend and
  the edits of the whole mask (these may change the size); an "after" that is cheap to recompute (a
  blank page, a resized copy) is rebuilt on redo instead of being stored, so clear and resize cost
  one page, not two. A layer a command leaves as it was is shared with the canvas, not copied.

QUndoStack can only cap its history by count (setUndoLimit, and only while empty), so
``trim_history`` bounds it by bytes by rebuilding the stack without its oldest commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QImage, QPainter, QUndoCommand, QUndoStack

CANVAS_FORMAT = QImage.Format.Format_RGB32  # opaque: the sketch has no transparency


SKETCH, MASK = "sketch", "mask"  # the canvas's two layers


@dataclass(frozen=True)
class Page:
    """The whole drawing: the sketch and its mask (see mask_layer.py), always of one size."""

    image: QImage
    mask: QImage

    def byte_size(self) -> int:
        return self.image.sizeInBytes() + self.mask.sizeInBytes()


def blank_image(width: int, height: int) -> QImage:
    """A white, opaque page."""
    img = QImage(width, height, CANVAS_FORMAT)
    img.fill(Qt.GlobalColor.white)
    return img


def resized_image(src: QImage, width: int, height: int,
                  blank: Callable[[int, int], QImage] = blank_image) -> QImage:
    """``src`` kept at the top-left of a ``blank`` (a white page) of the new size (cropped if smaller)."""
    out = blank(width, height)
    p = QPainter(out)
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
    p.drawImage(QPoint(0, 0), src)
    p.end()
    return out


def opaque_image(img: QImage) -> QImage:
    """``img`` at its own pixel size on white: alpha composited, any format made RGB32."""
    out = blank_image(img.width(), img.height())
    p = QPainter(out)
    p.drawImage(out.rect(), img)  # explicit target rect: ignores the source's devicePixelRatio
    p.end()
    return out


class _CanvasCommand(QUndoCommand):
    """Base: ``applied=True`` means the change is already on the canvas, so the first redo()
    (which QUndoStack.push always calls) must not repaint."""

    def __init__(self, canvas, text: str, applied: bool):
        super().__init__(text)
        self._canvas = canvas
        self._skip_redo = applied

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self._apply(after=True)

    def undo(self) -> None:
        self._apply(after=False)

    def _apply(self, after: bool) -> None:
        raise NotImplementedError

    def byte_size(self) -> int:
        raise NotImplementedError

    def clone(self) -> "_CanvasCommand":
        """Same payload, marked applied: used to re-push a command when trimming history."""
        raise NotImplementedError


class StrokeCommand(_CanvasCommand):
    """One finished stroke on one layer (SKETCH or MASK): the touched rectangle before and after."""

    def __init__(self, canvas, rect: QRect, before: QImage, after: QImage, text: str = "Stroke",
                 layer: str = SKETCH):
        super().__init__(canvas, text, applied=True)
        self.rect = QRect(rect)
        self.layer = layer
        self._before, self._after = before, after

    def _apply(self, after: bool) -> None:
        self._canvas._restore_rect(self.rect.topLeft(), self._after if after else self._before, self.layer)

    def byte_size(self) -> int:
        return self._before.sizeInBytes() + self._after.sizeInBytes()

    def clone(self) -> "StrokeCommand":
        return StrokeCommand(self._canvas, self.rect, self._before, self._after, self.text(), self.layer)


class ReplaceImageCommand(_CanvasCommand):
    """Swap the whole page (clear, load, resize, extend, a whole-mask edit). Give ``after`` or ``make_after``."""

    def __init__(self, canvas, text: str, before: Page, after: Page | None = None,
                 make_after: Callable[[], Page] | None = None, applied: bool = False):
        super().__init__(canvas, text, applied)
        if (after is None) == (make_after is None):
            raise ValueError("give exactly one of after / make_after")
        self._before, self._after, self._make_after = before, after, make_after

    def _apply(self, after: bool) -> None:
        if not after:
            page = self._before
        else:
            page = self._after if self._after is not None else self._make_after()
        self._canvas._replace_page(page)

    def byte_size(self) -> int:
        after = self._after.byte_size() if self._after is not None else 0
        return self._before.byte_size() + after

    def clone(self) -> "ReplaceImageCommand":
        return ReplaceImageCommand(self._canvas, self.text(), self._before, self._after,
                                   self._make_after, applied=True)


def history_bytes(stack: QUndoStack) -> int:
    """Pixel bytes held by every command on the stack (undoable and redoable). Images that
    share copy-on-write data are counted once per holder, so this is an upper bound."""
    return sum(stack.command(i).byte_size() for i in range(stack.count()))


def trim_history(stack: QUndoStack, budget: int, low_water: float = 0.9) -> int:
    """Once the history exceeds ``budget`` bytes, drop the oldest commands until it fits in
    ``low_water * budget``; returns how many were dropped.

    The rebuild below is O(history) (about 6-12 ms per 1000 commands, measured), so trimming a
    little below the budget makes it run once per ~10 % of the budget, not after every stroke.

    Call right after a push, when nothing is left to redo (push discards the redo tail), so
    every command is applied. The stack is rebuilt: clone the kept commands (already applied,
    so re-pushing them touches no pixels), clear(), push the clones, put the clean index back.
    The newest command is always kept, even alone over budget, so the last action can be
    undone. Signals are blocked meanwhile: canUndo/canRedo/clean/undoText are unchanged by a
    trim, only the index number shifts, which is re-announced at the end.
    """
    count = stack.count()
    sizes = [stack.command(i).byte_size() for i in range(count)]
    total, drop = sum(sizes), 0
    if total <= budget:
        return 0
    while total > budget * low_water and drop < count - 1:
        total -= sizes[drop]
        drop += 1
    if drop == 0:
        return 0
    assert stack.index() == count, "trim_history needs an empty redo tail"
    clean = stack.cleanIndex() - drop  # < 0: the clean state was dropped (or already unreachable)
    clones = [stack.command(i).clone() for i in range(drop, count)]
    was_blocked = stack.blockSignals(True)
    try:
        stack.clear()
        if clean == 0:
            stack.setClean()
        for n, cmd in enumerate(clones, start=1):
            stack.push(cmd)
            if n == clean:
                stack.setClean()
        if clean < 0:
            stack.resetClean()
    finally:
        stack.blockSignals(was_blocked)
    if not was_blocked:
        stack.indexChanged.emit(stack.index())
    return drop
