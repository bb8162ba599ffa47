"""The canvas's mask as pixels: how it is stored, shown, read out and edited as a whole.

The mask is a layer of its own over the sketch, never painted into it. It is kept as an
ARGB32_Premultiplied QImage of one solid colour whose alpha is the mask's value (0 keeps a pixel,
255 redoes it): QPainter paints strokes, boxes and lassos into it directly, the canvas draws it
translucently over the page as it is, and its alpha channel is the grey mask the request carries.
The edits of the whole mask (invert, grow, shrink, feather) are pure functions on grey arrays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

MASK_FORMAT = QImage.Format.Format_ARGB32_Premultiplied
MASK_COLOR = QColor(232, 36, 96)  # a pink that no sketch line or paper white is mistaken for
MASK_OPACITY = 0.45  # the sketch stays readable under the mask
EDIT_STEP = 8  # pixels a grow, shrink or feather moves the mask's edge


def blank_mask(width: int, height: int) -> QImage:
    """Nothing masked: fully transparent."""
    mask = QImage(width, height, MASK_FORMAT)
    mask.fill(Qt.GlobalColor.transparent)
    return mask


def mask_grey(mask: QImage) -> np.ndarray:
    """The mask's values (uint8, height x width)."""
    return _bytes_of(mask.convertToFormat(QImage.Format.Format_Alpha8))


def mask_from_grey(grey: np.ndarray) -> QImage:
    """A mask layer whose values are `grey` (uint8, height x width)."""
    alpha = np.ascontiguousarray(grey, dtype=np.uint8).astype(np.uint32)
    height, width = alpha.shape
    # one 0xAARRGGBB word a pixel in the machine's own byte order, as Qt keeps ARGB32; colours premultiplied
    pixels = alpha << 24
    for shift, value in ((16, MASK_COLOR.red()), (8, MASK_COLOR.green()), (0, MASK_COLOR.blue())):
        pixels |= ((alpha * value + 127) // 255) << shift
    return QImage(pixels.data, width, height, width * 4, MASK_FORMAT).copy()


def grey_image(grey: np.ndarray) -> QImage:
    """The mask's values as a Grayscale8 picture (white redoes), e.g. to save it."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    height, width = grey.shape
    return QImage(grey.data, width, height, width, QImage.Format.Format_Grayscale8).copy()


def grey_of_image(image: QImage) -> np.ndarray:
    """The values of a Grayscale8 (or any) picture read as a mask, e.g. one saved by `grey_image`."""
    return _bytes_of(image.convertToFormat(QImage.Format.Format_Grayscale8))


def _bytes_of(image: QImage) -> np.ndarray:
    """An 8-bit image's pixels (uint8, height x width), without the rows' padding."""
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    rows = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return rows[:, :width].copy()


# ---- edits of the whole mask -------------------------------------------------------------
def inverted(grey: np.ndarray) -> np.ndarray:
    return 255 - grey


def grown(grey: np.ndarray, pixels: int = EDIT_STEP) -> np.ndarray:
    """The mask's edge moved `pixels` outwards. Each pass takes the largest neighbour: the four
    straight ones, and every other pass the diagonal ones too, so the edge grows as an octagon
    (close to a circle), not a square."""
    out = grey
    for step in range(pixels):
        padded = np.pad(out, 1, mode="edge")
        neighbours = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        if step % 2:
            neighbours += [padded[:-2, :-2], padded[:-2, 2:], padded[2:, :-2], padded[2:, 2:]]
        out = np.maximum.reduce([out, *neighbours])
    return out


def shrunk(grey: np.ndarray, pixels: int = EDIT_STEP) -> np.ndarray:
    """The mask's edge moved `pixels` inwards."""
    return 255 - grown(255 - grey, pixels)


def feathered(grey: np.ndarray, pixels: int = EDIT_STEP) -> np.ndarray:
    """The mask's edge softened: a Gaussian blur of radius `pixels`."""
    return np.asarray(Image.fromarray(grey).filter(ImageFilter.GaussianBlur(pixels)))
