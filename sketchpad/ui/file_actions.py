"""Pictures in and out of the window: open/paste/drop a sketch, save and copy results.

Every failure is one clear message and changes nothing: the drawing is only replaced once the new
picture has been read completely. Everything it says goes through the session's message signal.
Saved results carry the sketch they were made from (unless the setting leaves it out); opening one
that does offers to put that sketch back on the canvas with the settings, to go on from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from ..core.contact_sheet import CellPicture, save_sheet
from ..core.errors import SketchpadError
from ..core.images import load_sketch, prepare_sketch
from ..core.rerun import Rerun, read_rerun
from ..core.storage import next_free_path, read_png_parameters, save_png, save_result
from .canvas import SketchCanvas
from ..qimages import pil_to_qimage, qimage_to_pil
from .sd15_fit import native_size_for, offer_sd15_fit
from .history import HistoryEntry
from .session import Session

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"


class FileActions:
    def __init__(self, session: Session, canvas: SketchCanvas, dialog_parent: QWidget):
        self.session, self.canvas, self.dialog_parent = session, canvas, dialog_parent

    # ---- sketches in ---------------------------------------------------------------------
    def open_sketch_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Open a sketch",
                                              str(self.session.dialog_folder()), IMAGE_FILTER)
        if path:
            self.open_sketch(Path(path))

    def open_sketch(self, path: Path) -> bool:
        """Load a picture as the sketch; a PNG made by Sketchpad (or A1111) also restores its settings,
        and one made with a mask its mask: then the picture keeps its own size, which the mask fits.
        A picture without a mask takes the canvas's mask away."""
        path = Path(path)
        carried = self._carried(path)
        if carried is not None and self.ask_restore_sketch(path, carried):
            return self._restore(path, carried)
        info, unreadable = None, False
        if path.suffix.lower() == ".png":
            try:
                info = read_png_parameters(path)
            except SketchpadError:  # the picture may be fine; only its settings are not
                unreadable = True
        mask = info.params.mask if info is not None else None
        try:
            sketch = load_sketch(path, keep_size=mask is not None)
        except SketchpadError as error:
            self.session.say(str(error), error=True)
            return False
        self.session.last_folder = path.parent
        if mask is None:
            sketch = offer_sd15_fit(self.dialog_parent, sketch, native=native_size_for(self.session.model))
        self.canvas.set_image(pil_to_qimage(sketch), mask=None if mask is None else np.asarray(mask.image()))
        if info is not None:
            self.session.load_request(info.params)
            with_mask = " with its mask" if mask is not None else ""
            self.session.say(f"Opened {path.name}{with_mask} and restored its settings")
        elif unreadable:
            self.session.say(f"Opened {path.name} as a sketch; its settings could not be read")
        else:
            self.session.say(f"Opened {path.name}")
        return True

    def ask_restore_sketch(self, path: Path, carried: Rerun) -> bool:
        prompt = f"\n\nPrompt: {carried.info.params.prompt}" if carried.info.params.prompt.strip() else ""
        answer = QMessageBox.question(
            self.dialog_parent, "Restore the sketch?",
            f"{path.name} carries the sketch it was made from. Put that sketch on the canvas with the "
            f"picture's settings? (No: open the picture itself as the sketch.){prompt}")
        return answer == QMessageBox.StandardButton.Yes

    def _carried(self, path: Path) -> Rerun | None:
        """The sketch and settings a PNG carries (a result, or a contact sheet's first picture), else None."""
        if path.suffix.lower() != ".png":
            return None
        try:
            return read_rerun(path)
        except SketchpadError:  # no settings, no sketch inside, or damaged: the picture opens as it is
            return None

    def _restore(self, path: Path, carried: Rerun) -> bool:
        params = carried.info.params
        mask = params.mask
        if mask is not None and mask.image().size != carried.sketch.size:  # a mask must fit what it masks
            params, mask = params.replace(mask=None), None
        self.session.last_folder = path.parent
        self.canvas.set_image(pil_to_qimage(carried.sketch.convert("RGB")),
                              mask=None if mask is None else np.asarray(mask.image()))
        self.session.load_request(params)
        with_mask = " and its mask" if mask is not None else ""
        self.session.say(f"Restored the sketch{with_mask} and settings {path.name} was made from")
        return True

    def paste(self) -> bool:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.session.say("The clipboard holds no picture to paste", error=True)
            return False
        return self.use_image_as_sketch(image, "Pasted the clipboard picture as the sketch")

    def use_image_as_sketch(self, image: QImage, message: str) -> bool:
        """The picture becomes the sketch; the mask stays where it has the canvas's size (generate, mask the
        hand, use the result, turn the dial). A picture of the canvas's size is taken as it is."""
        if image.size() == self.canvas.canvas_size():  # e.g. a masked run's result, at the size of a picture it did not round
            self.canvas.set_image(image)
            self.session.say(message)
            return True
        try:
            sketch = prepare_sketch(qimage_to_pil(image))
        except SketchpadError as error:
            self.session.say(str(error), error=True)
            return False
        sketch = offer_sd15_fit(self.dialog_parent, sketch, native=native_size_for(self.session.model))
        self.canvas.set_image(pil_to_qimage(sketch))
        self.session.say(message)
        return True

    def use_result_as_sketch(self) -> bool:
        entry = self.session.shown
        if entry is None:
            self.session.say("There is no result yet to use as the sketch", error=True)
            return False
        return self.use_image_as_sketch(entry.picture(), "Using the result as the sketch")

    # ---- sketches out --------------------------------------------------------------------
    def save_sketch_dialog(self) -> None:
        suggested = str(self.session.dialog_folder() / "sketch.png")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Save the sketch", suggested, "PNG (*.png)")
        if path:
            path = Path(path)
            if self._write(lambda: save_png(qimage_to_pil(self.canvas.image()), path, {}, overwrite=True)):
                self.session.last_folder = path.parent
                self.canvas.set_modified(False)

    # ---- results out ---------------------------------------------------------------------
    def save_result(self) -> Path | None:
        """Ctrl+S: the finished picture on show into the output folder, numbered, never overwriting."""
        entry = self._shown_entry()
        if entry is None:
            return None
        return self._save(entry, lambda: next_free_path(self.session.output_dir), overwrite=False)

    def save_result_as(self) -> Path | None:
        entry = self._shown_entry()
        if entry is None:
            return None
        try:
            suggested = str(next_free_path(self.session.dialog_folder()))
        except SketchpadError:
            suggested = str(self.session.dialog_folder() / "sketchpad.png")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Save the result", suggested, "PNG (*.png)")
        if not path:
            return None
        path = Path(path) if path.lower().endswith(".png") else Path(path + ".png")
        saved = self._save(entry, lambda: path, overwrite=True)  # the dialog already asked before replacing
        if saved is not None:
            self.session.last_folder = saved.parent
        return saved

    def copy_result(self) -> None:
        entry = self._shown_entry()
        if entry is not None:
            QGuiApplication.clipboard().setImage(entry.picture())
            self.session.say(f"Copied {self._which(entry)} to the clipboard")

    def _save(self, entry: HistoryEntry, target, overwrite: bool) -> Path | None:
        picture = entry.picture()
        if picture.isNull():
            self.session.say("That result's file is gone; pick another one", error=True)
            return None
        sketch = entry.made_from() if self.session.embed_sketch else None
        return self._write(lambda: save_result(qimage_to_pil(picture), entry.info, target(), overwrite=overwrite,
                                               sketch=sketch), note=f": {self._which(entry)}")

    def save_sheet(self) -> Path | None:
        """The contact sheet on show, as one PNG in the output folder (numbered, never overwriting)."""
        sheet = self.session.sheet
        if sheet is None or not sheet.done:
            self.session.say("There is no contact sheet to save yet: run a sweep (Generate → Sweep…)", error=True)
            return None
        shown = {cell: entry.picture() for cell, entry in sheet.done.items()}
        pictures = {cell: CellPicture(qimage_to_pil(picture), sheet.done[cell].info)
                    for cell, picture in shown.items() if not picture.isNull()}  # a kept file gone: "not run"
        sketch = qimage_to_pil(sheet.sketch) if self.session.embed_sketch else None
        return self._write(lambda: save_sheet(next_free_path(self.session.output_dir, "sheet"), sheet.plan, pictures,
                                              sketch))

    def _which(self, entry: HistoryEntry) -> str:
        """The picture taken, by its caption, and why it is not the one on show if it is not."""
        if self.session.replay_step is not None:
            why = f" (the finished picture, not the step {self.session.replay_step} preview on show)"
        elif not self.session.result_on_show:
            why = " (the last finished picture; the run on show did not finish)"
        else:
            why = ""
        return f"{entry.caption()}{why}"

    def _shown_entry(self) -> HistoryEntry | None:
        entry = self.session.shown
        if entry is None:
            self.session.say("There is no result to save yet: draw something and press Generate", error=True)
        return entry

    def _write(self, write, note: str = "") -> Path | None:
        try:
            saved = write()
        except SketchpadError as error:
            self.session.say(str(error), error=True)
            return None
        self.session.say(f"Saved {saved}{note}")
        return saved
