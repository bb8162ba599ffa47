"""SketchCanvas: the drawing surface, the sketch and its mask.

A QImage backing store (Qt Scribble idiom: paint into the image, update only the dirty widget
rect), shown zoomed to fit and centred; the image keeps its pixel size whatever the widget does.
Pen tablets draw with pressure (Qt Tablet idiom: accept the QTabletEvent so it is not replayed as
a mouse event). Every finished stroke is one undo command holding only its touched rectangle;
the history is bounded in bytes (see canvas_undo.trim_history).

The mask (the part a run redoes) is a second layer of the same size, shown as a translucent
overlay (mask_layer.py). The mask tools paint, erase, box or lasso into it and never into the
sketch; its edits are undo steps in the same history, and it follows the page through resizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, QSize, QSizeF, Qt, Signal
from PySide6.QtGui import (QColor, QImage, QPainter, QPainterPath, QPen, QPointingDevice, QPolygonF,
                           QUndoStack)
from PySide6.QtWidgets import QWidget

from .canvas_undo import (MASK, SKETCH, Page, ReplaceImageCommand, StrokeCommand, blank_image, history_bytes,
                          opaque_image, resized_image, trim_history)
from .mask_layer import MASK_COLOR, MASK_OPACITY, blank_mask, mask_from_grey, mask_grey

MIN_BRUSH, MAX_BRUSH = 1, 200
MIN_CANVAS, MAX_CANVAS = 64, 2048  # resize_canvas bounds (multiples of 8, what SD 1.5 accepts)
MIN_IMAGE, MAX_IMAGE = 8, 4096  # set_image bounds: any size; the app rounds to multiples of 8
VIEW_BACKGROUND = QColor(0x2B, 0x2B, 0x2B)  # neutral dark around the page
DEFAULT_UNDO_BUDGET = 256 * 1024 * 1024
SKETCH_TOOLS = ("brush", "eraser")
MASK_BRUSHES = ("mask", "unmask")  # paint the mask, erase it
MASK_SELECTIONS = ("mask_box", "mask_lasso")  # drag a rectangle or a freehand outline to mask (Alt: unmask)
TOOLS = SKETCH_TOOLS + MASK_BRUSHES + MASK_SELECTIONS
KEEP_MASK = object()  # set_image: the mask stays where the new picture has the page's size
_UNREAD = object()


def pressure_to_width(size: float, pressure: float) -> float:
    """Pen width for a brush size and a pen pressure in 0..1 (a light touch still draws)."""
    return size * max(0.1, min(1.0, pressure))


@dataclass
class _Stroke:
    before: QImage  # shallow copy of the layer at stroke start (copy-on-write on first paint)
    color: QColor
    last: QPointF  # last input point (image coords)
    last_mid: QPointF  # where the drawn curve currently ends
    width: float
    rect: QRect  # touched area, image coords
    text: str  # undo text: "Stroke", "Erase", "Mask" or "Unmask"
    layer: str = SKETCH
    clears: bool = False  # takes the mask away where it passes


@dataclass
class _Selection:
    """A box or lasso being dragged (image coords)."""

    tool: str
    points: list[QPointF] = field(default_factory=list)
    clears: bool = False  # Alt held at the press: the outline takes the mask away

    def outline(self) -> QPolygonF:
        if self.tool == "mask_box":
            return QPolygonF(QRectF(self.points[0], self.points[-1]).normalized())
        return QPolygonF(self.points)


class SketchCanvas(QWidget):
    content_changed = Signal()  # any sketch pixel change: stroke end, clear, load, resize, undo, redo
    mask_changed = Signal()  # any change of the mask: its strokes and edits, load, resize, undo, redo
    stroke_finished = Signal()  # only at the end of a sketch stroke (after content_changed)
    brush_size_changed = Signal(int)
    color_changed = Signal(QColor)
    tool_changed = Signal(str)
    modified_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, *, width: int = 512, height: int = 512,
                 undo_budget_bytes: int = DEFAULT_UNDO_BUDGET):
        super().__init__(parent)
        self._image = blank_image(width, height)
        self._mask = blank_mask(width, height)
        self._mask_bytes: bytes | None | object = _UNREAD  # the mask's values once read (None: nothing masked)
        self._tool = "brush"
        self._color = QColor(Qt.GlobalColor.black)
        self._size = 8
        self._stroke: _Stroke | None = None
        self._selection: _Selection | None = None
        self._hover: QPointF | None = None  # widget coords of the brush outline
        self._undo_budget = int(undo_budget_bytes)
        # No Qt parent, and a bound-method slot: a child stack clears itself (emitting
        # cleanChanged) while the canvas is half destroyed; this way Qt disconnects first.
        self._undo = QUndoStack()
        self._undo.cleanChanged.connect(self._on_clean_changed)
        self.setMouseTracking(True)  # hover moves drive the brush outline
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent fills everything
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # ---- public API ---------------------------------------------------------------------
    def image(self) -> QImage:
        """A deep copy of the page, Format_RGB32 (opaque). The mask is never part of it."""
        return self._image.copy()

    def canvas_size(self) -> QSize:
        return self._image.size()

    def set_image(self, img: QImage, mask=KEEP_MASK, text: str = "Load image") -> None:
        """Load a picture (undoable). Keeps its size (8..4096 px a side); alpha is composited
        on white. The app rounds sizes to multiples of 8 itself before calling.

        `mask`: the new picture's mask values (uint8 array of its height x width), None for no
        mask, or KEEP_MASK: the mask stays if the picture has the page's size, else it goes."""
        if img.isNull():
            raise ValueError("set_image: null image")
        w, h = img.width(), img.height()
        if not (MIN_IMAGE <= w <= MAX_IMAGE and MIN_IMAGE <= h <= MAX_IMAGE):
            raise ValueError(f"set_image: size {w}x{h} outside {MIN_IMAGE}..{MAX_IMAGE}")
        if mask is KEEP_MASK:
            new_mask = QImage(self._mask) if img.size() == self._image.size() else blank_mask(w, h)
        elif mask is None:
            new_mask = blank_mask(w, h)
        else:
            if np.shape(mask) != (h, w):
                raise ValueError(f"set_image: a mask of {np.shape(mask)} for a {w}x{h} picture")
            new_mask = mask_from_grey(mask)
        self._push(ReplaceImageCommand(self, text, self._page(), after=Page(opaque_image(img), new_mask)))

    def clear(self) -> None:
        """Blank the page (undoable; a no-op on a page that is already blank). The mask stays."""
        self._commit_stroke()
        size = self._image.size()
        if self._image == blank_image(size.width(), size.height()):
            return
        mask = QImage(self._mask)
        self._push(ReplaceImageCommand(self, "Clear", self._page(),
                                       make_after=lambda: Page(blank_image(size.width(), size.height()), mask)))

    def resize_canvas(self, width: int, height: int) -> None:
        """Change the page size (undoable), content and mask kept at the top-left, new area white and unmasked."""
        for v in (width, height):
            if not (isinstance(v, int) and MIN_CANVAS <= v <= MAX_CANVAS and v % 8 == 0):
                raise ValueError(f"canvas sides must be multiples of 8 in "
                                 f"{MIN_CANVAS}..{MAX_CANVAS}, got {v!r}")
        if QSize(width, height) == self._image.size():
            return
        before = self._page()
        self._push(ReplaceImageCommand(self, "Resize canvas", before, make_after=lambda: Page(
            resized_image(before.image, width, height), resized_image(before.mask, width, height, blank_mask))))

    # ---- the mask -------------------------------------------------------------------------
    def mask_bytes(self) -> bytes | None:
        """The mask's values, one byte per pixel row by row (255 redoes a pixel), or None when
        nothing is masked. The same object until the mask changes."""
        if self._mask_bytes is _UNREAD:
            grey = mask_grey(self._mask)
            self._mask_bytes = grey.tobytes() if grey.any() else None
        return self._mask_bytes

    def has_mask(self) -> bool:
        return self.mask_bytes() is not None

    def mask_values(self) -> np.ndarray:
        """The mask's values (uint8, height x width; all 0 when nothing is masked)."""
        return mask_grey(self._mask)

    def edit_mask(self, edit, text: str) -> None:
        """Replace the mask by `edit(values)` (values: uint8, height x width), as one undo step; nothing
        happens when the mask stays as it was."""
        self._commit_stroke()
        before = mask_grey(self._mask)
        after = np.asarray(edit(before), np.uint8)
        if np.array_equal(after, before):
            return
        before_page = self._page()
        self._push(ReplaceImageCommand(self, text, before_page, after=Page(before_page.image, mask_from_grey(after))))

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self._tool:
            self._finish_gestures()
            self._set_hover(None)  # a box or lasso has no brush outline
            self._tool = tool
            self.tool_changed.emit(tool)

    def tool(self) -> str:
        return self._tool

    def set_color(self, color: QColor) -> None:
        color = QColor(color)
        if color != self._color:
            self._color = color
            self.color_changed.emit(QColor(color))

    def color(self) -> QColor:
        return QColor(self._color)

    def set_brush_size(self, size: int) -> None:
        size = max(MIN_BRUSH, min(MAX_BRUSH, int(size)))
        if size != self._size:
            self._update_hover(self._hover)  # old outline
            self._size = size
            self._update_hover(self._hover)
            self.brush_size_changed.emit(size)

    def brush_size(self) -> int:
        return self._size

    def grow_brush(self) -> None:
        self.set_brush_size(max(self._size + 1, round(self._size * 1.1)))

    def shrink_brush(self) -> None:
        self.set_brush_size(min(self._size - 1, round(self._size / 1.1)))

    def undo_stack(self) -> QUndoStack:
        return self._undo

    def undo_history_bytes(self) -> int:
        return history_bytes(self._undo)

    def undo_budget_bytes(self) -> int:
        return self._undo_budget

    def set_undo_budget_bytes(self, budget: int) -> None:
        self._undo_budget = int(budget)
        if self._undo.index() == self._undo.count():  # trimming needs an empty redo tail
            trim_history(self._undo, self._undo_budget)

    def _on_clean_changed(self, clean: bool) -> None:
        self.modified_changed.emit(not clean)

    def is_modified(self) -> bool:
        return not self._undo.isClean()

    def set_modified(self, modified: bool) -> None:
        """False marks the current state as saved; True makes no state count as saved."""
        if modified:
            self._undo.resetClean()
        else:
            self._undo.setClean()

    # ---- coordinates: the one place widget <-> image mapping lives ------------------------
    def _view(self) -> tuple[float, QPointF]:
        """(scale, offset) of the page in the widget: fit, aspect kept, centred."""
        iw, ih, w, h = self._image.width(), self._image.height(), self.width(), self.height()
        s = min(w / iw, h / ih) if w > 0 and h > 0 else 1.0
        return s, QPointF((w - iw * s) / 2, (h - ih * s) / 2)

    def widget_to_image(self, pos: QPointF) -> QPointF:
        s, off = self._view()
        return (QPointF(pos) - off) / s

    def image_to_widget(self, pt: QPointF) -> QPointF:
        s, off = self._view()
        return QPointF(pt) * s + off

    def _widget_rect(self, r: QRectF | QRect) -> QRect:
        s, off = self._view()
        r = QRectF(r)
        out = QRectF(r.topLeft() * s + off, r.size() * s).toAlignedRect()
        return out.adjusted(-2, -2, 2, 2)  # smooth scaling bleeds a pixel

    # ---- painting -----------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        return self._image.size()

    def minimumSizeHint(self) -> QSize:
        return QSize(64, 64)

    def paintEvent(self, event) -> None:
        s, off = self._view()
        p = QPainter(self)
        p.fillRect(event.rect(), VIEW_BACKGROUND)
        # Smooth at fit-to-window scales; crisp pixels only when clearly zoomed in (a 1.06x
        # nearest-neighbour blow-up makes every stroke jagged).
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, s < 2.0)
        page = QRectF(off, QSizeF(self._image.size()) * s)
        p.drawImage(page, self._image)
        p.setOpacity(MASK_OPACITY)
        p.drawImage(page, self._mask)
        p.setOpacity(1.0)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self._selection is not None and len(self._selection.points) > 1:
            outline = QPolygonF([self.image_to_widget(point) for point in self._selection.outline()])
            p.setBrush(QColor(MASK_COLOR.red(), MASK_COLOR.green(), MASK_COLOR.blue(), 60))
            p.setPen(QPen(QColor(0, 0, 0, 220), 1, Qt.PenStyle.DashLine))
            p.drawPolygon(outline, Qt.FillRule.WindingFill)
        if self._hover is not None and self._tool not in MASK_SELECTIONS:
            p.setBrush(Qt.BrushStyle.NoBrush)
            r = max(1.0, self._size * s / 2)
            p.setPen(QPen(QColor(0, 0, 0, 200), 1))
            p.drawEllipse(self._hover, r, r)
            p.setPen(QPen(QColor(255, 255, 255, 200), 1))
            p.drawEllipse(self._hover, r + 1, r + 1)  # two rings: visible on any colour

    def _update_hover(self, pos: QPointF | None) -> None:
        if pos is not None:
            r = self._size * self._view()[0] / 2 + 3
            self.update(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r).toAlignedRect())

    def _set_hover(self, pos: QPointF | None) -> None:
        self._update_hover(self._hover)
        self._hover = QPointF(pos) if pos is not None else None
        self._update_hover(self._hover)

    def _layer(self, layer: str) -> QImage:
        return self._mask if layer == MASK else self._image

    def _page(self) -> Page:
        return Page(QImage(self._image), QImage(self._mask))  # shallow: painting later detaches them

    # ---- strokes ------------------------------------------------------------------------
    def _paint(self, draw, dirty: QRectF) -> None:
        """Run ``draw(painter)`` on the stroke's layer and record/update the touched rect."""
        p = QPainter(self._layer(self._stroke.layer))
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self._stroke.clears:
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        draw(p)
        p.end()
        rect = dirty.toAlignedRect().adjusted(-1, -1, 1, 1) & self._image.rect()
        self._stroke.rect = self._stroke.rect | rect
        self.update(self._widget_rect(rect))

    def _begin_stroke(self, pt: QPointF, pressure: float, erase: bool = False) -> None:
        self._finish_gestures()  # a press without the previous release (lost to a popup)
        if self._tool in MASK_BRUSHES:
            clears = erase or self._tool == "unmask"
            layer, color, text = MASK, MASK_COLOR, "Unmask" if clears else "Mask"
        else:
            clears, erase = False, erase or self._tool == "eraser"
            # The page is opaque, so erasing is painting white.
            layer, text = SKETCH, "Erase" if erase else "Stroke"
            color = QColor(Qt.GlobalColor.white) if erase else self._color
        w = pressure_to_width(self._size, pressure)
        self._stroke = _Stroke(QImage(self._layer(layer)), color, QPointF(pt), QPointF(pt), w, QRect(), text,
                               layer, clears)

        def dot(p: QPainter) -> None:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawEllipse(pt, w / 2, w / 2)
        self._paint(dot, QRectF(pt.x() - w / 2, pt.y() - w / 2, w, w))

    def _draw_path(self, path: QPainterPath, width: float) -> None:
        pen = QPen(self._stroke.color, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                   Qt.PenJoinStyle.RoundJoin)
        m = width / 2
        self._paint(lambda p: (p.setPen(pen), p.drawPath(path)),
                    path.controlPointRect().adjusted(-m, -m, m, m))

    def _extend_stroke(self, pt: QPointF, pressure: float) -> None:
        """Quadratic smoothing through midpoints: curve from the last midpoint to the new one,
        with the last input point as control."""
        s = self._stroke
        if s is None or pt == s.last:
            return
        s.width = pressure_to_width(self._size, pressure)
        mid = (s.last + pt) / 2
        path = QPainterPath(s.last_mid)
        path.quadTo(s.last, mid)
        self._draw_path(path, s.width)
        s.last, s.last_mid = QPointF(pt), mid

    def _commit_stroke(self) -> None:
        """Finish the stroke: draw the tail, push one command holding only the touched rect."""
        s = self._stroke
        if s is None:
            return
        if s.last_mid != s.last:
            path = QPainterPath(s.last_mid)
            path.lineTo(s.last)
            self._draw_path(path, s.width)
        self._stroke = None
        layer = self._layer(s.layer)
        self._push(StrokeCommand(self, s.rect, s.before.copy(s.rect), layer.copy(s.rect), s.text, s.layer))
        self._layer_changed(s.layer)
        if s.layer == SKETCH:
            self.stroke_finished.emit()

    def _cancel_stroke(self) -> None:
        """Undo/redo arriving mid-stroke: drop the unfinished stroke so history stays exact."""
        s, self._stroke = self._stroke, None
        if s is not None:
            self._restore_rect(s.rect.topLeft(), s.before.copy(s.rect), s.layer, notify=False)
        if self._selection is not None:
            self._selection = None
            self.update()

    # ---- box and lasso ------------------------------------------------------------------
    def _begin_selection(self, pt: QPointF, clears: bool) -> None:
        self._finish_gestures()
        self._selection = _Selection(self._tool, [QPointF(pt)], clears)

    def _extend_selection(self, pt: QPointF) -> None:
        selection = self._selection
        if selection.tool == "mask_box":
            selection.points[1:] = [QPointF(pt)]
        elif pt != selection.points[-1]:
            selection.points.append(QPointF(pt))
        self.update()

    def _commit_selection(self) -> None:
        """The outline filled into the mask (or cleared from it) as one undo step; one without an area does nothing."""
        selection, self._selection = self._selection, None
        if selection is None:
            return
        self.update()
        outline = selection.outline() if len(selection.points) > 1 else QPolygonF()
        rect = outline.boundingRect().toAlignedRect().adjusted(-1, -1, 1, 1) & self._mask.rect()
        if rect.width() < 2 or rect.height() < 2:
            return
        before = self._mask.copy(rect)
        p = QPainter(self._mask)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, selection.tool == "mask_lasso")
        if selection.clears:
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(MASK_COLOR)
        p.drawPolygon(outline, Qt.FillRule.WindingFill)  # a lasso crossing itself masks all it encloses
        p.end()
        text = ("Unmask " if selection.clears else "Mask ") + ("box" if selection.tool == "mask_box" else "lasso")
        self._push(StrokeCommand(self, rect, before, self._mask.copy(rect), text, MASK))
        self._layer_changed(MASK)

    def _finish_gestures(self) -> None:
        self._commit_stroke()
        self._commit_selection()

    # ---- called by the undo commands ----------------------------------------------------
    def _push(self, cmd) -> None:
        self._finish_gestures()
        self._undo.push(cmd)
        trim_history(self._undo, self._undo_budget)

    def _restore_rect(self, top_left, pixels: QImage, layer: str = SKETCH, notify: bool = True) -> None:
        if notify:
            self._cancel_stroke()
        p = QPainter(self._layer(layer))
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        p.drawImage(top_left, pixels)
        p.end()
        self.update(self._widget_rect(QRect(top_left, pixels.size())))
        if notify:
            self._layer_changed(layer)

    def _replace_page(self, page: Page) -> None:
        self._cancel_stroke()
        resized = page.image.size() != self._image.size()
        sketch_changed = page.image.cacheKey() != self._image.cacheKey()
        mask_changed = page.mask.cacheKey() != self._mask.cacheKey()
        # shallow copies; painting later detaches them from the command's
        self._image, self._mask = QImage(page.image), QImage(page.mask)
        if resized:
            self.updateGeometry()
        self.update()
        if sketch_changed:
            self._layer_changed(SKETCH)
        if mask_changed:
            self._layer_changed(MASK)

    def _layer_changed(self, layer: str) -> None:
        if layer == MASK:
            self._mask_bytes = _UNREAD
            self.mask_changed.emit()
        else:
            self.content_changed.emit()

    # ---- input --------------------------------------------------------------------------
    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton:
            pt = self.widget_to_image(e.position())
            if self._tool in MASK_SELECTIONS:
                self._begin_selection(pt, bool(e.modifiers() & Qt.KeyboardModifier.AltModifier))
            else:
                self._begin_stroke(pt, 1.0)
            e.accept()
        else:
            super().mousePressEvent(e)

    def mouseMoveEvent(self, e) -> None:
        self._set_hover(e.position())
        if e.buttons() & Qt.MouseButton.LeftButton:
            if self._selection is not None:
                self._extend_selection(self.widget_to_image(e.position()))
            else:
                self._extend_stroke(self.widget_to_image(e.position()), 1.0)

    def mouseReleaseEvent(self, e) -> None:
        if e.button() != Qt.MouseButton.LeftButton:
            return
        if self._selection is not None:
            self._extend_selection(self.widget_to_image(e.position()))
            self._commit_selection()
        elif self._stroke is not None:
            self._extend_stroke(self.widget_to_image(e.position()), 1.0)
            self._commit_stroke()

    def tabletEvent(self, e) -> None:
        pt, pressure = self.widget_to_image(e.position()), e.pressure()
        self._set_hover(e.position())
        t = e.type()
        if self._tool in MASK_SELECTIONS:
            e.ignore()  # a box or lasso is dragged as with a mouse: Qt replays the pen as one
            return
        if t == QEvent.Type.TabletPress and e.button() == Qt.MouseButton.LeftButton:
            # The pen's eraser end erases whatever tool is selected (the mask, with a mask brush).
            erase = e.pointerType() == QPointingDevice.PointerType.Eraser
            self._begin_stroke(pt, pressure, erase)
        elif t == QEvent.Type.TabletMove and self._stroke is not None:
            self._extend_stroke(pt, pressure)
        elif t == QEvent.Type.TabletRelease and self._stroke is not None:
            self._commit_stroke()  # release pressure is ~0: keep the last width for the tail
        e.accept()  # otherwise Qt replays it as a mouse event and it draws twice

    def leaveEvent(self, e) -> None:
        self._set_hover(None)
        super().leaveEvent(e)

    def keyPressEvent(self, e) -> None:
        if e.key() == Qt.Key.Key_BracketRight:
            self.grow_brush()
        elif e.key() == Qt.Key.Key_BracketLeft:
            self.shrink_brush()
        else:
            super().keyPressEvent(e)
