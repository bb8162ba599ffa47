"""The denoise dial and the one table of its named ranges (label, legend and arcs all read BANDS).

Denoise is kept in hundredths, the dial's resolution, so the ranges are closed ranges of
hundredths that tile 0.01..1.00 without gaps; 0.00 keeps the sketch exactly ("unchanged").
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QDial, QStyle, QStyleOptionSlider, QWidget

# (name, first hundredth, last hundredth, colour readable on dark and light)
BANDS = (("subtle", 1, 40, "#4fc3f7"), ("restyle", 41, 75, "#ffb74d"), ("reimagine", 76, 100, "#f06292"))
UNCHANGED = "unchanged"
# QDial (not wrapping) runs clockwise over 300 degrees, from 240 (minimum) to -60 (maximum).
START_ANGLE, SWEEP = 240.0, 300.0


def denoise_band(value: float) -> str:
    """The range a denoise value belongs to; 0 keeps the sketch."""
    hundredths = round(value * 100)  # integers: no edge decided by float noise
    return next((name for name, low, high, _ in BANDS if low <= hundredths <= high), UNCHANGED)


def band_color(name: str) -> str | None:
    return next((color for band, _, _, color in BANDS if band == name), None)


def band_range_text(low: int, high: int) -> str:
    """"0.41–0.75"; the top range as "≥ 0.76" (nothing lies above 1.00)."""
    return f"≥ {low / 100:.2f}" if high == 100 else f"{low / 100:.2f}–{high / 100:.2f}"


def band_arcs() -> list[tuple[str, float, float]]:
    """(name, from, to) in denoise units: each arc ends where the next begins, halfway between
    the last hundredth of one range and the first of the next, where the label changes."""
    return [(name, max(0.0, (low - 0.5) / 100), min(1.0, (high + 0.5) / 100)) for name, low, high, _ in BANDS]


class DenoiseDial(QDial):
    """A QDial (0..100 = denoise 0.00..1.00) with the ranges drawn as coloured arcs.

    A click does not move it (QDial jumps to the clicked angle, so a click meant to grab the knob
    changed the picture); dragging turns it by the angle dragged, the wheel and keys as usual.
    """

    RING = 7  # px between the widget edge and the dial itself, where the arcs go

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, minimum=0, maximum=100, notchesVisible=True, notchTarget=5, pageStep=10,
                         toolTip="Denoise: how much of the sketch is repainted (drag, scroll or use the arrow keys)")
        self.setFixedSize(112, 112)
        self._drag_angle: float | None = None
        self._drag_value = 0.0

    # ---- relative dragging ----------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            event.ignore()
            return
        self._drag_angle = self._angle(event.position())
        self._drag_value = float(self.value())
        self.setSliderDown(True)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag_angle is None:
            event.ignore()
            return
        angle = self._angle(event.position())
        turned = (self._drag_angle - angle + 180.0) % 360.0 - 180.0  # clockwise positive, shortest way
        self._drag_angle = angle
        span = self.maximum() - self.minimum()
        self._drag_value = min(self.maximum(), max(self.minimum(), self._drag_value + turned / SWEEP * span))
        self.setSliderPosition(round(self._drag_value))
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._drag_angle is None:
            event.ignore()
            return
        self._drag_angle = None
        self.setSliderDown(False)
        event.accept()

    def _angle(self, pos: QPointF) -> float:
        return math.degrees(math.atan2(self.height() / 2 - pos.y(), pos.x() - self.width() / 2))

    def value_angle(self, value: float) -> float:
        """The angle (degrees, counter-clockwise from 3 o'clock) at which the dial shows a value."""
        return START_ANGLE - SWEEP * (value - self.minimum()) / (self.maximum() - self.minimum())

    # ---- painting -------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        side = min(self.width(), self.height())  # QDial draws around the centre
        square = QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        opt.rect = square.adjusted(self.RING, self.RING, -self.RING, -self.RING).toRect()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for name, start, end in band_arcs():
            c = QColor(band_color(name))
            c.setAlpha(255 if self.isEnabled() else 90)
            p.setPen(QPen(c, 5, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
            p.drawArc(square.adjusted(3, 3, -3, -3), round((START_ANGLE - SWEEP * start) * 16),
                      round(-SWEEP * (end - start) * 16))
        self.style().drawComplexControl(QStyle.ComplexControl.CC_Dial, opt, p, self)
