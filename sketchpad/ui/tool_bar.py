"""ToolPanel: the drawing controls above a SketchCanvas, in three short rows: the sketch's tools
and history, the colour and size, and the mask (mask_tools.py).

The canvas is the single source of truth: the panel writes through its setters and follows
its signals (brush_size_changed, tool_changed, color_changed, mask_changed, and the QUndoStack's
canUndo/canRedo), so shortcuts or code that change the canvas keep the panel in sync.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QFrame, QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from .canvas import MAX_BRUSH, MIN_BRUSH, SketchCanvas
from .mask_options import CanvasMask
from .mask_tools import MaskToolRow, tool_button

RECENT_COUNT = 8
DEFAULT_RECENTS = ["#000000", "#404040", "#808080", "#c0c0c0",
                   "#d32f2f", "#388e3c", "#1976d2", "#fbc02d"]


# The active tool must be unmistakable: the style's own checked look is a slightly different grey.
def tool_style(side_padding: int) -> str:
    return (f"QToolButton {{ padding: 2px {side_padding}px; border: 1px solid #5a5a60; border-radius: 3px; }}"
            " QToolButton:hover { border-color: #8a8a90; }"
            " QToolButton:checked { background-color: #4a7bd0; color: #ffffff; border-color: #a8c8ff; }")


TOOL_STYLE = tool_style(6)
MASK_TOOL_STYLE = tool_style(3)  # four mask tools and the mask's state share a row as narrow as the canvas


def _swatch_style(color: QColor) -> str:
    return (f"QToolButton {{ background-color: {color.name()}; border: 1px solid #777;"
            " border-radius: 3px; }")


class ToolPanel(QWidget):
    def __init__(self, canvas: SketchCanvas, mask: CanvasMask | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._canvas = canvas
        self._recent: list[QColor] = [QColor(c) for c in DEFAULT_RECENTS]
        # two short rows, so the canvas column can be as narrow as the picture beside it at 1024 px
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        row = QHBoxLayout()
        row.setSpacing(4)
        rows.addLayout(row)

        self.brush_button = tool_button(canvas, self._button("✏ Brush", "Brush (B)", checkable=True), "brush")
        self.eraser_button = tool_button(canvas, self._button("⌫ Eraser", "Eraser, paints white (E)", checkable=True),
                                         "eraser")
        row.addWidget(self.brush_button)
        row.addWidget(self.eraser_button)
        row.addWidget(self._separator())

        stack = canvas.undo_stack()
        self.undo_button = self._button("↶", "Undo the last change (Ctrl+Z)")
        self.redo_button = self._button("↷", "Redo (Ctrl+Shift+Z)")
        self.clear_button = self._button("✕ Clear", "Clear the canvas (undoable)")
        self.undo_button.clicked.connect(stack.undo)
        self.redo_button.clicked.connect(stack.redo)
        self.clear_button.clicked.connect(canvas.clear)
        stack.canUndoChanged.connect(self.undo_button.setEnabled)
        stack.canRedoChanged.connect(self.redo_button.setEnabled)
        for b in (self.undo_button, self.redo_button, self.clear_button):
            row.addWidget(b)
        row.addStretch(1)
        row = QHBoxLayout()
        row.setSpacing(3)
        rows.addLayout(row)

        self.color_button = self._button("", "Brush colour…")
        self.color_button.setFixedSize(26, 22)
        self.color_button.clicked.connect(self._open_color_dialog)
        row.addWidget(self.color_button)
        self.recent_buttons: list[QToolButton] = []
        for i in range(RECENT_COUNT):
            b = QToolButton(self)
            b.setFixedSize(16, 16)
            b.clicked.connect(lambda _=False, i=i: canvas.set_color(self._recent[i]))
            self.recent_buttons.append(b)
            row.addWidget(b)
        row.addWidget(self._separator())

        row.addWidget(QLabel("Size", self))
        self.size_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.size_slider.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size_slider.setToolTip("Brush size in pixels ( [ and ] )")
        self.size_slider.setMinimumWidth(50)
        self.size_slider.valueChanged.connect(canvas.set_brush_size)
        row.addWidget(self.size_slider, 1)
        self.size_label = QLabel(self)
        self.size_label.setMinimumWidth(self.size_label.fontMetrics().horizontalAdvance("200 px"))
        row.addWidget(self.size_label)

        self.mask_row = MaskToolRow(canvas, mask or CanvasMask(canvas, self), MASK_TOOL_STYLE, self)
        rows.addWidget(self.mask_row)

        canvas.brush_size_changed.connect(self._show_size)
        canvas.color_changed.connect(self._show_color)
        self._show_size(canvas.brush_size())
        self._show_color(canvas.color())
        self._show_recents()
        self.undo_button.setEnabled(stack.canUndo())
        self.redo_button.setEnabled(stack.canRedo())

    # ---- public ---------------------------------------------------------------------------
    def recent_colors(self) -> list[QColor]:
        return [QColor(c) for c in self._recent]

    def choose_color(self, color: QColor) -> None:
        """Pick a colour as the dialog does: select it and put it first among the recents."""
        color = QColor(color)
        if not color.isValid():
            return
        self._recent = [color] + [c for c in self._recent if c.rgb() != color.rgb()]
        del self._recent[RECENT_COUNT:]
        self._show_recents()
        self._canvas.set_color(color)

    # ---- internals ------------------------------------------------------------------------
    def _button(self, text: str, tip: str, checkable: bool = False) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setCheckable(checkable)
        b.setAutoRaise(not checkable)
        if checkable:
            b.setStyleSheet(TOOL_STYLE)
        return b

    def _separator(self) -> QFrame:
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.VLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        return line

    def _open_color_dialog(self) -> None:
        color = QColorDialog.getColor(self._canvas.color(), self, "Brush colour")
        if color.isValid():
            self.choose_color(color)

    def _show_size(self, size: int) -> None:
        if self.size_slider.value() != size:  # no echo back into the canvas
            self.size_slider.setValue(size)
        self.size_label.setText(f"{size} px")

    def _show_color(self, color: QColor) -> None:
        self.color_button.setStyleSheet(_swatch_style(color))
        self.color_button.setToolTip(f"Brush colour {color.name()} (click to change)")

    def _show_recents(self) -> None:
        for b, c in zip(self.recent_buttons, self._recent):
            b.setStyleSheet(_swatch_style(c))
            b.setToolTip(c.name())
