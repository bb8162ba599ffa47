"""The window at the sizes people have: nothing cut off, Generate in view, the panel bound."""

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QScrollArea

from sketchpad.core.presets import PRESET_TABLE
from text_layout import combo_text_is_whole, command_lines, label_is_whole, placeholder_is_whole, text_is_whole
from window_harness import WAIT_MS, make_window, window  # noqa: F401  (fixture)


def _settle(qtbot, win, width, height):
    win.resize(width, height)
    win.show()
    qtbot.waitExposed(win)
    for _ in range(3):  # the panes are equalised in a queued call after the first show
        QApplication.processEvents()
    qtbot.wait(50)


def _fully_visible(win, widget) -> bool:
    """On screen, inside the window, and not clipped by a scroll area."""
    inside = QRect(widget.mapTo(win, widget.rect().topLeft()), widget.size())
    return (widget.isVisible() and win.rect().contains(inside)
            and widget.visibleRegion().boundingRect() == widget.rect())


def _fill_the_strip(win, results: int = 12) -> None:
    """More results than the strip is wide, as after a while of painting."""
    for _ in range(results):
        win.history.add_entry(QImage(8, 8, QImage.Format.Format_RGB32), object(), "a result")


def _key_controls(panel) -> list:
    """What a person reaches for on every run: in view at the smallest window."""
    return [panel.prompt_edit, panel.negative_edit, panel.dial, panel.denoise_label, panel.seed_box,
            panel.lock_button, panel.dice_button, panel.presets.preset_combo, panel.presets.lora_edit, panel.lines.checkbox,
            panel.lines.strength_spin, panel.generate_button, panel.cancel_button, panel.live_checkbox,
            panel.progress_bar, panel.model_picker.choose_button]


def _every_control(panel) -> list:
    return [*_key_controls(panel), panel.start_spin, *panel._legend.values(), panel.used_seed_label,
            panel.recycle_button, panel.steps_spin, panel.cfg_spin, panel.scheduler_combo, panel.preview_combo,
            panel.lines.start_spin, panel.lines.end_spin, panel.lines.range_labels[-1], panel.lines.model_edit,
            panel.lines.choose_button]


@pytest.mark.parametrize("width, height", [(1280, 800), (1024, 640)])
@pytest.mark.parametrize("denoise", [0.0, 0.75, 1.0])
@pytest.mark.parametrize("results", [0, 12])
def test_nothing_is_cut_off_and_the_key_controls_stay_in_view(qtbot, tmp_path, width, height, denoise, results):
    """Keep my lines on and the history strip full: the key controls in view, not scrolled or
    clipped, at 1024x640; every control at 1280x800."""
    win = make_window(qtbot, tmp_path, "someone/not-loaded")  # never started: layout only
    win.panel.set_denoise(denoise)  # "1.00 · reimagine" widened the panel into a sideways scrollbar
    win.panel.lines.checkbox.setChecked(True)  # its range and model rows take room
    _fill_the_strip(win, results)
    _settle(qtbot, win, width, height)
    for area in win.findChildren(QScrollArea):
        assert not area.horizontalScrollBar().isVisible(), area
    panel = win.panel
    assert panel.settings_area.verticalScrollBar().value() == 0  # nothing scrolled off the top
    for widget in _key_controls(panel):
        assert _fully_visible(win, widget), widget
    if (width, height) == (1280, 800):  # there is room for every control
        for widget in _every_control(panel):
            assert _fully_visible(win, widget), widget
        assert not panel.settings_area.verticalScrollBar().isVisible()


@pytest.mark.parametrize("width, height", [(1280, 800), (1024, 640)])
def test_the_lora_line_shows_its_hint_and_each_presets_lora_whole(qtbot, tmp_path, width, height):
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    panel = win.panel
    panel.lines.checkbox.setChecked(True)
    _fill_the_strip(win)
    _settle(qtbot, win, width, height)
    assert not panel.presets.lora_edit.placeholderText().endswith("…")  # a hint ending in "…" reads as cut off
    assert placeholder_is_whole(panel.presets.lora_edit), panel.presets.lora_edit.width()
    shown = []
    for name, preset in PRESET_TABLE.items():
        if preset.lora is None:
            continue
        panel.presets.lora_edit.setText("")
        index = panel.presets.preset_combo.findData(name)
        panel.presets.preset_combo.setCurrentIndex(index)
        panel.presets.preset_combo.activated.emit(index)
        QApplication.processEvents()
        assert text_is_whole(panel.presets.lora_edit), (panel.presets.lora_edit.text(), panel.presets.lora_edit.width())
        assert combo_text_is_whole(panel.presets.preset_combo), panel.presets.preset_combo.currentText()
        shown.append(panel.presets.lora_edit.text())
    assert len(shown) == 4 and any("Hyper-SD15-8steps" in text for text in shown)


def test_the_results_sit_under_the_picture_and_leave_the_controls_their_height(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    _fill_the_strip(win)
    _settle(qtbot, win, 1024, 640)
    strip = QRect(win.history.mapTo(win, QPoint(0, 0)), win.history.size())
    controls = QRect(win.panel.mapTo(win, QPoint(0, 0)), win.panel.size())
    picture = QRect(win.preview.mapTo(win, QPoint(0, 0)), win.preview.size())
    assert strip.top() > picture.bottom() and strip.left() >= picture.left() and strip.right() <= picture.right()
    assert not strip.intersects(controls) and controls.bottom() > strip.top()


def test_the_empty_history_strip_takes_no_room(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    _settle(qtbot, win, 1024, 640)
    assert not win.history.isVisible()
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    win.history.add_entry(image, object(), "a result")
    assert win.history.isVisible()
    win.history.clear()
    assert not win.history.isVisible()


def test_the_model_control_shows_and_changes_the_model(qtbot, window, tmp_path, tiny_model_dir, monkeypatch):  # noqa: F811
    picker = window.panel.model_picker
    assert picker.model() == str(tiny_model_dir) and picker.combo.currentText() == tiny_model_dir.name
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tiny_model_dir))
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        next(a for a in picker.menu.actions() if "folder" in a.text()).trigger()
    assert window.session.model.model == str(tiny_model_dir)


def test_no_model_hint_points_at_the_model_control(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, "someone/not-in-the-cache")
    with qtbot.waitSignal(win.worker.model_failed, timeout=WAIT_MS):
        win.start()
    text = win.preview.error_text()
    assert "Choose… beside Model" in text
    command = "python -m sketchpad.tiny_model ~/sketchpad-tiny"
    assert (command, 1) in command_lines(win.preview.error_label, 150)  # never broken across lines
    win.close()


def test_a_successful_save_clears_an_old_error(qtbot, window):  # noqa: F811
    window.report("could not save: the disk is full", error=True)
    assert window.preview.error_text()
    window.report("Saved /tmp/out/sketchpad-0001.png")
    assert window.preview.error_text() == "" and window.preview.error_bar.isHidden()


@pytest.mark.parametrize("width, height", [(1280, 800), (1024, 640)])
def test_keep_my_lines_row_fits_without_sideways_scrolling(qtbot, tmp_path, width, height):
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    win.panel.lines.checkbox.setChecked(True)  # shows the model's row too
    win.panel.lines.model_edit.setText("/a/rather/long/path/to/models/controlnet/control_v11p_sd15_scribble.safetensors")
    _settle(qtbot, win, width, height)
    for area in win.findChildren(QScrollArea):
        assert not area.horizontalScrollBar().isVisible(), area
    assert win.panel.lines.choose_button.isVisible()


@pytest.mark.parametrize("width, height", [(1280, 800), (1024, 640)])
def test_the_fast_live_texts_are_whole_at_the_panels_narrowest(qtbot, tmp_path, width, height):
    """The window opens with the panel at its minimum width: the preset's name, both hints and
    the labels of the Keep my lines numbers must still read in full."""
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    panel = win.panel
    _settle(qtbot, win, width, height)
    assert panel.width() <= panel.minimumSizeHint().width() + 24  # the narrowest the window gives it
    assert placeholder_is_whole(panel.presets.lora_edit), panel.presets.lora_edit.width()
    panel.presets.lora_edit.setText("")
    panel.lines.checkbox.setChecked(True)
    index = panel.presets.preset_combo.findData("lcm")
    panel.presets.preset_combo.setCurrentIndex(index)
    panel.presets.preset_combo.activated.emit(index)
    QApplication.processEvents()
    assert combo_text_is_whole(panel.presets.preset_combo), panel.presets.preset_combo.currentText()
    assert placeholder_is_whole(panel.lines.model_edit), panel.lines.model_edit.width()
    for label in (panel.lines.strength_label, *panel.lines.range_labels, panel.lines.checkbox):
        assert label_is_whole(label), label.text()
    for spin in (panel.lines.strength_spin, panel.lines.start_spin, panel.lines.end_spin):
        assert spin.width() >= spin.minimumSizeHint().width(), spin
    if (width, height) == (1280, 800):  # in view without scrolling
        for widget in (panel.lines.strength_label, *panel.lines.range_labels, panel.lines.end_spin,
                       panel.lines.choose_button):
            assert _fully_visible(win, widget), widget


def test_ticking_keep_my_lines_brings_its_rows_into_view_and_keeps_the_prompt(qtbot, tmp_path):
    """At 1024x640 the rows it adds overflow the settings, yet they show, and nothing a person
    needs scrolls away for them."""
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    _fill_the_strip(win)
    _settle(qtbot, win, 1024, 640)
    panel = win.panel
    panel.lines.checkbox.click()  # as a person ticks it: the rows to fill in appear below
    bar = panel.settings_area.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=2000)  # the rows overflow the settings' height
    qtbot.waitUntil(lambda: _fully_visible(win, panel.lines.choose_button), timeout=2000)
    for widget in (panel.lines.model_edit, panel.lines.end_spin, panel.lines.range_labels[-1],
                   *_key_controls(panel)):
        assert _fully_visible(win, widget), widget
