"""Pictures in and out of the window: open/paste/drop a sketch, save and copy results.

Every failure is one clear message and changes nothing: the drawing is only replaced once the new
picture has been read completely.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from ..core.errors import SketchpadError
from ..core.images import load_sketch, prepare_sketch
from ..core.storage import ResultInfo, next_free_path, read_png_parameters, save_png, save_result
from ..worker import pil_to_qimage, qimage_to_pil

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"


class FileActions:
    def __init__(self, window):
        self.window = window  # MainWindow: canvas, panel, report(), output_dir, shown_outcome()

    # ---- sketches in ---------------------------------------------------------------------
    def open_sketch_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open a sketch", "", IMAGE_FILTER)
        if path:
            self.open_sketch(Path(path))

    def open_sketch(self, path: Path) -> bool:
        """Load a picture as the sketch; a PNG made by Sketchpad (or A1111) also restores its settings."""
        try:
            sketch = load_sketch(path)
            info = read_png_parameters(path) if path.suffix.lower() == ".png" else None
        except SketchpadError as error:
            self.window.report(str(error), error=True)
            return False
        self.window.canvas.set_image(pil_to_qimage(sketch))
        if info is not None:
            self.window.panel.set_params(info.params)
            self.window.report(f"Opened {path.name} and restored its settings")
        else:
            self.window.report(f"Opened {path.name}")
        return True

    def paste(self) -> bool:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.window.report("The clipboard holds no picture to paste", error=True)
            return False
        return self.use_image_as_sketch(image, "Pasted the clipboard picture as the sketch")

    def use_image_as_sketch(self, image: QImage, message: str) -> bool:
        try:
            sketch = prepare_sketch(qimage_to_pil(image))
        except SketchpadError as error:
            self.window.report(str(error), error=True)
            return False
        self.window.canvas.set_image(pil_to_qimage(sketch))
        self.window.report(message)
        return True

    # ---- sketches out --------------------------------------------------------------------
    def save_sketch_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Save the sketch", "sketch.png", "PNG (*.png)")
        if path:
            self._write(lambda: save_png(qimage_to_pil(self.window.canvas.image()), Path(path), {}, overwrite=True))
            self.window.canvas.set_modified(False)

    # ---- results out ---------------------------------------------------------------------
    def save_result(self) -> Path | None:
        """Ctrl+S: the shown result into the output folder, numbered, never overwriting."""
        outcome = self._shown_outcome()
        if outcome is None:
            return None
        return self._write(lambda: save_result(_pil(outcome.image), outcome.info, next_free_path(self.window.output_dir)))

    def save_result_as(self) -> Path | None:
        outcome = self._shown_outcome()
        if outcome is None:
            return None
        suggested = str(next_free_path(self.window.output_dir))
        path, _ = QFileDialog.getSaveFileName(self.window, "Save the result", suggested, "PNG (*.png)")
        if not path:
            return None
        path = Path(path) if path.lower().endswith(".png") else Path(path + ".png")
        # the dialog already asked before replacing a file
        return self._write(lambda: save_result(_pil(outcome.image), outcome.info, path, overwrite=True))

    def copy_result(self) -> None:
        outcome = self._shown_outcome()
        if outcome is not None:
            QGuiApplication.clipboard().setImage(outcome.image)
            self.window.report("Copied the result to the clipboard")

    def _shown_outcome(self):
        outcome = self.window.shown_outcome()
        if outcome is None:
            self.window.report("There is no result to save yet: draw something and press Generate", error=True)
        return outcome

    def _write(self, write) -> Path | None:
        try:
            saved = write()
        except SketchpadError as error:
            self.window.report(str(error), error=True)
            return None
        self.window.report(f"Saved {saved}")
        return saved


def _pil(image: QImage):
    return qimage_to_pil(image)


def describe(info: ResultInfo) -> str:
    knob = (
        f"start {info.params.start_at_step}/{info.params.steps}"
        if info.params.start_at_step is not None
        else f"denoise {info.params.strength:.2f}"
    )
    return f"seed {info.params.seed} · {knob} · {info.sampler} · {info.width}x{info.height}"
