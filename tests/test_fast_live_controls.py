"""The preset / LoRA / "Keep my lines" controls: text that takes effect once typed, the ControlNet's
Choose… menu, labelled numbers, and Live mode while a person types."""

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFocusEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec
from sketchpad.ui.generation_panel import GenerationPanel
from sketchpad.ui.run_controller import LIVE_DEBOUNCE_MS
from window_harness import WAIT_MS, window  # noqa: F401  (fixture)


@pytest.fixture
def panel(qtbot):
    made = GenerationPanel()
    qtbot.addWidget(made)
    return made


def changes_of(panel) -> list:
    seen = []
    panel.params_changed.connect(lambda: seen.append(1))
    return seen


def leave(widget) -> None:
    """Focus leaves the field, as when a person clicks elsewhere or presses Tab."""
    QApplication.sendEvent(widget, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.TabFocusReason))


# ---- text that takes effect when editing finishes ------------------------------------------------
def test_the_lora_line_takes_effect_on_enter_not_per_keystroke(panel):
    changes = changes_of(panel)
    QTest.keyClicks(panel.presets.lora_edit, "ink:")
    assert changes == []  # nothing to regenerate while a person types
    assert panel.params(finished=True).loras == ()  # Live still sees the last finished line
    with pytest.raises(SketchpadError, match="needs a number after its ':'"):
        panel.params()  # a plain Generate reads what the line says
    QTest.keyClicks(panel.presets.lora_edit, "0.5")
    QTest.keyClick(panel.presets.lora_edit, Qt.Key.Key_Return)
    assert changes == [1]
    assert panel.params(finished=True).loras == (LoraSpec("ink", 0.5),) == panel.params().loras
    QTest.keyClick(panel.presets.lora_edit, Qt.Key.Key_Return)  # Enter again, nothing new: no second change
    assert changes == [1]


def test_the_controlnet_field_takes_effect_when_focus_leaves_it(panel, tmp_path):
    panel.lines.checkbox.setChecked(True)
    changes = changes_of(panel)
    model = str(tmp_path / "scribble")
    QTest.keyClicks(panel.lines.model_edit, model)
    assert changes == []
    with pytest.raises(SketchpadError, match="ControlNet needs a model"):
        panel.params(finished=True)  # checked, and no model finished yet: said once Live runs
    leave(panel.lines.model_edit)
    assert changes == [1]
    assert panel.params(finished=True).control == ControlSpec(model=model)


def test_text_set_from_code_takes_effect_at_once_and_shows_its_start(panel):
    long_id = "someone/a-rather-long-lora-repository-name-that-does-not-fit"
    panel.set_params(GenerationParams(prompt="a", loras=(LoraSpec(long_id, 0.8),),
                                      control=ControlSpec(model="lllyasviel/control_v11p_sd15_scribble")))
    assert panel.params(finished=True).loras == (LoraSpec(long_id, 0.8),)
    assert panel.params(finished=True).control.model == "lllyasviel/control_v11p_sd15_scribble"
    assert panel.presets.lora_edit.cursorPosition() == 0  # the line shows the id's start, not its tail
    index = panel.presets.preset_combo.findData("lcm")
    panel.presets.preset_combo.setCurrentIndex(index)
    panel.presets.preset_combo.activated.emit(index)  # the preset writes its LoRA into the line
    assert panel.params(finished=True).loras[-1].source == "latent-consistency/lcm-lora-sdv1-5"
    assert panel.presets.lora_edit.cursorPosition() == 0


# ---- Choose… for the ControlNet ----------------------------------------------------------------------
def test_choose_offers_a_safetensors_file_and_a_diffusers_folder(panel, monkeypatch, tmp_path):
    panel.lines.checkbox.setChecked(True)
    file, folder = tmp_path / "scribble.safetensors", tmp_path / "control_v11p_sd15_scribble"
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (asked.append("file"), (str(file), ""))[1])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: (asked.append("folder"), str(folder))[1])
    actions = {action.text(): action for action in panel.lines.choose_button.menu().actions()}
    assert set(actions) == {"A .safetensors file…", "A diffusers folder…"}
    changes = changes_of(panel)
    actions["A diffusers folder…"].trigger()
    assert panel.params(finished=True).control.model == str(folder) and changes == [1]
    actions["A .safetensors file…"].trigger()
    assert panel.params(finished=True).control.model == str(file) and changes == [1, 1]
    assert asked == ["folder", "file"]


def test_a_cancelled_choice_keeps_the_model(panel, monkeypatch):
    panel.lines.checkbox.setChecked(True)
    panel.lines.model_edit.setText("lllyasviel/control_v11p_sd15_scribble")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    for action in panel.lines.choose_button.menu().actions():
        action.trigger()
    assert panel.lines.model_edit.text() == "lllyasviel/control_v11p_sd15_scribble"


# ---- the numbers say what they are ---------------------------------------------------------------------
def test_each_keep_my_lines_number_has_a_label_and_a_tooltip(panel):
    lines = panel.lines
    labelled = {label.buddy(): label.text() for label in (lines.strength_label, *lines.range_labels) if label.buddy()}
    assert labelled == {panel.lines.strength_spin: "strength", panel.lines.start_spin: "from",
                        panel.lines.end_spin: "to"}
    assert [label.text() for label in lines.range_labels] == ["from", "to", "of the steps"]
    assert "fraction of the steps" in panel.lines.start_spin.toolTip()
    assert "fraction of the steps" in panel.lines.end_spin.toolTip()
    assert "steer from" in lines.range_labels[2].toolTip()
    # the range row shows with the model's row, while the lines are kept
    assert lines.range_row.isHidden() and lines.model_row.isHidden()
    panel.lines.checkbox.setChecked(True)
    assert not lines.range_row.isHidden() and not lines.model_row.isHidden()


# ---- Live mode while a person types ------------------------------------------------------------------
def _settled_live(qtbot, window):  # noqa: F811
    window.panel.set_live(True)
    qtbot.wait(LIVE_DEBOUNCE_MS * 3)
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)
    return window.session.run.request_id


def test_live_waits_for_a_finished_lora_line_and_says_a_bad_one_once(qtbot, window):  # noqa: F811
    before = _settled_live(qtbot, window)
    errors = []
    window.session.problem_changed.connect(lambda text: errors.append(text) if text else None)
    for key in "ink:":  # a person typing, slower than the debounce
        QTest.keyClicks(window.panel.presets.lora_edit, key)
        qtbot.wait(LIVE_DEBOUNCE_MS * 2)
    assert window.session.run.request_id == before  # no request per keystroke
    assert errors == [] and window.preview.error_text() == ""
    QTest.keyClick(window.panel.presets.lora_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    qtbot.wait(LIVE_DEBOUNCE_MS * 2)
    assert len(errors) == 1 and "the LoRA 'ink:' needs a number after its ':' (its weight, e.g. ink:0.8)" in errors[0]  # one clear line
    assert "\n" not in errors[0]
    assert window.session.run.request_id == before

    window.panel.presets.lora_edit.clear()  # the person edits it into a valid line and presses Enter
    QTest.keyClicks(window.panel.presets.lora_edit, "someone/style-lora:0.5")
    qtbot.wait(LIVE_DEBOUNCE_MS * 2)
    assert window.session.run.request_id == before
    QTest.keyClick(window.panel.presets.lora_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.run.request_id > before, timeout=5000)
    assert window.session.run.params.loras == (LoraSpec("someone/style-lora", 0.5),)
    window.cancel()
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)


# ---- a preset over unfinished entries --------------------------------------------------------------
def pick_preset(panel, name: str) -> None:
    index = panel.presets.preset_combo.findData(name)
    panel.presets.preset_combo.setCurrentIndex(index)
    panel.presets.preset_combo.activated.emit(index)  # as a person picks it from the list


def test_a_preset_applies_while_keep_my_lines_still_needs_a_model(panel):
    panel.set_params(GenerationParams(prompt="a knight", negative_prompt="blurry"))
    panel.lines.checkbox.setChecked(True)  # no model yet: params() says so, the preset still applies
    changes = changes_of(panel)
    pick_preset(panel, "lcm")
    assert changes == [1]
    assert (panel.steps_spin.value(), panel.cfg_spin.value(), panel.scheduler_combo.currentData()) == (4, 1.0, "lcm")
    assert panel.presets.preset_combo.currentData() == "lcm" and panel.lines.checkbox.isChecked()
    assert panel.prompt_edit.toPlainText() == "a knight" and panel.negative_edit.toPlainText() == "blurry"
    panel.lines.model_edit.setText("lllyasviel/control_v11p_sd15_scribble")
    p = panel.params()
    assert p.preset == "lcm" and p.loras == (LoraSpec("latent-consistency/lcm-lora-sdv1-5"),) and p.control


def test_a_preset_keeps_a_half_typed_lora_line_and_adds_its_own(panel):
    QTest.keyClicks(panel.presets.lora_edit, "ink:")
    pick_preset(panel, "hyper")
    assert panel.presets.lora_edit.text().startswith("ink:, ")  # nothing typed is lost
    assert panel.steps_spin.value() == 8 and panel.presets.preset_combo.currentData() == "hyper"
    with pytest.raises(SketchpadError, match="needs a number after its ':'"):
        panel.params()  # Generate names the bad entry
    panel.presets.lora_edit.setText(panel.presets.lora_edit.text().replace("ink:", "ink:0.5"))
    assert panel.params().loras[0] == LoraSpec("ink", 0.5) and len(panel.params().loras) == 2
