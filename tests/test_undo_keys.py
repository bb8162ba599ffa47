"""Ctrl+Z / Ctrl+Shift+Z in the real window, pressed as keys: the canvas's undo wherever the focus
is, except in a field where text is being typed, which keeps its own undo."""

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from window_harness import draw_line, make_window

CTRL = Qt.KeyboardModifier.ControlModifier
CTRL_SHIFT = CTRL | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def drawn(qtbot, tmp_path):
    """A shown, active window (never started: undo needs no model) with one stroke on the canvas."""
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    win.confirm_discard = lambda: True
    win.canvas.resize_canvas(64, 64)
    win.show()
    win.activateWindow()
    qtbot.waitActive(win)
    draw_line(qtbot, win.canvas, (10, 10), (50, 50))
    assert win.canvas.undo_stack().index() == 2  # the resize and the stroke
    return win


def _press(qtbot, widget, key, modifiers):
    widget.setFocus()
    QApplication.processEvents()
    assert QApplication.focusWidget() in (widget, widget.focusProxy()), QApplication.focusWidget()
    qtbot.keyClick(QApplication.focusWidget(), key, modifiers)


def _controls(panel):
    """Everything with focus that edits no free text: spin boxes (their digits are a value, not text
    a painter composes), the dial, combo boxes, check boxes, buttons."""
    return {"steps": panel.steps_spin, "cfg": panel.cfg_spin, "seed": panel.seed_box,
            "lines strength": panel.lines.strength_spin, "dial": panel.dial, "sampler": panel.scheduler_combo,
            "preset": panel.presets.preset_combo, "live": panel.live_checkbox, "dice": panel.dice_button}


@pytest.mark.parametrize("name", ["steps", "cfg", "seed", "lines strength", "dial", "sampler", "preset", "live",
                                  "dice"])
def test_ctrl_z_undoes_the_canvas_from_any_control(qtbot, drawn, name):
    panel = drawn.panel
    panel.lines.checkbox.setChecked(True)  # its strength spin box takes focus only when enabled
    widget = _controls(panel)[name]
    stack = drawn.canvas.undo_stack()
    _press(qtbot, widget, Qt.Key.Key_Z, CTRL)
    assert stack.index() == 1, "the stroke is undone"
    _press(qtbot, widget, Qt.Key.Key_Z, CTRL_SHIFT)
    assert stack.index() == 2, "and redone"
    _press(qtbot, widget, Qt.Key.Key_Z, CTRL)
    _press(qtbot, widget, Qt.Key.Key_Y, CTRL)
    assert stack.index() == 2, "Ctrl+Y redoes too"


def test_a_typed_spin_box_value_is_kept_when_the_canvas_is_undone(qtbot, drawn):
    """Typing digits, then Ctrl+Z: the stroke goes, the typed steps stay (a spin box's text undo
    is not what a painter means)."""
    spin = drawn.panel.steps_spin
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "7")
    assert spin.text() == "7"
    _press(qtbot, spin, Qt.Key.Key_Z, CTRL)
    assert drawn.canvas.undo_stack().index() == 1 and spin.text() == "7"


@pytest.mark.parametrize("field", ["prompt", "negative", "lora", "controlnet"])
def test_ctrl_z_in_a_text_field_undoes_the_typing_not_the_canvas(qtbot, drawn, field):
    panel = drawn.panel
    panel.lines.checkbox.setChecked(True)
    edit = {"prompt": panel.prompt_edit, "negative": panel.negative_edit, "lora": panel.presets.lora_edit,
            "controlnet": panel.lines.model_edit}[field]
    text = edit.toPlainText if hasattr(edit, "toPlainText") else edit.text
    before = text()
    edit.setFocus()
    qtbot.keyClicks(edit, "ink")
    assert text() != before
    _press(qtbot, edit, Qt.Key.Key_Z, CTRL)
    assert text() == before and drawn.canvas.undo_stack().index() == 2
    _press(qtbot, edit, Qt.Key.Key_Z, CTRL_SHIFT)
    assert text() != before and drawn.canvas.undo_stack().index() == 2


def test_ctrl_z_with_the_canvas_focused_undoes_the_stroke(qtbot, drawn):
    _press(qtbot, drawn.canvas, Qt.Key.Key_Z, CTRL)
    assert drawn.canvas.undo_stack().index() == 1


def test_the_edit_menu_names_what_undo_and_redo_take_back(qtbot, drawn):
    undo, redo = drawn.actions["undo"], drawn.actions["redo"]
    assert undo.text() == "&Undo Stroke"  # the fixture's stroke
    drawn.canvas.set_tool("mask")
    draw_line(qtbot, drawn.canvas, (20, 20), (40, 40))
    assert undo.text() == "&Undo Mask"
    undo.trigger()
    assert redo.text() == "&Redo Mask" and undo.text() == "&Undo Stroke"
    assert undo.isEnabled() and redo.isEnabled()
