"""Offer to fit a picture that is far too large for the model before it becomes the sketch.

A 4096x4096 photo was taken as it was and the next run took minutes; the person now decides. The
model's native size (SD1.5's 512, SDXL's 1024) sets what is too large and what it is fitted to; a
server's checkpoint counts as SD1.5's (its family is the server's business).
"""

from __future__ import annotations

from PIL import Image
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.families import model_kind, native_size
from ..core.images import SD15_LONG_SIDE, fit_for_sd15, fit_sketch_for_sd15, needs_fit_for_sd15
from .session_state import ModelState


def native_size_for(model: ModelState) -> int:
    """The side the model in use works at best (a canvas's default, what large pictures are fitted to)."""
    return SD15_LONG_SIDE if model.on_server else native_size(model.model)


def family_for(model: ModelState) -> tuple[str, bool]:
    """The family of the model in use, by name, and whether it is a one-step model (SD 1.5's, not
    one-step, when it cannot be known: a server's checkpoint, a Hub model not downloaded yet)."""
    kind = None if model.on_server else model_kind(model.model)
    return (kind.family.name, kind.turbo) if kind is not None else ("sd15", False)


def fit_question(parent: QWidget | None, size: tuple[int, int], native: int = SD15_LONG_SIDE) -> QMessageBox:
    """The question, with "Fit" as the default button (kept apart from exec() for tests)."""
    (width, height), (fit_w, fit_h) = size, fit_for_sd15(size, native)
    box = QMessageBox(QMessageBox.Icon.Question, "Large picture",
                      f"This picture is {width} × {height} pixels. The model works at about {native}: "
                      f"at this size every run takes far longer and the subject tends to repeat.",
                      parent=parent)
    box.setInformativeText(f"Fit it to {fit_w} × {fit_h}, or keep it as it is?")
    fit = box.addButton(f"Fit to {fit_w} × {fit_h}", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(f"Keep {width} × {height}", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(fit)
    box.fit_button = fit
    return box


def ask_to_fit(parent: QWidget | None, size: tuple[int, int], native: int = SD15_LONG_SIDE) -> bool:
    box = fit_question(parent, size, native)
    box.exec()
    return box.clickedButton() is box.fit_button


def offer_sd15_fit(parent: QWidget | None, sketch: Image.Image, ask=None, native: int = SD15_LONG_SIDE) -> Image.Image:
    """The sketch as the person wants it: fitted to the model's native size if it is too large and they agree."""
    if not needs_fit_for_sd15(sketch.size, native):
        return sketch
    if (ask or ask_to_fit)(parent, sketch.size, native):
        return fit_sketch_for_sd15(sketch, native)
    return sketch
