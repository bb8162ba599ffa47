"""PreviewPanel: the picture forming step by step, then the result, with a step scrubber.

During a run each step's preview is shown and kept (previews are small: latent2rgb ones are 1/8
of the picture). When the run ends the scrubber replays them: positions 1..n are the kept
previews, position n+1 the result.

Errors have their own line (red, with ✕ to dismiss) under the caption: step captions of the next
(Live) run do not overwrite them; the next result, a non-error message or ✕ clears them. A
cancelled run stays marked (dimmed picture, "cancelled at step k of N") until the next run shows
something. In messages, `backquoted` commands are kept on one line.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QRectF, QSize, QSizeF, Qt
from PySide6.QtGui import QColor, QFontDatabase, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget

BACKGROUND = QColor(0x20, 0x20, 0x20)  # neutral dark: judges colours fairly
ERROR_COLOR = "#ff6b6b"  # readable on dark and light palettes
# Full-VAE previews are full size (1 MiB each at 512x512, 4 MiB at 1024): past this budget a run's
# later steps are still shown but no longer kept for replay.
MAX_KEPT_BYTES = 256 * 1024 * 1024
DIM = QColor(0, 0, 0, 150)  # over a cancelled run's unfinished picture
_COMMAND = re.compile(r"`([^`]+)`")


def message_html(text: str, room: int | None = None) -> str:
    """Plain text as rich text: line breaks kept, each `command` on a line of its own that is
    never wrapped while `room` (px) holds it (Qt wraps inside an inline span whatever its
    white-space says); in less room it wraps at its spaces rather than being cut off."""
    metrics = QFontMetrics(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    parts = []
    for i, part in enumerate(_COMMAND.split(text)):
        escaped = html.escape(part)
        if i % 2:
            fits = room is None or metrics.horizontalAdvance(part) <= room
            parts.append(f"<p style='white-space:{'pre' if fits else 'normal'}; font-family:monospace; "
                         f"font-weight:normal; margin:3px 0'>{escaped}</p>")
        elif part.strip():
            parts.append(escaped.strip(" ").replace("\n", "<br>"))
    return "".join(parts)


class ImageView(QWidget):
    """Draws one QImage scaled to fit, aspect kept, smoothly (small previews are scaled up)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image = QImage()
        self._dimmed = False
        self._scaled, self._scaled_key = QImage(), None
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent fills everything
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def image(self) -> QImage:
        return self._image

    def set_image(self, image: QImage) -> None:
        self._image = image
        self.update()

    def is_dimmed(self) -> bool:
        return self._dimmed

    def set_dimmed(self, on: bool) -> None:
        if on != self._dimmed:
            self._dimmed = on
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
        if self._dimmed:
            p.fillRect(target, DIM)
            font = p.font()
            font.setBold(True)
            font.setPointSizeF(font.pointSizeF() * 1.6)
            p.setFont(font)
            p.setPen(QColor("#f0f0f0"))
            p.drawText(target, Qt.AlignmentFlag.AlignCenter, "cancelled")


class PreviewPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._steps: list[tuple[int, int, QImage]] = []  # (step, total, preview) of the last run
        self._kept_bytes = 0
        self._result = QImage()
        self._result_caption = ""
        self._last_step = (0, 0)  # (step, total) of the newest preview of the current run
        self._cancelled = False
        self._caption = ""
        self.view = ImageView(self)
        self.caption = QLabel(self)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.error_label = QLabel(self, wordWrap=True, styleSheet=f"color: {ERROR_COLOR}; font-weight: bold;")
        self.error_label.setTextFormat(Qt.TextFormat.RichText)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss_button = QToolButton(self, text="✕", autoRaise=True, toolTip="Dismiss this message")
        self.dismiss_button.clicked.connect(self.clear_error)
        for label in (self.caption, self.error_label):  # a long command must not widen the pane
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setContentsMargins(6, 2, 6, 2)  # text off the pane's edges
        self.error_bar = QWidget(self)
        error_row = QHBoxLayout(self.error_bar)
        error_row.setContentsMargins(0, 0, 0, 0)
        error_row.addWidget(self.error_label, 1)
        error_row.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        self.error_bar.hide()
        self._error = ""
        self.scrubber = QSlider(Qt.Orientation.Horizontal, self)
        self.scrubber.setToolTip("Replay the last run step by step")
        self.scrubber.setPageStep(1)
        self.scrubber.setEnabled(False)
        self.scrubber.valueChanged.connect(self._scrub)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.view, 1)
        col.addWidget(self.caption)
        col.addWidget(self.error_bar)
        col.addWidget(self.scrubber)

    # ---- public API ---------------------------------------------------------------------
    def begin_run(self, total: int) -> None:
        """A new run: forget the previous run's previews. The old picture stays up until the
        first preview arrives, so a Live regeneration does not flash to black."""
        self._steps.clear()
        self._kept_bytes = 0
        self._last_step = (0, total)
        self._set_cancelled(False)
        self._set_scrubber(0)
        self._set_caption(f"step 0 / {total}")

    def add_step(self, step: int, total: int, image: QImage) -> None:
        """One step done. A null image (previews off) only updates the caption."""
        if not image.isNull():
            if self._kept_bytes + image.sizeInBytes() <= MAX_KEPT_BYTES:
                self._steps.append((step, total, image))
                self._kept_bytes += image.sizeInBytes()
            self.view.set_image(image)
        self._last_step = (step, total)
        self._set_cancelled(False)
        self._set_caption(f"step {step} / {total}")

    def show_result(self, image: QImage, caption: str) -> None:
        """A finished picture: clears the cancelled mark (an error on show is the session's to clear)."""
        self._set_cancelled(False)
        self._result = image
        self._result_caption = caption
        self.view.set_image(image)
        self._set_caption(caption)
        self._set_scrubber(len(self._steps) + 1 if self._steps else 0)

    def show_caption(self, text: str) -> None:
        """A line under the picture ("Loading model…"); the picture shown and any error stay."""
        self._set_caption(text)

    def show_error(self, text: str) -> None:
        """The error bar under the caption, until dismissed or replaced; "" hides it."""
        self._error = text
        self._render_messages()
        self.error_bar.setVisible(bool(text))

    def clear_error(self) -> None:
        self.show_error("")

    def error_text(self) -> str:
        """The error on show, "" when none."""
        return self._error

    def mark_cancelled(self, step: int | None = None, total: int | None = None) -> None:
        """The run was cancelled: dim its unfinished picture and say where it stopped (by default
        at the newest preview shown). Its kept previews can still be replayed."""
        last_step, last_total = self._last_step
        step, total = (last_step if step is None else step), (last_total if total is None else total)
        self._set_cancelled(True)
        self._set_caption(f"cancelled at step {step} of {total}" if total else "cancelled")
        self._set_scrubber(len(self._steps))

    def is_cancelled(self) -> bool:
        return self._cancelled

    def shown_image(self) -> QImage:
        return self.view.image()

    def result_image(self) -> QImage:
        return self._result

    def step_images(self) -> list[QImage]:
        return [image for _, _, image in self._steps]

    def caption_text(self) -> str:
        """What is written under the picture, as plain text: the caption, then any error."""
        return "\n".join(text for text in (self._caption, self._error) if text)

    # ---- internals ------------------------------------------------------------------------
    def _set_caption(self, text: str) -> None:
        self._caption = text
        self._render_messages()

    def _render_messages(self) -> None:
        # the panel's width, not the labels': a label just shown has not been laid out yet
        room = self.width() - 12  # less the labels' margins
        self.caption.setText(message_html(self._caption, room))
        self.error_label.setText(message_html(self._error, room - self.dismiss_button.sizeHint().width() - 8))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._render_messages()  # a command that fits again goes back on one line

    def _set_cancelled(self, on: bool) -> None:
        self._cancelled = on
        self.view.set_dimmed(on)

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
        if position > len(self._steps) or position < 1:
            self.view.set_image(self._result)
            self._set_caption(self._result_caption)
            return
        step, total, image = self._steps[position - 1]
        self.view.set_image(image)
        suffix = " · cancelled" if self._cancelled else ""
        self._set_caption(f"step {step} / {total} · replay{suffix}")
