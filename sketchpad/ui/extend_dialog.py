"""Canvas → Extend…: grow the picture on any side for outpainting, as one undo step.

The new area is masked and pre-filled from the picture's edge colours (core.masks.extend_picture),
so that a run with a high denoise paints it in; the old area keeps its pixels and its mask.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGridLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ..core.errors import SketchpadError
from ..core.images import MAX_SIDE
from ..core.masks import extend_picture
from ..qimages import pil_to_qimage, qimage_to_pil
from .canvas import SketchCanvas
from .session import Session

SIDES = ("left", "top", "right", "bottom")
FILL_HINT = "Generate with a high denoise (about 0.9 or more) to paint it in"


class ExtendDialog(QDialog):
    """Pixels to add on each side; OK once at least one side grows."""

    def __init__(self, width: int, height: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Extend the canvas")
        self._size = (width, height)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Add pixels on each side. The new area is masked and filled from the picture's\n"
                                f"edge colours: {FILL_HINT.lower()}.", self))
        grid = QGridLayout()
        self.spins: dict[str, QSpinBox] = {}
        for side, (row, column) in zip(SIDES, ((1, 0), (0, 1), (1, 2), (2, 1))):
            spin = QSpinBox(self)
            spin.setRange(0, MAX_SIDE - (width if side in ("left", "right") else height))
            spin.setSingleStep(64)
            spin.setSuffix(" px")
            spin.setPrefix(f"{side.capitalize()}: ")
            spin.valueChanged.connect(self._show_size)
            grid.addWidget(spin, row, column)
            self.spins[side] = spin
        self.size_label = QLabel(self)
        self.size_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.size_label.setToolTip("The size of the picture once extended")
        grid.addWidget(self.size_label, 1, 1)
        layout.addLayout(grid)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._show_size()

    def margins(self) -> dict[str, int]:
        return {side: spin.value() for side, spin in self.spins.items()}

    def _show_size(self) -> None:
        m = self.margins()
        width, height = self._size[0] + m["left"] + m["right"], self._size[1] + m["top"] + m["bottom"]
        self.size_label.setText(f"{width} × {height}")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(any(m.values()))


def extend_canvas(canvas: SketchCanvas, left: int = 0, top: int = 0, right: int = 0, bottom: int = 0) -> None:
    """Grow the canvas (one undo step); raises SketchpadError, changing nothing, when it cannot."""
    mask = Image.fromarray(canvas.mask_values()) if canvas.has_mask() else None
    picture, new_mask = extend_picture(qimage_to_pil(canvas.image()), mask, left, top, right, bottom)
    canvas.set_image(pil_to_qimage(picture), mask=np.asarray(new_mask), text="Extend canvas")


def extend_from_dialog(parent: QWidget, session: Session, canvas: SketchCanvas) -> None:
    size = canvas.canvas_size()
    dialog = ExtendDialog(size.width(), size.height(), parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    try:
        extend_canvas(canvas, **dialog.margins())
    except SketchpadError as error:
        session.say(str(error), error=True)
        return
    size = canvas.canvas_size()
    session.say(f"Extended the canvas to {size.width()} × {size.height()}; the new area is masked. {FILL_HINT}")
