"""The tool bar's mask row: the mask tools, and whether a mask is on, with its edits and settings.

[Mask] [Unmask] [Box] [Lasso] … [Mask on ▾]. The last control says at a glance that a run will
redo only part of the picture (in the mask's colour), and opens the mask's edits (clear first) and
how a run uses it. The edits are QActions, shared with the window's Canvas → Mask menu (where their
shortcuts live).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QMenu, QSpinBox, QToolButton, QWidget,
                               QWidgetAction)

from ..core.params import MAX_MASK_BLUR, MAX_MASK_PADDING
from .canvas import SketchCanvas
from .mask_layer import EDIT_STEP, MASK_COLOR, feathered, grown, inverted, shrunk
from .mask_options import CanvasMask, MaskOptions

AREA_LABELS = {"auto": "Auto", "whole": "Whole picture", "masked": "Only the masked part"}
AREA_TIP = ("Only the masked part: it and the padding around it are cut out, redone at the model's own size "
            "and put back (more detail for a small part). Whole picture: the mask is redone within the whole "
            "picture. Auto: only the masked part while it covers less than half of the picture.")
# (key, menu text, shortcut, undo text, edit of the mask's values)
MASK_EDITS = (
    ("invert_mask", "&Invert mask", "Ctrl+I", "Invert mask", inverted),
    ("grow_mask", f"&Grow mask by {EDIT_STEP} px", "", "Grow mask", grown),
    ("shrink_mask", f"&Shrink mask by {EDIT_STEP} px", "", "Shrink mask", shrunk),
    ("feather_mask", f"&Feather mask edge by {EDIT_STEP} px", "", "Feather mask", feathered),
    ("clear_mask", "&Clear mask", "Ctrl+Shift+M", "Clear mask", np.zeros_like),
)
# (tool, button text, tooltip, shortcut of the window's menu entry)
MASK_TOOL_BUTTONS = (
    ("mask", "Mask", "Mask brush: paint the part a run redoes (M)", "M"),
    ("unmask", "Unmask", "Unmask brush: take the mask away where it passes (U)", "U"),
    ("mask_box", "Box", "Mask a rectangle: drag it out (Alt: unmask it)", ""),
    ("mask_lasso", "Lasso", "Mask a freehand outline: draw around the part (Alt: unmask it)", ""),
)
ON_TEXT, OFF_TEXT = "Mask on ▾", "No mask ▾"
_STATE_STYLE = ("QToolButton {{ {colors} border-radius: 3px; padding: 1px 4px; }}"
                " QToolButton::menu-indicator {{ image: none; }}")  # the "▾" in the text says it
ON_STYLE = _STATE_STYLE.format(colors=f"color: #ffffff; background-color: {MASK_COLOR.darker(130).name()};")
OFF_STYLE = _STATE_STYLE.format(colors="")


def tool_button(canvas: SketchCanvas, button: QToolButton, tool: str) -> QToolButton:
    """A button that picks `tool` and is checked exactly while the canvas's tool is that one."""
    button.setCheckable(True)
    button.clicked.connect(lambda: (canvas.set_tool(tool), button.setChecked(canvas.tool() == tool)))
    canvas.tool_changed.connect(lambda now: button.setChecked(now == tool))
    button.setChecked(canvas.tool() == tool)
    return button


def mask_edit_actions(canvas: SketchCanvas, parent: QWidget) -> dict[str, QAction]:
    """One QAction per edit of the whole mask, enabled while there is a mask to edit (invert also without)."""
    actions = {}
    for key, text, shortcut, undo_text, edit in MASK_EDITS:
        action = QAction(text, parent)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _=False, edit=edit, undo_text=undo_text: canvas.edit_mask(edit, undo_text))
        actions[key] = action

    def follow() -> None:
        on = canvas.has_mask()
        for key, action in actions.items():
            action.setEnabled(on or key == "invert_mask")
    canvas.mask_changed.connect(follow)
    follow()
    return actions


class MaskToolRow(QWidget):
    def __init__(self, canvas: SketchCanvas, mask: CanvasMask, style: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._canvas, self._mask = canvas, mask
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self.tool_buttons: dict[str, QToolButton] = {}
        for tool, text, tip, shortcut in MASK_TOOL_BUTTONS:
            button = QToolButton(self)
            button.setText(text)
            button.setToolTip(tip)
            button.setStyleSheet(style)
            self.tool_buttons[tool] = tool_button(canvas, button, tool)
            row.addWidget(button)

        self.edit_actions = mask_edit_actions(canvas, self)
        row.addStretch(1)
        # the mask's state, and the menu of its edits and settings: "Mask on" in the mask's colour
        self.state_button = QToolButton(self)
        self.state_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.state_button)
        menu.addActions([self.edit_actions[key] for key in ("clear_mask", "invert_mask", "grow_mask", "shrink_mask",
                                                             "feather_mask")])
        menu.addSection("How a run uses the mask")
        settings = QWidgetAction(menu)
        settings.setDefaultWidget(self._settings_form(menu))
        menu.addAction(settings)
        self.state_button.setMenu(menu)
        self.state_button.setStyleSheet(ON_STYLE)
        self.state_button.setText(ON_TEXT)
        self.state_button.setMinimumWidth(self.state_button.sizeHint().width())  # the row keeps its width
        row.addWidget(self.state_button)

        mask.changed.connect(self._show_state)
        mask.options_changed.connect(self._show_options)
        self._show_options(mask.options)

    def _settings_form(self, parent: QWidget) -> QWidget:
        form_widget = QWidget(parent)
        form = QFormLayout(form_widget)
        form.setContentsMargins(8, 4, 8, 4)
        self.blur_spin = QSpinBox(form_widget)
        self.blur_spin.setRange(0, MAX_MASK_BLUR)
        self.blur_spin.setSuffix(" px")
        self.blur_spin.setToolTip("How softly the new part blends in at the mask's edge (a blur of this radius)")
        self.area_combo = QComboBox(form_widget)
        for area, label in AREA_LABELS.items():
            self.area_combo.addItem(label, area)
        self.area_combo.setToolTip(AREA_TIP)
        self.padding_spin = QSpinBox(form_widget)
        self.padding_spin.setRange(0, MAX_MASK_PADDING)
        self.padding_spin.setSuffix(" px")
        self.padding_spin.setToolTip("Context around the masked part when only that part is redone")
        form.addRow("Edge blur", self.blur_spin)
        form.addRow("Redo", self.area_combo)
        form.addRow("Padding", self.padding_spin)
        for signal in (self.blur_spin.valueChanged, self.area_combo.currentIndexChanged,
                       self.padding_spin.valueChanged):
            signal.connect(self._options_edited)
        return form_widget

    def _options_edited(self, *_) -> None:
        self._mask.set_options(MaskOptions(self.blur_spin.value(), self.area_combo.currentData(),
                                           self.padding_spin.value()))

    def _show_options(self, options: MaskOptions) -> None:
        for widget in (self.blur_spin, self.area_combo, self.padding_spin):
            widget.blockSignals(True)
        self.blur_spin.setValue(options.blur)
        self.area_combo.setCurrentIndex(max(0, self.area_combo.findData(options.area)))
        self.padding_spin.setValue(options.padding)
        for widget in (self.blur_spin, self.area_combo, self.padding_spin):
            widget.blockSignals(False)
        self._show_state()

    def _show_state(self) -> None:
        on = self._canvas.has_mask()
        options = self._mask.options
        button = self.state_button
        button.setText(ON_TEXT if on else OFF_TEXT)
        button.setStyleSheet(ON_STYLE if on else OFF_STYLE)
        how = (f"edge blur {options.blur} px, redo: {AREA_LABELS[options.area].lower()}, "
               f"padding {options.padding} px")
        button.setToolTip(
            f"A run redoes only the masked part ({how}); the rest stays as it is. Click to clear or edit the mask."
            if on else f"Nothing is masked: a run redoes the whole picture. Paint a mask to redo only a part ({how}).")
