"""Generate → Sweep…: what to vary (denoise, the start step, or the seed alone), its values, and how
many seeds; what that makes is said as it is typed, and a choice that makes no sweep is one line and
cannot run. The values start at core.sweep's defaults (five denoises from 0.2 to 1.0, or the seed
article's start steps 0, 1, 9, 20 of 20 placed in the request's steps); edited ones are kept
between openings. When the model runs on a ComfyUI server, other servers can share the cells: their
addresses are listed here (and remembered in the settings)."""

from __future__ import annotations

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QSpinBox,
                               QVBoxLayout, QWidget)

from ..core.errors import SketchpadError
from ..core.params import RANDOM_SEED
from ..core.server_address import display_address, parse_server_url
from ..core.sweep import DENOISE, MAX_CELLS, START, SweepPlan, default_values, parse_values, plan_sweep, value_text
from .preview_panel import ERROR_COLOR
from .session import Session

SEEDS_ONLY = None
AXIS_CHOICES = (("Denoise", DENOISE), ("Start at step", START), ("Seeds only", SEEDS_ONLY))


class SweepDialog(QDialog):
    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.session = session
        self._edited = False  # the person typed values: keep them; else follow the request's steps
        self._axis_chosen = False
        self.axis_combo = QComboBox(self, toolTip="What changes from picture to picture")
        for text, axis in AXIS_CHOICES:
            self.axis_combo.addItem(text, axis)
        self.values_edit = QLineEdit(self, toolTip="Comma-separated, e.g. 0.3, 0.5, 0.7 or 0, 1, 9, 20")
        self.seeds_spin = QSpinBox(self, minimum=1, maximum=MAX_CELLS, value=1,
                                   toolTip="How many seeds: s, s+1, … (a batch); with values, every value at every seed")
        self.servers_edit = QLineEdit(self, placeholderText="e.g. 192.168.1.20:8188, gpu-box:8188",
                                      toolTip="Other ComfyUI servers that make some of the pictures, comma-separated; "
                                      "each needs the checkpoint in use. Empty: the server in use makes them all")
        self.summary = QLabel(self, wordWrap=True)
        self.summary.setMinimumWidth(self.fontMetrics().averageCharWidth() * 48)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.run_button = self.buttons.addButton("Run sweep", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Vary", self.axis_combo)
        form.addRow("Values", self.values_edit)
        form.addRow("Seeds", self.seeds_spin)
        form.addRow("Also on servers", self.servers_edit)
        self._form = form
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.summary)
        col.addWidget(self.buttons)
        self.axis_combo.currentIndexChanged.connect(self._axis_changed)
        self.values_edit.textEdited.connect(self._typed)
        self.seeds_spin.valueChanged.connect(self._explain)
        self.servers_edit.textEdited.connect(self._explain)

    def prepare(self) -> None:
        """Before showing: the knob in use is the axis offered first time; untouched values follow the request."""
        if not self._axis_chosen:
            knob = DENOISE if self.session.request.start_at_step is None else START
            self.axis_combo.setCurrentIndex(self.axis_combo.findData(knob))
            self._axis_chosen = True
        if not self._edited:
            self._fill_defaults()
        self._form.setRowVisible(self.servers_edit, self.session.model.on_server)
        self._explain()

    def choice(self) -> tuple[str | None, tuple, int]:
        """(axis, values, seeds) as chosen; SketchpadError in one line for values that make no sweep."""
        axis = self.axis_combo.currentData()
        values = parse_values(axis, self.values_edit.text()) if axis is not None else ()
        return axis, values, self.seeds_spin.value()

    def servers(self) -> tuple[str, ...]:
        """The other servers listed (none unless the model runs on a server); SketchpadError in one
        line for an address that is no server address."""
        if not self.session.model.on_server:
            return ()
        listed = [item.strip() for item in self.servers_edit.text().split(",") if item.strip()]
        for url in listed:
            try:
                parse_server_url(url)
            except SketchpadError:
                raise SketchpadError(f"{display_address(url)!r} is no server address; give host:port, "
                                     "e.g. 127.0.0.1:8188") from None
        own = display_address(self.session.model.server_url)
        return tuple(url for url in dict.fromkeys(listed) if display_address(url) != own)

    def plan(self) -> SweepPlan:
        axis, values, seeds = self.choice()
        return plan_sweep(self.session.live_request(), axis, values or None, seeds)

    # ---- reactions ------------------------------------------------------------------------
    def _axis_changed(self, *_) -> None:
        self._edited = False
        self._fill_defaults()
        self._explain()

    def _typed(self, *_) -> None:
        self._edited = True
        self._explain()

    def _fill_defaults(self) -> None:
        axis = self.axis_combo.currentData()
        self.values_edit.setEnabled(axis is not None)
        if axis is None:
            self.values_edit.clear()
            self.seeds_spin.setValue(max(self.seeds_spin.value(), 4))  # a batch of one is no comparison
            return
        values = default_values(axis, self.session.request.steps)
        self.values_edit.setText(", ".join(value_text(axis, v).removeprefix("start ") for v in values))

    def _explain(self, *_) -> None:
        """What the choice makes, or why it makes nothing: Run only for a sweep that can run."""
        try:
            plan = self.plan()
            servers = self.servers()
        except SketchpadError as error:
            self.summary.setText(str(error))
            self.summary.setStyleSheet(f"color: {ERROR_COLOR};")
            self.run_button.setEnabled(False)
            return
        self.summary.setStyleSheet("")
        shared = f"; {len(servers) + 1} servers share them" if servers else ""
        self.summary.setText(describe_plan(plan, random_seed=self.session.live_request().seed == RANDOM_SEED) + shared)
        self.run_button.setEnabled(True)


def describe_plan(plan: SweepPlan, random_seed: bool = False) -> str:
    """"5 pictures at seed 7; 0.834 and 0.843 run the same steps: one picture"."""
    count = len(plan.cells)
    if random_seed:
        seeds = "a new random seed" if len(plan.seeds) == 1 else f"{len(plan.seeds)} seeds from a new random one"
    else:
        seeds = f"seed {plan.seeds[0]}" if len(plan.seeds) == 1 else f"seeds {plan.seeds[0]}–{plan.seeds[-1]}"
    text = f"{count} picture{'s' if count > 1 else ''} at {seeds}"
    for cell in {cell.values: cell for cell in plan.merged}.values():
        same = " and ".join(value_text(plan.axis, value) for value in cell.values)
        text += f"; {same} run the same steps: one picture"
    return text
