"""Masks in the window, on the tiny model: a masked run changes only the masked part and keeps the
picture's own size, the mask is part of the drawing (kept by 'Use result as sketch', saved in a
result, left out of the exported sketch, recovered after a crash), its settings are remembered, and
Canvas → Extend… grows the picture for outpainting."""

import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QFileDialog

from sketchpad.core.errors import SketchpadError
from sketchpad.core.masks import plan_inpaint
from sketchpad.core.params import LoraSpec
from sketchpad.core.storage import read_png_parameters
from sketchpad.qimages import pil_to_qimage, qimage_to_pil
from sketchpad.ui.extend_dialog import ExtendDialog, extend_canvas
from sketchpad.ui.mask_options import MaskOptions
from window_harness import WAIT_MS, answer_restore, draw_line, generate_and_wait, make_window, window  # noqa: F401  (fixture)


def pixels(image: QImage) -> np.ndarray:
    return np.asarray(qimage_to_pil(image))


def feather(spec) -> np.ndarray:
    """The plan's feather over the whole picture: 0 where the picture must stay as it is."""
    plan = plan_inpaint(spec)
    left, top, right, bottom = plan.box
    whole = np.zeros((spec.size[1], spec.size[0]), np.uint8)
    whole[top:bottom, left:right] = plan.feather
    return whole


def paint_mask(qtbot, window, start, end, size=10):
    """With the tool bar's Mask button and a stroke, as a person does."""
    window.tools.mask_row.tool_buttons["mask"].click()
    window.canvas.set_brush_size(size)
    draw_line(qtbot, window.canvas, start, end)


def choose_area(window, area):
    combo = window.tools.mask_row.area_combo
    combo.setCurrentIndex(combo.findData(area))


def picture_of_its_own_size(window, make_sketch, width=70, height=60):
    """A sketch whose sides are no multiples of 8, as a masked run must keep them."""
    window.canvas.set_image(pil_to_qimage(make_sketch(width, height)))


def test_a_masked_run_changes_only_the_masked_part_at_the_pictures_own_size(qtbot, window, make_sketch):  # noqa: F811
    picture_of_its_own_size(window, make_sketch)
    paint_mask(qtbot, window, (20, 12), (45, 12))
    choose_area(window, "whole")
    window.panel.set_params(window.panel.params().replace(preview_method="vae", strength=0.9))
    canvas = pixels(window.canvas.image())
    spec = window.canvas_mask.spec()
    assert spec.size == (70, 60) and (spec.area, spec.blur) == ("whole", 4)
    outcome, steps = generate_and_wait(qtbot, window)
    assert outcome.info.params.mask.digest == spec.digest  # the canvas's mask went with the request
    result = pixels(outcome.image)
    assert result.shape == (60, 70, 3)
    keep = feather(spec) == 0
    assert np.array_equal(result[keep], canvas[keep])  # outside the feather: the canvas, pixel for pixel
    assert np.abs(result[~keep].astype(int) - canvas[~keep]).mean() > 10
    # every step's preview is the whole picture with the masked part forming
    assert len(steps) == 3 and all(step[3].size() == window.canvas.canvas_size() for step in steps)
    assert all(np.array_equal(pixels(image)[keep], canvas[keep]) for image in window.preview.step_images())

    choose_area(window, "masked")  # the part alone, at the model's size, put back
    outcome, _ = generate_and_wait(qtbot, window)
    keep = feather(window.canvas_mask.spec()) == 0
    assert np.array_equal(pixels(outcome.image)[keep], canvas[keep])


def test_loras_and_presets_run_with_a_mask(qtbot, window, tiny_lora_file):  # noqa: F811
    paint_mask(qtbot, window, (10, 40), (30, 40))
    choose_area(window, "whole")
    window.panel.set_params(window.panel.params().replace(loras=(LoraSpec(str(tiny_lora_file)),), preset="lcm",
                                                          steps=4, cfg=1.0, scheduler="lcm"))
    canvas = pixels(window.canvas.image())
    outcome, _ = generate_and_wait(qtbot, window)
    params = outcome.info.params
    assert params.mask is not None and params.loras[0].name == "fast" and outcome.info.sampler == "lcm"
    keep = feather(params.mask) == 0
    assert np.array_equal(pixels(outcome.image)[keep], canvas[keep])


def test_a_changed_mask_or_mask_setting_is_another_picture(qtbot, window):  # noqa: F811
    window.panel.set_params(window.panel.params().replace(seed=77))
    assert window.canvas_mask.spec() is None  # nothing painted: no mask, and no error
    generate_and_wait(qtbot, window)
    assert window.generate() == 0  # the picture on show
    paint_mask(qtbot, window, (10, 10), (20, 10))
    choose_area(window, "whole")
    said = []
    window.runs.same_picture_changed.connect(said.append)
    first, _ = generate_and_wait(qtbot, window)
    assert first.info.params.mask is not None and window.generate() == 0
    assert said[-1] is True  # the panel says the request as it stands is the picture on show
    paint_mask(qtbot, window, (10, 30), (20, 30))
    assert said[-1] is False
    assert window.generate() > 0  # another mask
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)
    window.tools.mask_row.blur_spin.setValue(9)
    assert window.generate() > 0  # another feather
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)
    window.actions["clear_mask"].trigger()
    assert window.generate() > 0  # no mask: not the masked picture on show
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)


def test_live_runs_again_after_a_mask_stroke(qtbot, window):  # noqa: F811
    window.panel.set_live(True)
    draw_line(qtbot, window.canvas, (10, 10), (50, 50))
    qtbot.waitUntil(lambda: window.session.run.request_id > 0, timeout=5000)
    qtbot.waitUntil(lambda: not window.session.run.active and window.session.shown is not None, timeout=WAIT_MS)
    qtbot.wait(600)  # the draft's refine
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)
    last = window.session.run.request_id
    paint_mask(qtbot, window, (20, 20), (30, 20))
    qtbot.waitUntil(lambda: window.session.run.request_id > last, timeout=5000)
    assert window.session.run.params.mask is not None
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)


def test_use_result_as_sketch_keeps_the_mask_and_an_opened_result_brings_it_back(
        qtbot, window, make_sketch):  # noqa: F811
    picture_of_its_own_size(window, make_sketch, 66, 58)
    paint_mask(qtbot, window, (20, 20), (40, 20))
    window.tools.mask_row.padding_spin.setValue(12)
    choose_area(window, "whole")
    mask = window.canvas.mask_values()
    outcome, _ = generate_and_wait(qtbot, window)
    window.actions["use_result"].trigger()  # generate, keep the mask, turn the dial
    assert window.canvas.image() == outcome.image.convertToFormat(QImage.Format.Format_RGB32)
    assert np.array_equal(window.canvas.mask_values(), mask)
    saved = window.files.save_result()
    assert read_png_parameters(saved).params.mask is not None

    window.actions["clear_mask"].trigger()
    window.tools.mask_row.padding_spin.setValue(40)
    window.canvas.resize_canvas(64, 64)
    answer_restore(window, False)  # No: open the picture itself, with its settings
    assert window.files.open_sketch(saved)
    assert window.canvas.canvas_size().width() == 66  # a masked picture keeps its own size
    assert np.array_equal(window.canvas.mask_values(), mask)
    assert window.canvas_mask.options == MaskOptions(4, "whole", 12)
    assert window.tools.mask_row.padding_spin.value() == 12
    assert window.tools.mask_row.state_button.text() == "Mask on ▾"


def test_a_picture_without_a_mask_opens_without_one(qtbot, window, tmp_path):  # noqa: F811
    paint_mask(qtbot, window, (20, 20), (40, 20))
    plain = tmp_path / "plain.png"
    QImage(64, 64, QImage.Format.Format_RGB32).save(str(plain))
    assert window.files.open_sketch(plain)
    assert window.canvas_mask.spec() is None
    window.actions["undo"].trigger()
    assert window.canvas.has_mask()


def test_the_exported_sketch_leaves_the_mask_out(qtbot, window, tmp_path, monkeypatch):  # noqa: F811
    draw_line(qtbot, window.canvas, (5, 30), (60, 30))
    paint_mask(qtbot, window, (10, 10), (50, 50), size=20)
    target = tmp_path / "sketch.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: (str(target), "PNG (*.png)"))
    window.actions["save_sketch"].trigger()
    assert np.array_equal(pixels(QImage(str(target))), pixels(window.canvas.image()))
    assert read_png_parameters(target) is None


def test_the_mask_settings_are_remembered(qtbot, tmp_path, tiny_model_dir):
    first = make_window(qtbot, tmp_path, str(tiny_model_dir))
    first.tools.mask_row.blur_spin.setValue(11)
    choose_area(first, "masked")
    first.close()
    again = make_window(qtbot, tmp_path, str(tiny_model_dir))
    assert again.canvas_mask.options == MaskOptions(11, "masked", 32)
    assert again.tools.mask_row.blur_spin.value() == 11
    again.close()


def _snapshot_as_killed(window, tmp_path, name):
    window.autosaver.mark_changed()
    window.autosaver.save_now()
    window.autosaver.wait()
    slot = tmp_path / "state" / "recovery" / name
    shutil.copytree(window.autosaver.slot, slot, ignore=shutil.ignore_patterns("owner.lock*"))


def test_recovery_brings_the_mask_and_its_settings_back(qtbot, tmp_path, tiny_model_dir):
    first = make_window(qtbot, tmp_path, str(tiny_model_dir), settings_name="first.ini")
    first.confirm_discard = lambda: True
    first.canvas.resize_canvas(64, 64)
    first.show()
    paint_mask(qtbot, first, (10, 10), (50, 10))
    first.tools.mask_row.blur_spin.setValue(7)
    mask = first.canvas.mask_values()
    _snapshot_as_killed(first, tmp_path, "1-dead0001")
    first.actions["clear_mask"].trigger()
    paint_mask(qtbot, first, (10, 50), (50, 50))
    second_mask = first.canvas.mask_values()
    _snapshot_as_killed(first, tmp_path, "1-dead0002")
    first.close()

    second = make_window(qtbot, tmp_path, str(tiny_model_dir), settings_name="second.ini")
    second.confirm_discard = lambda: True
    second.ask_recover = lambda recovered, params: True
    said = []
    second.session.message.connect(said.append)
    with qtbot.waitSignal(second.worker.model_ready, timeout=WAIT_MS):
        second.start()
    assert np.array_equal(second.canvas.mask_values(), mask)
    assert second.canvas_mask.options.blur == 7 and any("with its mask" in line for line in said)
    # the drawing that could not share the canvas was saved with its mask: opening it brings it back
    (kept,) = (tmp_path / "out").glob("recovered-*.png")
    spec = read_png_parameters(kept).params.mask
    assert np.array_equal(np.asarray(spec.image()), second_mask) and spec.blur == 7
    second.close()


def _extend_through_the_dialog(qtbot, window, right=0, top=0):
    def fill_in():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExtendDialog)
        for side, value in (("right", right), ("top", top)):
            spin = dialog.spins[side]
            spin.selectAll()
            QTest.keyClicks(spin, str(value))
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, fill_in)
    window.actions["extend"].trigger()


def test_extend_grows_the_picture_with_the_new_area_masked_and_filled(qtbot, window):  # noqa: F811
    draw_line(qtbot, window.canvas, (5, 30), (60, 30))
    paint_mask(qtbot, window, (20, 10), (30, 10))
    before, old_mask = pixels(window.canvas.image()), window.canvas.mask_values()
    _extend_through_the_dialog(qtbot, window, right=40, top=16)
    assert (window.canvas.canvas_size().width(), window.canvas.canvas_size().height()) == (104, 80)
    image, mask = pixels(window.canvas.image()), window.canvas.mask_values()
    assert np.array_equal(image[16:, :64], before) and np.array_equal(mask[16:, :64], old_mask)
    assert mask[:16, :].min() == 255 and mask[:, 64:].min() == 255  # the new area is masked...
    assert image[46, 70:].mean() < image[24, 70:].mean() - 20  # ...and filled from the edge: the line goes on
    assert "high denoise" in window.statusBar().currentMessage()
    window.panel.set_params(window.panel.params().replace(strength=1.0))
    choose_area(window, "whole")
    outcome, _ = generate_and_wait(qtbot, window)
    keep = feather(outcome.info.params.mask) == 0
    assert outcome.image.width() == 104 and np.array_equal(pixels(outcome.image)[keep], image[keep])
    window.actions["undo"].trigger()
    assert np.array_equal(pixels(window.canvas.image()), before)
    assert np.array_equal(window.canvas.mask_values(), old_mask)


def test_extending_past_the_largest_picture_says_so_and_changes_nothing(qtbot, window):  # noqa: F811
    count = window.canvas.undo_stack().count()
    with pytest.raises(SketchpadError, match="largest"):
        extend_canvas(window.canvas, right=5000)
    assert window.canvas.undo_stack().count() == count and window.canvas.canvas_size().width() == 64
    dialog = ExtendDialog(64, 64)
    qtbot.addWidget(dialog)
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()  # nothing to add yet
    assert dialog.spins["right"].maximum() == 4096 - 64
