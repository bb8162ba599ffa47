"""The contact sheet in the window: a sweep's cells in the plan's grid, filling in as they finish.

Each cell shows its picture with its label under it (one part a line: seed, values, the steps it
runs); a running cell shows its newest step preview, a cell to come a grey box, and once the
sweep is over a cell that never ran says so. Clicking a finished cell hands it to the window, which
turns the dial to it and shows its picture as the result; that cell is framed while it is on show;
a double click opens it large.
ResultsPane puts the sheet and the single picture in one place, with tabs to switch between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSizePolicy, QStackedWidget, QTabBar, QVBoxLayout,
                               QWidget)

from ..core.sweep import Cell, value_text
from .preview_panel import BACKGROUND, DIM
from .sheet_state import SheetState

GAP = 8
MIN_SIDE = 24  # a cell's picture is never drawn smaller (a 10 x 10 sheet in a narrow pane)
EMPTY = QColor(0x3a, 0x3a, 0x3a)
INK = QColor("#e8e8e8")
FAINT = QColor("#9a9a9a")
CURRENT = QColor("#4da3ff")  # the frame of the cell on show as the result
NOT_RUN, WAITING = "not run", "waiting"


@dataclass(frozen=True)
class _Layout:
    rows: int
    columns: int
    side: float  # a picture's width on screen
    label: int  # the height of the labels under each picture


class SheetView(QWidget):
    cell_clicked = Signal(object)  # a finished Cell
    cell_opened = Signal(object)  # a finished Cell, double-clicked

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._sheet: SheetState | None = None
        self._current: Cell | None = None
        self._scaled: dict[tuple, QImage] = {}
        self._layout_key: tuple | None = None  # the sheet and size _layout_cache was worked out for
        self._layout_cache: _Layout | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMouseTracking(True)  # the tooltip and cursor follow the cell under the mouse
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._label_font = QFont(self.font())
        self._label_font.setPointSizeF(self.font().pointSizeF() * 0.9)
        self._bold = QFont(self._label_font)
        self._bold.setBold(True)

    def sheet(self) -> SheetState | None:
        return self._sheet

    def set_sheet(self, sheet: SheetState | None) -> None:
        if sheet is not self._sheet:
            self._scaled.clear()
            self._layout_key = None
        self._sheet = sheet
        self.update()

    def set_current(self, cell: Cell | None) -> None:
        self._current = cell
        self.update()

    def current(self) -> Cell | None:
        return self._current

    def sizeHint(self) -> QSize:
        return QSize(384, 384)

    # ---- geometry ---------------------------------------------------------------------------
    def _layout(self) -> _Layout:
        """The grid on screen: the plan's rows and columns (seeds down, values across), except that a
        single row wraps into the rows that give the largest pictures in this pane."""
        plan = self._sheet.plan
        key = (id(self._sheet), self.width(), self.height())
        if self._layout_key != key:
            shapes = [(plan.rows, plan.columns)] if plan.rows > 1 else [
                (math.ceil(len(plan.cells) / columns), columns) for columns in range(1, len(plan.cells) + 1)]
            self._layout_cache = max((self._fit_grid(*shape) for shape in shapes), key=lambda layout: layout.side)
            self._layout_key = key
        return self._layout_cache

    def _fit_grid(self, rows: int, columns: int) -> _Layout:
        aspect = self._aspect()
        side = (self.width() - GAP * (columns + 1)) / columns
        for _ in range(3):  # narrower pictures wrap their labels into more lines, which leave less height
            lines = max(len(self._label_rows(cell, int(side))) for cell in self._sheet.plan.cells)
            label = QFontMetrics(self._label_font).lineSpacing() * lines + GAP // 2
            by_height = ((self.height() - GAP) / rows - label - GAP) / aspect
            if by_height >= side:
                break
            side = max(MIN_SIDE, by_height)
        return _Layout(rows, columns, side, label)

    def _label_rows(self, cell: Cell, width: int) -> list[tuple[str, bool]]:
        """(text, is_value) per line: the value bold; a part too long for `width` wraps to a second line."""
        parts = cell.label.split(" · ")
        rows = []
        for index, part in enumerate(parts):
            is_value = index == len(parts) - 2 or len(parts) == 1  # the value (or the seed of a batch alone)
            metrics = QFontMetrics(self._bold if is_value else self._label_font)
            rows += [(line, is_value) for line in _wrap(part, metrics, max(width, 1))]
        return rows

    def _aspect(self) -> float:
        """Height over width of the pictures: the sketch's (every cell has its size)."""
        size = self._sheet.sketch.size()
        return size.height() / size.width() if size.width() > 0 and size.height() > 0 else 1.0

    def picture_rect(self, cell: Cell) -> QRect:
        """Where a cell's picture is drawn (its label goes under it)."""
        layout = self._layout()
        row, column = (cell.row, cell.column) if self._sheet.plan.rows > 1 else divmod(cell.column, layout.columns)
        side, aspect = layout.side, self._aspect()
        pitch_x, pitch_y = side + GAP, side * aspect + layout.label + GAP
        left = (self.width() - (layout.columns * pitch_x - GAP)) / 2  # the grid centred in the pane
        top = max(GAP, (self.height() - (layout.rows * pitch_y - GAP)) / 2)
        return QRectF(left + column * pitch_x, top + row * pitch_y, side, side * aspect).toRect()

    def cell_at(self, x: float, y: float) -> Cell | None:
        if self._sheet is None:
            return None
        label = self._layout().label
        for cell in self._sheet.plan.cells:
            if self.picture_rect(cell).adjusted(0, 0, 0, label).contains(int(x), int(y)):
                return cell
        return None

    # ---- drawing ------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._sheet is None:
            return
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for cell in self._sheet.plan.cells:
            self._paint_cell(p, cell, self.picture_rect(cell))

    def _paint_cell(self, p: QPainter, cell: Cell, box: QRect) -> None:
        sheet = self._sheet
        entry = sheet.done.get(cell)
        running = sheet.running.get(cell)
        if entry is not None:  # one released from memory draws its thumbnail, never a file read per paint
            picture = entry.image if entry.image is not None else entry.thumbnail
        else:
            picture = running.preview if running is not None else QImage()
        if picture.isNull():
            p.fillRect(box, EMPTY)
        else:
            p.drawImage(box.topLeft(), self._fit(picture, box.size()))
        if entry is None:  # what is (not) there yet, over the box
            if running is not None:
                note = f"step {running.step[0]} / {running.step[1]}"
            else:
                note = WAITING if sheet.active else NOT_RUN
            if running is not None and not picture.isNull():
                p.fillRect(box, DIM)
            p.setPen(INK if running is not None else FAINT)
            p.setFont(self._label_font)
            p.drawText(box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, note)
        if cell is self._current:
            p.setPen(QPen(CURRENT, 3))
            p.drawRect(box.adjusted(-2, -2, 2, 2))
        self._paint_label(p, cell, box)

    def _paint_label(self, p: QPainter, cell: Cell, box: QRect) -> None:
        line = QFontMetrics(self._label_font).lineSpacing()
        y = box.bottom() + GAP // 2
        for text, is_value in self._label_rows(cell, box.width()):
            p.setFont(self._bold if is_value else self._label_font)
            p.setPen(INK if is_value else FAINT)
            p.drawText(QRect(box.left(), y, box.width(), line),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
            y += line

    def _fit(self, image: QImage, size: QSize) -> QImage:
        key = (image.cacheKey(), size.width(), size.height())
        if key not in self._scaled:
            if len(self._scaled) > 4 * len(self._sheet.plan.cells):  # old previews and sizes: start again
                self._scaled.clear()
            self._scaled[key] = image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
        return self._scaled[key]

    # ---- the mouse ----------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:
        cell = self.cell_at(event.position().x(), event.position().y())
        self.setToolTip(cell.label if cell is not None else "")
        finished = cell is not None and cell in self._sheet.done
        self.setCursor(Qt.CursorShape.PointingHandCursor if finished else Qt.CursorShape.ArrowCursor)

    def mouseReleaseEvent(self, event) -> None:
        self._finished_cell_under(event, self.cell_clicked)

    def mouseDoubleClickEvent(self, event) -> None:
        self._finished_cell_under(event, self.cell_opened)

    def _finished_cell_under(self, event, signal) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.position().x(), event.position().y())
        if cell is not None and cell in self._sheet.done:
            signal.emit(cell)


def _wrap(text: str, metrics: QFontMetrics, width: int, most: int = 2) -> list[str]:
    """`text` in lines of at most `width` pixels, broken between words; beyond `most` lines, elided."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and metrics.horizontalAdvance(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > most:
        lines = lines[:most - 1] + [" ".join(lines[most - 1:])]
    return [metrics.elidedText(line, Qt.TextElideMode.ElideRight, width) for line in lines]


class SheetPanel(QWidget):
    """The sheet with a line above it saying what it is and a button that saves it as one PNG."""

    save_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = SheetView(self)
        self.caption = QLabel(self, wordWrap=True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.save_button = QPushButton("Save sheet", self, enabled=False,
                                       toolTip="Save the sheet as one PNG in the output folder: every picture with "
                                       "its label, and every cell's settings inside")
        self.save_button.clicked.connect(self.save_requested)
        row = QHBoxLayout()
        row.setContentsMargins(6, 2, 2, 2)
        row.addWidget(self.caption, 1)
        row.addWidget(self.save_button)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(row)
        col.addWidget(self.view, 1)

    def show_sheet(self, sheet: SheetState | None) -> None:
        self.view.set_sheet(sheet)
        self.caption.setText(describe_sheet(sheet) if sheet is not None else "")
        self.save_button.setEnabled(sheet is not None and bool(sheet.done))


def describe_sheet(sheet: SheetState) -> str:
    """One line over the sheet: what was varied, at which seeds, how far it got."""
    plan = sheet.plan
    seeds = f"seed {plan.seeds[0]}" if len(plan.seeds) == 1 else f"seeds {plan.seeds[0]}–{plan.seeds[-1]}"
    varied = f"{'denoise' if plan.axis == 'denoise' else 'start step'} {_values(plan)} · " if plan.axis else ""
    made, cells = len(sheet.done), len(plan.cells)
    state = f"{made} of {cells} made" if made < cells else f"{cells} pictures"
    merged = "; values that run the same steps share a cell" if plan.merged else ""
    return f"Sweep: {varied}{seeds} · {state}{merged}"


def _values(plan) -> str:
    shown = [value_text(plan.axis, value).removeprefix("start ") for value in plan.values]
    return ", ".join(shown) if len(shown) <= 6 else f"{shown[0]} … {shown[-1]}"


class ResultsPane(QWidget):
    """The single picture (the preview panel) or the contact sheet, one at a time; the tabs above
    them show only once there is a sheet."""

    PICTURE, SHEET = 0, 1

    def __init__(self, preview: QWidget, sheet: SheetPanel, parent: QWidget | None = None):
        super().__init__(parent)
        self.tabs = QTabBar(self, documentMode=True, expanding=False)
        self.tabs.addTab("Picture")
        self.tabs.addTab("Contact sheet")
        self.tabs.setTabToolTip(self.SHEET, "The last sweep's pictures side by side")
        self.tabs.hide()
        self.stack = QStackedWidget(self)
        self.stack.addWidget(preview)
        self.stack.addWidget(sheet)
        self.tabs.currentChanged.connect(self.stack.setCurrentIndex)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.tabs)
        col.addWidget(self.stack, 1)

    def show_picture(self) -> None:
        self.tabs.setCurrentIndex(self.PICTURE)

    def show_sheet(self) -> None:
        self.tabs.show()
        self.tabs.setCurrentIndex(self.SHEET)

    def showing_sheet(self) -> bool:
        return self.stack.currentIndex() == self.SHEET
