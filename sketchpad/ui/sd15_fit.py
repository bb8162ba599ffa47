"""Offer to fit a picture that is far too large for SD1.5 before it becomes the sketch.

A 4096x4096 photo was taken as it was and the next run took minutes; the person now decides.
"""

from __future__ import annotations

from PIL import Image
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.images import fit_for_sd15, fit_sketch_for_sd15, needs_fit_for_sd15


def fit_question(parent: QWidget | None, size: tuple[int, int]) -> QMessageBox:
    """The question, with "Fit" as the default button (kept apart from exec() for tests)."""
    (width, height), (fit_w, fit_h) = size, fit_for_sd15(size)
    box = QMessageBox(QMessageBox.Icon.Question, "Large picture",
                      f"This picture is {width} × {height} pixels. Stable Diffusion 1.5 works at about 512: "
                      f"at this size every run takes far longer and the subject tends to repeat.",
                      parent=parent)
    box.setInformativeText(f"Fit it to {fit_w} × {fit_h}, or keep it as it is?")
    fit = box.addButton(f"Fit to {fit_w} × {fit_h}", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(f"Keep {width} × {height}", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(fit)
    box.fit_button = fit
    return box


def ask_to_fit(parent: QWidget | None, size: tuple[int, int]) -> bool:
    box = fit_question(parent, size)
    box.exec()
    return box.clickedButton() is box.fit_button


def offer_sd15_fit(parent: QWidget | None, sketch: Image.Image, ask=None) -> Image.Image:
    """The sketch as the person wants it: fitted for SD1.5 if it is too large and they agree."""
    if not needs_fit_for_sd15(sketch.size):
        return sketch
    if (ask or ask_to_fit)(parent, sketch.size):
        return fit_sketch_for_sd15(sketch)
    return sketch
