"""PreviewPanel: the picture forming step by step, then the result, with a step scrubber.

During a run each step's preview is shown and kept (previews are small: latent2rgb ones are 1/8
of the picture). When the run ends the scrubber replays them: positions 1..n are the kept
previews, position n+1 the result.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, QSizeF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

BACKGROUND = QColor(0x20, 0x20, 0x20)  # neutral dark: judges colours fairly
ERROR_COLOR = "#ff6b6b"  # readable on dark and light palettes
# Full-VAE previews are full size (1 MiB each at 512x512, 4 MiB at 1024): past this budget a run's
# later steps are still shown but no longer kept for replay.
MAX_KEPT_BYTES = 256 * 1024 * 1024


class ImageView(QWidget):
    """Draws one QImage scaled to fit, aspect kept, smoothly (small previews are scaled up)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image = QImage()
        self._scaled, self._scaled_key = QImage(), None
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent fills everything
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def image(self) -> QImage:
        return self._image

    def set_image(self, image: QImage) -> None:
        self._image = image
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(384, 384)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._image.isNull():  # nothing yet, or previews off: the caption says what is going on
            return
        size = QSizeF(self._image.size()).scaled(QSizeF(self.size()), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF((self.width() - size.width()) / 2, (self.height() - size.height()) / 2,
                        size.width(), size.height())
        # drawImage's smoothing does not filter large blow-ups (1/8-size latent previews turn into
        # blocks), so scale with a real filter, once per image and size
        key = (self._image.cacheKey(), target.size().toSize())
        if self._scaled_key != key:
            self._scaled = self._image.scaled(key[1], Qt.AspectRatioMode.IgnoreAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation)
            self._scaled_key = key
        p.drawImage(target.topLeft(), self._scaled)


class PreviewPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._steps: list[tuple[int, int, QImage]] = []  # (step, total, preview) of the last run
        self._kept_bytes = 0
        self._result = QImage()
        self._result_caption = ""
        self.view = ImageView(self)
        self.caption = QLabel(self)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scrubber = QSlider(Qt.Orientation.Horizontal, self)
        self.scrubber.setToolTip("Replay the last run step by step")
        self.scrubber.setPageStep(1)
        self.scrubber.setEnabled(False)
        self.scrubber.valueChanged.connect(self._scrub)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.view, 1)
        col.addWidget(self.caption)
        col.addWidget(self.scrubber)

    # ---- public API ---------------------------------------------------------------------
    def begin_run(self, total: int) -> None:
        """A new run: forget the previous run's previews. The old picture stays up until the
        first preview arrives, so a Live regeneration does not flash to black."""
        self._steps.clear()
        self._kept_bytes = 0
        self._set_scrubber(0)
        self._set_caption(f"step 0 / {total}")

    def add_step(self, step: int, total: int, image: QImage) -> None:
        """One step done. A null image (previews off) only updates the caption."""
        if not image.isNull():
            if self._kept_bytes + image.sizeInBytes() <= MAX_KEPT_BYTES:
                self._steps.append((step, total, image))
                self._kept_bytes += image.sizeInBytes()
            self.view.set_image(image)
        self._set_caption(f"step {step} / {total}")

    def show_result(self, image: QImage, caption: str) -> None:
        self._result = image
        self._result_caption = caption
        self.view.set_image(image)
        self._set_caption(caption)
        self._set_scrubber(len(self._steps) + 1 if self._steps else 0)

    def show_message(self, text: str, error: bool = False) -> None:
        """A status line ("Loading model…") or an error; the picture shown stays."""
        self._set_caption(text, error)

    def shown_image(self) -> QImage:
        return self.view.image()

    def result_image(self) -> QImage:
        return self._result

    def step_images(self) -> list[QImage]:
        return [image for _, _, image in self._steps]

    def caption_text(self) -> str:
        return self.caption.text()

    # ---- internals ------------------------------------------------------------------------
    def _set_caption(self, text: str, error: bool = False) -> None:
        self.caption.setText(text)
        self.caption.setStyleSheet(f"color: {ERROR_COLOR}; font-weight: bold;" if error else "")

    def _set_scrubber(self, positions: int) -> None:
        """Offer positions 1..positions, at the end (the result); 0 disables the scrubber."""
        self.scrubber.blockSignals(True)  # moving it here is not a user replay
        self.scrubber.setRange(1, max(1, positions))
        self.scrubber.setValue(self.scrubber.maximum())
        self.scrubber.blockSignals(False)
        self.scrubber.setEnabled(positions > 1)
        ticks = QSlider.TickPosition.TicksBelow if positions <= 60 else QSlider.TickPosition.NoTicks
        self.scrubber.setTickPosition(ticks)  # one tick a step, while they stay apart

    def _scrub(self, position: int) -> None:
        if position > len(self._steps):
            self.view.set_image(self._result)
            self._set_caption(self._result_caption)
            return
        step, total, image = self._steps[position - 1]
        self.view.set_image(image)
        self._set_caption(f"step {step} / {total} · replay")
