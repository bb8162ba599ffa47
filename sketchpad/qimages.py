"""QImage <-> PIL/numpy conversions, and a fingerprint of a picture's pixels: Qt's side of the pictures, shared by
the worker and the widgets (no torch here)."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage


def qimage_to_pil(image: QImage) -> Image.Image:
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    buffer = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * height)
    rows = buffer.reshape(height, stride)[:, : width * 3]
    return Image.fromarray(rows.reshape(height, width, 3).copy(), "RGB")


def numpy_to_qimage(array: np.ndarray) -> QImage:
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    # copy(): the QImage must own its pixels once the numpy buffer is gone
    return QImage(array.data, width, height, width * 3, QImage.Format.Format_RGB888).copy()


def pil_to_qimage(image: Image.Image) -> QImage:
    return numpy_to_qimage(np.asarray(image.convert("RGB")))


def pixel_digest(image: QImage) -> str:
    """Equal for equal pixels whatever the QImage's format or history (undo, reload, paste)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{rgb.width()}x{rgb.height()}".encode())
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    digest.update(np.ascontiguousarray(rows[:, : width * 3]).tobytes())  # the row padding is not picture
    return digest.hexdigest()
