"""The panel's fast-live controls: the preset picker with the LoRA line beside it, and "Keep my lines"
(a scribble ControlNet) with its strength, step range and model.

The two text fields (the LoRA line, the ControlNet model) take effect when editing finishes, on Enter
or when focus leaves them, as in other painting apps: in Live mode a half-typed `ink:` or `~/lo` would
otherwise post a request, and show an error, for every key. Text set from code (a preset, a restored
PNG, Choose…) takes effect at once. The session's request holds the finished text; pressing Generate
finishes the entry being typed.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QMenu, QSizePolicy, QStyle, QStyleOptionFrame, QToolButton, QWidget)

from sketchpad.core.hub import preset_readiness
from sketchpad.core.lora_text import format_loras, parse_loras
from sketchpad.core.params import MAX_CONTROL_STRENGTH, ControlSpec, LoraSpec
from sketchpad.core.presets import PRESET_TABLE

# no trailing "…": a hint that ends in one reads as cut off
LORA_PLACEHOLDER = "LoRAs, e.g. ink.safetensors:0.8"
CONTROL_PLACEHOLDER = "ControlNet: id, folder or .safetensors"
READINESS_TIP = ("A preset's LoRA comes from the Hugging Face Hub, downloaded once on first use; offline, only "
                 "downloaded ones work.")
RANGE_TIP = "The lines steer from this fraction of the steps to that one (0: the first step, 1: the last)"


class FinishedLineEdit(QLineEdit):
    """A line whose text counts once editing finishes; finished_text() is that text."""

    finished = Signal()  # the finished text changed

    def __init__(self, parent: QWidget | None = None, **kwargs):
        super().__init__(parent, **kwargs)
        self._finished = self.text()
        self.editingFinished.connect(self.finish)
        self.textChanged.connect(self._text_changed)

    def finished_text(self) -> str:
        return self._finished

    def _text_changed(self, _text: str) -> None:
        if not self.isModified():  # setText() from code clears the flag; typing sets it
            self.setCursorPosition(0)  # a long path or id shows its start
            self.finish()

    def finish(self) -> None:
        """The text as it stands counts now (editing finished, or Generate pressed)."""
        if self.text() != self._finished:
            self._finished = self.text()
            self.finished.emit()


class PresetRow(QWidget):
    """The preset picker with, beside it, whether a preset's LoRA is ready or needs a download first (the
    cache alone says), and the LoRA line, where a preset's LoRA shows. The line is not in the picker's
    row: the panel gives it a row as wide as the panel, so a preset's LoRA id reads whole."""

    loras_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.preset_combo = QComboBox(self, toolTip="Set sampler, steps, CFG and a few-step LoRA at once")
        self.preset_combo.addItem("Custom", None)
        for preset in PRESET_TABLE.values():
            self.preset_combo.addItem(preset.label, preset.name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, preset.note, Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_combo.setMinimumContentsLength(9)
        self.lora_edit = FinishedLineEdit(self, placeholderText=LORA_PLACEHOLDER,
                                          toolTip="LoRAs, comma-separated: a .safetensors file or a Hugging Face "
                                          "id, each with an optional :weight (1 when left out); Enter applies")
        fit_placeholder(self.lora_edit, tuple(format_loras((p.lora,)) for p in PRESET_TABLE.values() if p.lora))
        self.readiness_label = QLabel(self)
        self._family, self._turbo = "sd15", False  # the model in use: its family's LoRA is the one to fetch
        self.readiness_label.setEnabled(False)  # a quiet, greyed note
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.preset_combo, 1)
        row.addWidget(self.readiness_label)
        self.lora_edit.finished.connect(self.loras_changed)
        self.preset_combo.currentIndexChanged.connect(self.refresh_readiness)
        self.refresh_readiness()

    def set_model_family(self, family: str, turbo: bool = False) -> None:
        """The model in use is of `family` (a one-step model when `turbo`): readiness is of its LoRA."""
        if (family, turbo) != (self._family, self._turbo):
            self._family, self._turbo = family, turbo
            self.refresh_readiness()

    def refresh_readiness(self) -> None:
        """Say whether the chosen preset's LoRA is downloaded; call again once a run may have fetched it."""
        text = preset_readiness(self.preset(), self._family, self._turbo)
        # beside the picker there is room for a few characters: "ready" or "↓ 135 MB"; the tip says it all
        if text in ("", "ready"):
            short = text
        elif text.startswith("needs a download"):
            short = "↓ " + text.removeprefix("needs a download").lstrip(": ").removeprefix("about ")
        else:  # this model's family has no LoRA for the preset
            short = "not for this model"
        self.readiness_label.setText(short.strip())
        self.readiness_label.setToolTip(f"{text[:1].upper()}{text[1:]}. {READINESS_TIP}" if text else "")
        self.readiness_label.setVisible(bool(text))

    def loras(self, finished: bool = False) -> tuple[LoraSpec, ...]:
        return parse_loras(self.lora_edit.finished_text() if finished else self.lora_edit.text())

    def set_loras(self, loras: tuple[LoraSpec, ...]) -> None:
        self.lora_edit.setText(format_loras(loras))

    def preset(self) -> str | None:
        return self.preset_combo.currentData()

    def set_preset(self, name: str | None) -> None:
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(name)))


class KeepMyLines(QWidget):
    """The "Lines" row (the checkbox and strength). While it is checked, two rows below it show:
    range_row, "from [start] to [end] of the steps", and model_row, the ControlNet and Choose….
    The panel puts all three into its form, so their labels line up with the other rows."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.checkbox = QCheckBox("Keep my lines", self, toolTip="Steer the picture with the sketch's "
                                  "lines (a scribble / line-art ControlNet), even at high denoise")
        strength_tip = "How firmly the lines steer (0: not at all, the picture without ControlNet)"
        self.strength_label = QLabel("strength", self, toolTip=strength_tip)
        self.strength_spin = QDoubleSpinBox(self, minimum=0.0, maximum=MAX_CONTROL_STRENGTH, singleStep=0.1,
                                            decimals=2, value=1.0, toolTip=strength_tip)
        self.strength_label.setBuddy(self.strength_spin)
        _layout(self, self.checkbox, self.strength_label, self.strength_spin).addStretch(1)

        self.range_row = QWidget(parent)
        self.start_spin = QDoubleSpinBox(self.range_row, minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2,
                                         value=0.0, toolTip="The lines steer from this fraction of the steps "
                                         "(0: from the first step)")
        self.end_spin = QDoubleSpinBox(self.range_row, minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2,
                                       value=1.0, toolTip="…until this fraction of the steps (1: to the last step)")
        self.range_labels = [QLabel(text, self.range_row, toolTip=RANGE_TIP) for text in ("from", "to", "of the steps")]
        self.range_labels[0].setBuddy(self.start_spin)
        self.range_labels[1].setBuddy(self.end_spin)
        _layout(self.range_row, self.range_labels[0], self.start_spin, self.range_labels[1], self.end_spin,
                self.range_labels[2]).addStretch(1)

        self.model_row = QWidget(parent)
        self.model_edit = FinishedLineEdit(self.model_row, placeholderText=CONTROL_PLACEHOLDER,
                                           toolTip="A scribble / line-art ControlNet for SD 1.5: a Hugging Face "
                                           "id, a diffusers folder or a single .safetensors file; Enter applies")
        fit_placeholder(self.model_edit)
        self.choose_button = QToolButton(self.model_row, text="Choose…", toolTip="Choose a ControlNet file or folder",
                                         popupMode=QToolButton.ToolButtonPopupMode.InstantPopup,
                                         styleSheet="QToolButton::menu-indicator { image: none; }")
        self.choose_menu = QMenu(self.choose_button)
        self.choose_menu.addAction("A .safetensors file…", self._choose_file)
        self.choose_menu.addAction("A diffusers folder…", self._choose_folder)
        self.choose_button.setMenu(self.choose_menu)
        _layout(self.model_row, self.model_edit, self.choose_button).setStretch(0, 1)

        for signal in (self.checkbox.toggled, self.strength_spin.valueChanged, self.start_spin.valueChanged,
                       self.end_spin.valueChanged, self.model_edit.finished):
            signal.connect(self.changed)
        self.checkbox.toggled.connect(self._show)
        self._show()

    def control(self, finished: bool = False) -> ControlSpec | None:
        """The ControlNet as the rows say it; unchecked or strength 0 means none. Checked with no
        model is an error the person should see (validated() says so)."""
        strength = round(self.strength_spin.value(), 2)
        if not self.checkbox.isChecked() or strength == 0:
            return None
        model = self.model_edit.finished_text() if finished else self.model_edit.text()
        return ControlSpec(model=model.strip(), strength=strength, start=round(self.start_spin.value(), 2),
                           end=round(self.end_spin.value(), 2)).validated()

    def set_control(self, spec: ControlSpec | None) -> None:
        self.checkbox.setChecked(spec is not None)
        if spec is not None:  # without one the rows keep their model, so re-checking restores it
            self.model_edit.setText(spec.model)
            self.strength_spin.setValue(spec.strength)
            self.start_spin.setValue(spec.start)
            self.end_spin.setValue(spec.end)

    def _show(self, *_) -> None:
        # the rows below only while the lines are kept: unchecked, the settings fit 1280x800 unscrolled
        on = self.checkbox.isChecked()
        self.strength_spin.setEnabled(on)
        self.strength_label.setEnabled(on)
        self.range_row.setVisible(on)
        self.model_row.setVisible(on)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a ControlNet file", self._start_dir(),
                                              "ControlNet (*.safetensors);;All files (*)")
        if path:
            self.model_edit.setText(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a ControlNet folder (diffusers)", self._start_dir())
        if path:
            self.model_edit.setText(path)

    def _start_dir(self) -> str:
        """Where the dialog opens: the chosen model's folder, if it names one on this computer."""
        path = Path(self.model_edit.text().strip()).expanduser()
        return str(path if path.is_dir() else path.parent) if path.is_absolute() else ""


def fit_placeholder(edit: QLineEdit, texts: tuple[str, ...] = ()) -> None:
    """At least as wide as its placeholder text and the given texts, so none is cut off."""
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    margins = edit.textMargins()
    metrics = QFontMetricsF(edit.font())
    advance = math.ceil(max(map(metrics.horizontalAdvance, [edit.placeholderText(), *texts]))) + 1  # not elided
    text = QSize(advance + 4 + margins.left() + margins.right(),  # 4: the line edit's inner margin, 2 px a side
                 edit.fontMetrics().height())
    edit.setMinimumWidth(edit.style().sizeFromContents(QStyle.ContentsType.CT_LineEdit, option, text, edit).width())


def _layout(widget: QWidget, *children: QWidget) -> QHBoxLayout:
    row = QHBoxLayout(widget)
    row.setContentsMargins(0, 0, 0, 0)
    for child in children:
        if isinstance(child, QLabel):  # a label keeps its text whole; the fields give way
            child.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        row.addWidget(child)
    return row
