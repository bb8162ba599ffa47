"""The window: canvas on the left, the picture forming on the right, controls beside it.

All generation goes through the worker thread; this class only posts requests and shows what
comes back, so the window stays responsive while the model loads and runs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.sources import DEFAULT_MODEL
from .autosave import SketchAutosaver
from .canvas import SketchCanvas
from .file_actions import FileActions, describe
from .generation_panel import GenerationPanel
from .history_strip import HistoryStrip
from .preview_panel import PreviewPanel
from .settings_store import restore_settings, save_settings
from .tool_bar import ToolPanel
from .window_menus import build_menus

LIVE_DEBOUNCE_MS = 120
NO_MODEL_HELP = (
    "Choose a model with File ▸ Choose model folder… or File ▸ Choose model file…, "
    "or try the tiny test model: python -m sketchpad.tiny_model ~/sketchpad-tiny, then "
    "python main.py --model ~/sketchpad-tiny"
)


class MainWindow(QMainWindow):
    def __init__(self, worker, model=None, device=None, output_dir=None, settings: QSettings | None = None,
                 state_dir: Path | None = None):
        super().__init__()
        self.setWindowTitle("Sketchpad")
        self.worker = worker
        self.settings = settings or QSettings()
        self.model = model or self.settings.value("model", DEFAULT_MODEL)
        self.device = device or self.settings.value("device", "auto")
        self.output_dir = Path(output_dir or self.settings.value("output_dir", "") or _default_output_dir())
        self._current_request = 0
        self._outcomes: dict[int, object] = {}
        self._shown = None  # the Outcome on show
        self._quitting = False

        self.canvas = SketchCanvas()
        self.tools = ToolPanel(self.canvas)
        self.preview = PreviewPanel()
        self.panel = GenerationPanel()
        self.history = HistoryStrip()
        self.files = FileActions(self)
        self._build_layout()
        self._build_status_bar()
        self.actions = build_menus(self)
        self.setAcceptDrops(True)

        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_DEBOUNCE_MS)
        self._live_timer.timeout.connect(lambda: self.generate(live=True))
        self.panel.generate_requested.connect(self.generate)
        self.panel.cancel_requested.connect(self.cancel)
        self.panel.params_changed.connect(self._schedule_live)
        self.canvas.stroke_finished.connect(self._schedule_live)
        self.history.entry_selected.connect(self.show_outcome)
        self.history.restore_requested.connect(lambda outcome: self.panel.set_params(outcome.info.params))
        self.history.use_as_sketch_requested.connect(
            lambda outcome: self.files.use_image_as_sketch(outcome.image, "Using that result as the sketch")
        )
        self._connect_worker()

        state = Path(state_dir or QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
        self.autosaver = SketchAutosaver(self.canvas, state / "autosave.png", parent=self)
        restore_settings(self)

    # ---- building ------------------------------------------------------------------------
    def _build_layout(self) -> None:
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(self.tools)
        column.addWidget(self.canvas, 1)
        controls = QScrollArea()
        controls.setWidgetResizable(True)
        controls.setWidget(self.panel)
        controls.setMinimumWidth(self.panel.minimumSizeHint().width() + 24)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for widget, stretch in ((left, 3), (self.preview, 3), (controls, 0)):
            self.splitter.addWidget(widget)
            self.splitter.setStretchFactor(self.splitter.count() - 1, stretch)
        self.splitter.setChildrenCollapsible(False)
        self._layout_restored = False
        body = QWidget()
        rows = QVBoxLayout(body)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addWidget(self.splitter, 1)
        rows.addWidget(self.history)
        self.setCentralWidget(body)
        self.resize(1280, 800)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._layout_restored:  # without a saved layout: sketch and picture equally large
            self._layout_restored = True
            QTimer.singleShot(0, self._equalise_panes)  # once the window has its real size

    def _equalise_panes(self) -> None:
        controls = self.splitter.widget(2).minimumWidth()
        half = max(200, (self.splitter.width() - controls) // 2)
        self.splitter.setSizes([half, half, controls])

    def _build_status_bar(self) -> None:
        self.model_label = QLabel()
        self.device_label = QLabel()
        self.state_label = QLabel("starting")
        bar = self.statusBar()
        bar.addWidget(self.state_label, 1)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.device_label)

    def _connect_worker(self) -> None:
        w = self.worker
        w.model_loading.connect(self._on_model_loading)
        w.model_ready.connect(self._on_model_ready)
        w.model_failed.connect(self._on_model_failed)
        w.step_preview.connect(self._on_step)
        w.result_ready.connect(self._on_result)
        w.request_failed.connect(self._on_request_failed)
        w.request_cancelled.connect(self._on_cancelled)
        w.notice.connect(lambda text: self.report(text))

    def start(self) -> None:
        """Offer back a crashed session's drawing, then load the model in the worker."""
        recovered = self.autosaver.recoverable()
        if recovered is not None and self.ask_recover():
            self.canvas.set_image(recovered)
            self.report("Restored the drawing from your last session")
        self.load_model(self.model, self.device)

    def ask_recover(self) -> bool:
        answer = QMessageBox.question(
            self, "Restore drawing?", "Sketchpad did not close properly last time. Restore the drawing it kept?"
        )
        return answer == QMessageBox.StandardButton.Yes

    def load_model(self, model: str | None, device: str | None = None) -> None:
        self.model, self.device = model or DEFAULT_MODEL, device or self.device
        self.model_label.setText(f"Model: {Path(self.model).name or self.model}")
        self.device_label.setText(f"Device: {self.device}")
        self._set_state("loading model…")
        self.preview.show_message(f"Loading {self.model}…")
        self.worker.load_model(self.model, self.device)

    # ---- generating ----------------------------------------------------------------------
    def generate(self, live: bool = False) -> int:
        # a request made while the model loads simply waits for it in the worker
        try:
            params = self.panel.params(for_live=live)
        except Exception as error:  # the panel validates; say what is wrong and keep going
            self.report(str(error), error=True)
            return 0
        self._current_request = self.worker.request(params, self.canvas.image())
        self.panel.set_busy(True)
        self._set_state("generating…")
        return self._current_request

    def cancel(self) -> None:
        self._live_timer.stop()
        self.worker.cancel()

    def _schedule_live(self) -> None:
        if self.panel.is_live():
            self._live_timer.start()

    def _on_step(self, request_id: int, step: int, total: int, image: QImage) -> None:
        if request_id != self._current_request:
            return
        if step == 1:
            self.preview.begin_run(total)
        self.preview.add_step(step, total, image)
        self.panel.set_progress(step, total)
        self._set_state(f"generating step {step} of {total}")

    def _on_result(self, outcome) -> None:
        if outcome.request_id != self._current_request:
            return
        self._outcomes[outcome.request_id] = outcome
        self.panel.set_busy(False)
        self.panel.set_used_seed(outcome.info.params.seed)
        self.history.add_entry(outcome.image, outcome, describe(outcome.info))
        self.show_outcome(outcome, fresh=True)
        self._set_state(f"ready · {outcome.seconds:.1f} s")

    def show_outcome(self, outcome, fresh: bool = False) -> None:
        self._shown = outcome
        caption = f"result · {describe(outcome.info)}" + (f" · {outcome.seconds:.1f} s" if fresh else "")
        if not fresh:
            self.preview.begin_run(0)  # a picked history entry has no steps to scrub
        self.preview.show_result(outcome.image, caption)

    def shown_outcome(self):
        return self._shown

    def _on_request_failed(self, request_id: int, message: str) -> None:
        if request_id == self._current_request:
            self.panel.set_busy(False)
            self.report(message, error=True)

    def _on_cancelled(self, request_id: int) -> None:
        if request_id == self._current_request:
            self.panel.set_busy(False)
            self._set_state("cancelled")

    def _on_model_loading(self, message: str) -> None:
        self._set_state("loading model…")
        self.preview.show_message(message)

    def _on_model_ready(self, name: str, device: str) -> None:
        self.model_label.setText(f"Model: {name}")
        self.device_label.setText(f"Device: {device}")
        self._set_state("ready")
        self.preview.show_message("Draw on the left, describe the picture, press Generate (Ctrl+Return)")

    def _on_model_failed(self, message: str) -> None:
        self._set_state("error: no model")
        self.preview.show_message(f"{message}\n\n{NO_MODEL_HELP}", error=True)

    # ---- feedback ------------------------------------------------------------------------
    def report(self, message: str, error: bool = False) -> None:
        if error:
            self.preview.show_message(message, error=True)
            self._set_state(f"error: {message.splitlines()[0]}")
        else:
            self.statusBar().showMessage(message, 5000)

    def _set_state(self, text: str) -> None:
        self.state_label.setText(text)

    # ---- drag and drop -------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        local = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        if local:
            self.files.open_sketch(Path(local[0]))
        elif mime.hasImage():
            self.files.use_image_as_sketch(QImage(mime.imageData()), "Dropped picture is the sketch")
        event.acceptProposedAction()

    # ---- closing -------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self.canvas.is_modified() and not self._quitting and not self.confirm_discard():
            event.ignore()
            return
        self._live_timer.stop()
        save_settings(self)
        self.worker.stop()  # leaves within one step; never a short timeout
        self.autosaver.discard()
        event.accept()

    def confirm_discard(self) -> bool:
        """Ask before losing unsaved drawing; True to go ahead and close."""
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved drawing", "The sketch has unsaved changes.",
                          parent=self)
        save = box.addButton("Save sketch…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Close without saving", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is cancel:
            return False
        if box.clickedButton() is save:
            self.files.save_sketch_dialog()
            return not self.canvas.is_modified()
        return True


def _default_output_dir() -> Path:
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return Path(pictures or Path.home() / "Pictures") / "Sketchpad"
