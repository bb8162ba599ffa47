"""GenerationPanel: the model, prompt, seed, sampler settings, the denoise dial, Generate/Cancel, Live.

The panel edits the session's request: every change the person makes is written there (or, when the
values make no request, why not), and set_params() shows a request. Internal updates (range label,
enabled knob, start-step maximum) always run; only the outward params_changed signal is held back
while set_params restores values.
Layout: the model on top, the settings in a vertical-only scroll area, and Generate, Cancel, Live
and the progress pinned below it, so they stay in view however short the window. The preset, LoRA
and "Keep my lines" rows are widgets of their own (fast_live_controls.py).
"""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase, QFontMetrics
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QRadioButton, QScrollArea, QSizePolicy, QSpinBox, QStyle, QToolButton, QVBoxLayout,
                               QWidget)

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import (MAX_SEED, MAX_STEPS, PREVIEW_METHODS, RANDOM_SEED, ControlSpec,
                                   GenerationParams)
from sketchpad.core.lora_text import format_loras
from sketchpad.core.presets import PRESET_TABLE, apply_preset
from sketchpad.core.registry import SCHEDULER_LABELS, SCHEDULERS

from .backend_picker import BackendPicker
from .fast_live_controls import FinishedLineEdit
from .server_choices import ServerChoices
from .session import Session
from .denoise_dial import BANDS, UNCHANGED, DenoiseDial, band_color, band_range_text, denoise_band
from .fast_live_controls import KeepMyLines, PresetRow
from .model_picker import ModelPicker

# The preview combo shares the sampler's row, so each entry says what it is.
SAME_PICTURE = "same picture"
SAME_PICTURE_TIP = ("This value runs the same steps as the picture on show (with its seed, prompt and sketch), "
                    "so it gives exactly that picture: nothing is run again")
PREVIEW_LABELS = {"latent2rgb": "Preview: fast", "taesd": "Preview: TAESD", "vae": "Preview: full (slow)",
                  "none": "Preview: off"}


def _glyphs() -> dict[str, str]:
    """Emoji where a colour-emoji font is installed, else symbols every desktop font has
    (without one, 🔒 and 🎲 draw as empty boxes)."""
    if any("emoji" in family.lower() for family in QFontDatabase.families()):
        return {"locked": "🔒", "unlocked": "🔓", "dice": "🎲"}
    return {"locked": "Keep ✓", "unlocked": "Keep", "dice": "⚄"}


class GenerationPanel(QWidget):
    """The request controls.

    Seed rule (A1111's "-1 = random"; the field always says what the next Generate uses):
    - The field holds a seed 0..MAX_SEED, or -1, shown as "random": a fresh seed every Generate.
    - Keep is on exactly while the field holds a seed. Turning it on keeps the last run's seed
      (a new one before any run); turning it off makes the field random again.
    - Typing a seed, the dice (draws one) or ♻ (the last run's seed) turn Keep on; typing -1 off.
    - The seed a run used is the session's last_seed, shown beside: "last: N".
    - Live regenerations reuse the last run's seed while the field is random (Session.live_request),
      so turning the dial compares like with like. Before any run it is random too.
    Denoise is kept in hundredths (the dial's resolution): set_denoise(0.333) reads back 0.33.
    Shortcuts (Ctrl+Return, Esc) belong to the window; the tooltips only name them.
    """

    generate_requested = Signal()
    cancel_requested = Signal()
    params_changed = Signal()
    live_changed = Signal(bool)
    model_chosen = Signal(str)  # the window loads it, then calls set_model

    def __init__(self, parent: QWidget | None = None, session: Session | None = None):
        super().__init__(parent)
        self.session = session if session is not None else Session(parent=self)
        self._same_picture = False
        self._quiet = 0  # > 0 while values are restored or derived: params_changed held back
        self._glyph = _glyphs()
        self.backend_picker = BackendPicker(self)  # the window binds it to the session
        self.model_picker = ModelPicker(self)
        self.model_picker.model_chosen.connect(self.model_chosen)

        self.settings_area = QScrollArea(self, widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.settings_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        settings = QWidget(self.settings_area)
        col = QVBoxLayout(settings)
        col.setContentsMargins(0, 0, 0, 0)
        self.prompt_edit = self._text_edit(3, "Describe the picture, e.g. a knight in armour, oil painting")
        self.negative_edit = self._text_edit(2, "What to avoid, e.g. blurry, extra fingers")

        # A double holds 0..2**32-1 exactly; QSpinBox is int32. The minimum, -1, reads "random".
        self.seed_box = QDoubleSpinBox(self, decimals=0, minimum=RANDOM_SEED, maximum=MAX_SEED,
                                       specialValueText="random", value=RANDOM_SEED,
                                       toolTip=f"Seed 0..{MAX_SEED}, or -1 for random: what the next Generate uses")
        self.lock_button = QToolButton(self, text=self._glyph["unlocked"], checkable=True,
                                       toolTip="Keep a seed between runs (on: the last run's seed; off: random)")
        self.dice_button = QToolButton(self, text=self._glyph["dice"],
                                       styleSheet=f"font-size: {self._points(1.3)}pt;",
                                       toolTip="Draw a new random seed into the field (and keep it)")
        self.recycle_button = QToolButton(self, text="♻", enabled=False,
                                          toolTip="Reuse the last run's seed")
        self.used_seed_label = QLabel("last: –", self, toolTip="The seed the last run used")
        self.used_seed_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.steps_spin = QSpinBox(self, minimum=1, maximum=MAX_STEPS, value=20)
        self.cfg_spin = QDoubleSpinBox(self, minimum=0.0, maximum=30.0, singleStep=0.5, decimals=1,
                                       value=7.5, toolTip="How closely to follow the prompt (CFG scale)")
        self.scheduler_combo = QComboBox(self)
        self.scheduler_combo.addItem("Model default", None)
        for name in SCHEDULERS:
            self.scheduler_combo.addItem(SCHEDULER_LABELS[name], name)
        self.preview_combo = QComboBox(self, toolTip="How each step's preview is drawn: fast (nearly free), "
                                       "TAESD (tiny decoder), full (the real decoder, slow) or off")
        for name in PREVIEW_METHODS:
            self.preview_combo.addItem(PREVIEW_LABELS.get(name, name), name)
        for combo in (self.scheduler_combo, self.preview_combo):  # side by side: they may shrink
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(9)
        form = QFormLayout()
        form.setVerticalSpacing(4)  # a little denser than the style's 6: more rows fit a short window
        form.addRow("Prompt", self.prompt_edit)  # labels beside, not above: a short window keeps the dial
        form.addRow("Negative", self.negative_edit)
        form.addRow(self._build_knobs())  # right under the prompt: the dial stays in view longest
        form.addRow("Seed", _row(self.seed_box, self.lock_button, self.dice_button))
        form.addRow("", _row(self.used_seed_label, self.recycle_button))
        self.presets = PresetRow(self)
        form.addRow("Preset", self.presets)
        form.addRow(self.presets.lora_edit)  # the panel's whole width: a preset's LoRA id reads whole
        self.lines = KeepMyLines(self)  # above the numbers a preset sets: in view in a 1024x640 window
        for label, row in (("Lines", self.lines), ("", self.lines.range_row), ("", self.lines.model_row)):
            form.addRow(label, row)
        form.addRow("Steps", _row(self.steps_spin, QLabel("CFG", self), self.cfg_spin, stretch=(0, 2)))
        form.addRow("Sampler", _row(self.scheduler_combo, self.preview_combo, stretch=(0, 1)))
        col.addLayout(form)
        col.addStretch(1)
        self.settings_area.setWidget(settings)

        self.generate_button = QPushButton("▶ Generate", self, toolTip="Generate (Ctrl+Return)")
        self.cancel_button = QPushButton("■ Cancel", self, enabled=False,
                                         toolTip="Stop the running generation (Esc)")
        self.live_checkbox = QCheckBox("Live", self, toolTip="Regenerate automatically when the "
                                       "dial, prompt or settings change")
        self.progress_bar = QProgressBar(self, textVisible=True)
        self.set_progress(0, 0)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.addWidget(self.backend_picker)
        outer.addWidget(self.model_picker)
        outer.addWidget(self.settings_area, 1)
        outer.addLayout(_row(self.generate_button, self.cancel_button, self.live_checkbox))
        outer.addWidget(self.progress_bar)

        self.steps_spin.valueChanged.connect(self._steps_changed)  # first: params() valid in slots
        for signal in (self.prompt_edit.textChanged, self.negative_edit.textChanged,
                       self.steps_spin.valueChanged, self.cfg_spin.valueChanged,
                       self.scheduler_combo.currentIndexChanged, self.preview_combo.currentIndexChanged,
                       self.dial.valueChanged, self.start_spin.valueChanged,
                       self.lines.changed, self.presets.loras_changed):  # the text fields: once finished
            signal.connect(self._changed)
        self.lines.checkbox.clicked.connect(self._bring_lines_into_view)
        self.seed_box.valueChanged.connect(self._seed_edited)
        self.lock_button.clicked.connect(self.set_locked)
        self.presets.preset_combo.activated.connect(self._preset_chosen)
        for signal in (self.steps_spin.valueChanged, self.cfg_spin.valueChanged,
                       self.scheduler_combo.currentIndexChanged):
            signal.connect(self._show_preset)
        self.dice_button.clicked.connect(lambda: self._choose_seed(random.randint(0, MAX_SEED)))
        self.recycle_button.clicked.connect(lambda: self._choose_seed(self.session.last_seed))
        self.session.last_seed_changed.connect(self._show_used_seed)
        self.session.request_loaded.connect(self.set_params)
        self.dial.valueChanged.connect(self._show_denoise)
        self.denoise_radio.toggled.connect(self._show_knob)
        self._knob_group.idToggled.connect(self._knob_toggled)
        self.generate_button.clicked.connect(self.generate_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.live_checkbox.toggled.connect(self.live_changed)
        self.set_denoise(0.75)
        self._show_knob()
        self._fit_settings_width()
        self.server_choices = ServerChoices(self.session, self.presets, self.lines)
        self._write_request()

    # ---- public API ---------------------------------------------------------------------
    def params(self, finished: bool = False) -> GenerationParams:
        """The request the widgets show, validated; `finished`: text fields as last finished."""
        seed = self.seed()
        use_denoise = self.denoise_radio.isChecked()
        return GenerationParams(
            prompt=self.prompt_edit.toPlainText(), negative_prompt=self.negative_edit.toPlainText(),
            strength=self.denoise() if use_denoise else None,
            start_at_step=None if use_denoise else self.start_spin.value(),
            steps=self.steps_spin.value(), cfg=round(self.cfg_spin.value(), 2), seed=seed,
            scheduler=self.scheduler_combo.currentData(), preview_method=self.preview_combo.currentData(),
            loras=self.presets.loras(finished), preset=self.presets.preset(), control=self.control(finished),
        ).validated()

    def control(self, finished: bool = False) -> ControlSpec | None:
        """"Keep my lines" as its rows say it; unchecked or strength 0 means no ControlNet."""
        return self.lines.control(finished)

    def finish_editing(self) -> None:
        """The entries being typed count now (Generate was pressed)."""
        for edit in self.findChildren(FinishedLineEdit):
            edit.finish()

    def set_params(self, p: GenerationParams, *, emit: bool = False) -> None:
        """Show a request (from a saved PNG or the history). A concrete seed is kept, so Generate
        reproduces it; -1 is random. CFG is clamped to 0..30 and kept to 0.1.
        params_changed is emitted once at the end if emit, else not at all."""
        p = p.validated()

        def restore():
            self.prompt_edit.setPlainText(p.prompt)
            self.negative_edit.setPlainText(p.negative_prompt)
            self.steps_spin.setValue(p.steps)
            self.cfg_spin.setValue(p.cfg)
            self.set_seed(p.seed)
            self.scheduler_combo.setCurrentIndex(max(0, self.scheduler_combo.findData(p.scheduler)))
            self.preview_combo.setCurrentIndex(max(0, self.preview_combo.findData(p.preview_method)))
            if p.strength is not None:
                self.set_denoise(p.strength)
                self.denoise_radio.setChecked(True)
            else:
                self.start_spin.setValue(p.start_at_step)
                self.start_radio.setChecked(True)
            self.presets.set_loras(p.loras)
            self.lines.set_control(p.control)
            self.presets.set_preset(p.preset)
            self._show_preset()
        self._quietly(restore, emit=emit)
        if not emit:
            self._write_request()

    def denoise(self) -> float:
        return self.dial.value() / 100

    def set_denoise(self, value: float) -> None:
        self.dial.setValue(round(min(1.0, max(0.0, value)) * 100))

    def seed(self) -> int:
        """The field's value: a seed, or -1 (random)."""
        return int(round(self.seed_box.value()))

    def set_seed(self, seed: int) -> None:
        """Write the field; Keep follows (on for a seed, off for random)."""
        if seed != self.seed():
            self.seed_box.blockSignals(True)
            self.seed_box.setValue(seed)
            self.seed_box.blockSignals(False)
            self._changed()
        self._show_lock()

    def is_locked(self) -> bool:
        return self.seed() != RANDOM_SEED

    def set_locked(self, on: bool) -> None:
        """Keep on: the field keeps the last run's seed (a new one before any run) unless it
        already holds one. Off: the field says random."""
        if not on:
            self.set_seed(RANDOM_SEED)
        elif not self.is_locked():
            last = self.session.last_seed
            self._choose_seed(last if last is not None else random.randint(0, MAX_SEED))
        self._show_lock()

    def _show_used_seed(self, seed: int) -> None:
        self.used_seed_label.setText(f"last: {seed}")
        self.recycle_button.setEnabled(True)

    def set_model(self, model: str) -> None:
        """The model in use, as the window loaded it."""
        self.model_picker.set_model(model)

    def set_progress(self, step: int, total: int, text: str | None = None) -> None:
        """Fill to step / total and say "step k / N" as given; `text` (the window's state line)
        replaces the count. With nothing running and no text the bar says nothing."""
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(max(0, min(step, max(1, total))))
        self.progress_bar.setFormat(text if text is not None else f"step {step} / {total}" if total else "")

    def set_busy(self, busy: bool) -> None:
        """Cancel works only while busy; Generate always does (a new request replaces the run)."""
        self.cancel_button.setEnabled(busy)

    def is_live(self) -> bool:
        return self.live_checkbox.isChecked()

    def set_live(self, on: bool) -> None:
        self.live_checkbox.setChecked(on)

    # ---- building -------------------------------------------------------------------------
    def _build_knobs(self) -> QGroupBox:
        # untitled: its two radios say what it holds, and a title's row would push "Keep my lines"'
        # ControlNet row out of a 1024x640 window
        box = QGroupBox(self, toolTip="How much of the sketch changes")
        self.denoise_radio = QRadioButton("Denoise", box, checked=True,
                                          toolTip="0 keeps the sketch, 1 ignores it")
        self.start_radio = QRadioButton("Start at step", box, toolTip="Skip the first steps of the "
                                        "schedule: 0 ignores the sketch, 'steps' keeps it")
        self._knob_group = QButtonGroup(box)
        self._knob_group.addButton(self.denoise_radio, 0)
        self._knob_group.addButton(self.start_radio, 1)
        self.dial = DenoiseDial(box)
        self.denoise_label = QLabel(box)
        label_font = QFont(self.font())
        label_font.setBold(True)
        label_font.setPointSizeF(self.font().pointSizeF() * 1.15)
        self.denoise_label.setFont(label_font)
        # as wide as its widest text, so turning the dial never changes the panel's width
        metrics = QFontMetrics(label_font)
        widest = max(metrics.horizontalAdvance(f"0.00 · {name}")
                     for name in (UNCHANGED, SAME_PICTURE, *(b[0] for b in BANDS)))
        self.denoise_label.setFixedWidth(widest + 8)
        self._legend = {name: QLabel(box, toolTip=f"denoise {band_range_text(low, high)}")
                        for name, low, high, _ in BANDS}
        bold = QFont(self.font())
        bold.setBold(True)
        for (name, low, high, _), label in zip(BANDS, self._legend.values()):
            label.setMinimumWidth(QFontMetrics(bold).horizontalAdvance(f"● {name} {band_range_text(low, high)}") + 6)
        steps = self.steps_spin.value()
        self.start_spin = QSpinBox(box, minimum=0, maximum=steps, suffix=f" / {steps}",
                                   toolTip="Steps of the schedule to skip (0..steps)")
        # Each knob's value beside its own radio; "0.75 · restyle" (in the band's colour) under the
        # legend it names: no row below the dial, which keeps the panel short enough for 1024x640
        grid = QGridLayout(box)
        grid.addWidget(self.denoise_radio, 0, 0)
        grid.addLayout(_row(self.start_radio, self.start_spin, stretch=(1,)), 0, 1)
        grid.addWidget(self.dial, 1, 0, Qt.AlignmentFlag.AlignHCenter)
        legend = QVBoxLayout()
        for label in self._legend.values():
            legend.addWidget(label)
        legend.addWidget(self.denoise_label)
        grid.addLayout(legend, 1, 1)
        return box

    def _fit_settings_width(self) -> None:
        """The scroll area never scrolls sideways: it is as wide as its content needs, plus room
        for its vertical scrollbar."""
        content = self.settings_area.widget()
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.settings_area.setMinimumWidth(content.minimumSizeHint().width() + bar + 4)
        self.settings_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    def _text_edit(self, lines: int, placeholder: str) -> QPlainTextEdit:
        edit = QPlainTextEdit(self, placeholderText=placeholder, tabChangesFocus=True)
        edit.setFixedHeight(edit.fontMetrics().lineSpacing() * lines + 14)
        return edit

    def _points(self, factor: float) -> str:
        return f"{self.font().pointSizeF() * factor:.1f}"

    # ---- reactions ------------------------------------------------------------------------
    def _preset_chosen(self, index: int) -> None:
        """Only what a preset sets changes: sampler, steps, CFG, the start step's place, its LoRA. An
        unfinished entry elsewhere (Keep my lines without a model, a half-typed LoRA) neither blocks
        it nor is lost; Generate names what is wrong."""
        name = self.presets.preset_combo.itemData(index)
        if name is None:
            return
        try:
            loras = self.presets.loras()
        except SketchpadError:
            loras = None
        use_denoise = self.denoise_radio.isChecked()
        p = apply_preset(GenerationParams(prompt="", steps=self.steps_spin.value(), loras=loras or (),
                                          strength=self.denoise() if use_denoise else None,
                                          start_at_step=None if use_denoise else self.start_spin.value()), name)

        def show():
            self.steps_spin.setValue(p.steps)  # first: the start step's maximum follows it
            self.cfg_spin.setValue(p.cfg)
            self.scheduler_combo.setCurrentIndex(max(0, self.scheduler_combo.findData(p.scheduler)))
            if p.start_at_step is not None:
                self.start_spin.setValue(p.start_at_step)
            if loras is not None:
                self.presets.set_loras(p.loras)
            elif PRESET_TABLE[name].lora is not None:  # keep the typed text as it is, add the preset's
                typed = self.presets.lora_edit.text().strip().rstrip(",")
                self.presets.lora_edit.setText(", ".join(filter(None, (typed, format_loras((PRESET_TABLE[name].lora,))))))
            self.presets.set_preset(name)
        self._quietly(show)

    def _show_preset(self, *_) -> None:
        """A preset's name stays only while steps, CFG and sampler are still the preset's own."""
        preset = PRESET_TABLE.get(self.presets.preset_combo.currentData())
        if preset is not None and (preset.steps, preset.cfg, preset.scheduler) != (
            self.steps_spin.value(), round(self.cfg_spin.value(), 2), self.scheduler_combo.currentData()
        ):
            self.presets.preset_combo.setCurrentIndex(0)

    def _bring_lines_into_view(self, checked: bool) -> None:
        """Ticked by the person: the rows to fill in come into view, though the settings may scroll
        (a short window); after the layout has made room for them."""
        if checked:
            QTimer.singleShot(0, lambda: self.settings_area.ensureWidgetVisible(self.lines.model_row, 0, 4))

    def _changed(self, *_) -> None:
        if not self._quiet:
            self._write_request()
            self.params_changed.emit()

    def _write_request(self) -> None:
        """The session's request is what the widgets say, text fields as last finished."""
        try:
            self.session.edit_request(self.params(finished=True))
        except SketchpadError as error:
            self.session.request_invalid(str(error))

    def _quietly(self, change, emit: bool = True) -> None:
        """Apply a change that moves several widgets, then emit params_changed once (if emit)."""
        self._quiet += 1
        try:
            change()
        finally:
            self._quiet -= 1
        if emit:
            self._changed()

    def _seed_edited(self, value: float) -> None:
        self._show_lock()
        self._changed()

    def _choose_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.set_seed(seed)

    def _show_lock(self, *_) -> None:
        on = self.is_locked()
        self.lock_button.setChecked(on)
        self.lock_button.setText(self._glyph["locked" if on else "unlocked"])

    def _steps_changed(self, steps: int) -> None:
        # A start step clamped to the new maximum is part of this same change: no own signal.
        self._quietly(lambda: (self.start_spin.setMaximum(steps), self.start_spin.setSuffix(f" / {steps}")),
                      emit=False)

    def _knob_toggled(self, knob: int, checked: bool) -> None:
        """On a switch (not a restore) carry the amount over, (steps - k) / steps ~ denoise,
        so the picture changes about as much as before."""
        if not checked or self._quiet:
            return
        steps = self.steps_spin.value()
        if knob == 1:
            self._quietly(lambda: self.start_spin.setValue(round(steps * (1 - self.denoise()))))
        else:
            self._quietly(lambda: self.set_denoise((steps - self.start_spin.value()) / steps))

    def _show_knob(self, *_) -> None:
        denoise = self.denoise_radio.isChecked()
        for widget in (self.dial, self.denoise_label, *self._legend.values()):
            widget.setEnabled(denoise)
        self.start_spin.setEnabled(not denoise)
        self._show_denoise()  # the band colour only while the dial is in use

    def show_same_picture(self, same: bool) -> None:
        """Whether the request as it stands paints the picture on show (its steps, seed and all)."""
        if same != self._same_picture:
            self._same_picture = same
            self._show_denoise()

    def _show_denoise(self, *_) -> None:
        value = self.denoise()
        band = denoise_band(value)
        same = self._same_picture and self.denoise_radio.isChecked()
        self.denoise_label.setText(f"{value:.2f} · {SAME_PICTURE if same else band}")
        self.denoise_label.setToolTip(SAME_PICTURE_TIP if same else "")
        color = band_color(band) if self.dial.isEnabled() else None
        self.denoise_label.setStyleSheet(f"color: {color};" if color else "")
        for name, low, high, c in BANDS:
            text = f"<span style='color:{c}'>●</span> {name} {band_range_text(low, high)}"
            self._legend[name].setText(f"<b>{text}</b>" if name == band else text)


def _row(*widgets: QWidget, stretch: tuple[int, ...] = (0,)) -> QHBoxLayout:
    """A horizontal row; the widgets at the `stretch` indexes take the spare room."""
    row = QHBoxLayout()
    # the style's own: a row inside the form would take the form's, which differs vertically
    row.setSpacing(widgets[0].style().pixelMetric(QStyle.PixelMetric.PM_LayoutHorizontalSpacing))
    for i, widget in enumerate(widgets):
        row.addWidget(widget, 1 if i in stretch else 0)
    return row
