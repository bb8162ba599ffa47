"""The window: canvas on the left, the picture forming on the right, controls beside it.

The window composes and wires; it decides nothing. The session (sketchpad.ui.session) holds the
state, the run controller (run_controller.py) decides what runs and when, the worker runs it on its
own thread and reports into the session. So the window stays responsive while the model loads and
runs, and every widget tells the same story.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, QTimer
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

from ..core.errors import ServerState, SketchpadError
from ..core.registry import app_state_dir
from ..core.result_archive import ResultArchive
from ..core.server_address import display_address
from ..core.server_files import server_file
from ..core.storage import ResultInfo, clean_leftovers, next_free_path, save_png, save_result
from .autosave import Recovered, SketchAutosaver
from .canvas import SketchCanvas
from .sd15_fit import family_for, native_size_for
from .file_actions import FileActions
from .generation_panel import GenerationPanel
from .contact_sheet_view import ResultsPane, SheetPanel
from .history_strip import HistoryStrip
from ..qimages import qimage_to_pil
from .kept_results import kept_entries
from .mask_options import CanvasMask, recovered_mask
from .preview_panel import PreviewPanel
from .server_lookup import CheckpointLookup
from .history import HistoryEntry
from .run_controller import RunController
from .session import Session, bind_worker
from .session_state import ModelState, ModelStatus, Run, RunStatus
from .settings_store import (archive_budget, params_from_dict, params_to_dict, restore_layout, restore_session,
                             save_layout, save_session)
from .tool_bar import ToolPanel
from .sweep_actions import SweepActions
from .window_menus import build_menus

READY_HINT = "Draw on the left, describe the picture, press Generate (Ctrl+Return)"


def server_line(model: ModelState) -> str:
    """The status bar's server fact: its address (never its credentials), device and state."""
    parts = [f"ComfyUI {display_address(model.server_url)}"]
    if model.loaded_device:
        parts.append(model.loaded_device)
    parts.append((model.server_state or ServerState.CONNECTING).value)
    return " · ".join(parts)


class MainWindow(QMainWindow):
    def __init__(self, worker, model=None, device=None, output_dir=None, settings: QSettings | None = None,
                 state_dir: Path | None = None, server: str | None = None, lookup_checkpoints=None):
        super().__init__()
        self.setWindowTitle("Sketchpad")
        self.worker = worker
        self.settings = settings or QSettings()
        self.session = Session(parent=self)
        self._quitting = False

        self.canvas = SketchCanvas()
        self.canvas_mask = CanvasMask(self.canvas, self)  # the mask a run carries: the canvas's, with its settings
        self.tools = ToolPanel(self.canvas, self.canvas_mask)
        self.preview = PreviewPanel()
        self.sheet = SheetPanel()
        self.results = ResultsPane(self.preview, self.sheet)  # the single picture, or the last sweep's sheet
        self.panel = GenerationPanel(session=self.session)
        self.history = HistoryStrip()
        self.files = FileActions(self.session, self.canvas, self)
        self.server_lookup = CheckpointLookup(lookup_checkpoints, self)  # the app hands in the client's
        self._model_said: tuple | None = None  # the model state the preview last spoke of
        self._run_begun = 0  # the run whose start the preview has shown
        self.runs = RunController(self.session, worker, self.canvas.image, self.panel.finish_editing, parent=self,
                                  mask=self.canvas_mask.spec)
        self._model_remembered: tuple | None = None  # the model choice last written to settings
        self.sweeps = SweepActions(self.session, self.runs, self.files, self.results, self.sheet, self)
        self._build_layout()
        self._build_status_bar()
        self.actions = build_menus(self, self.session, self.files, self.canvas, self.panel, self.generate,
                                   self.cancel, self.tools.mask_row.edit_actions, sweep=self.sweeps.ask,
                                   save_sheet=self.sweeps.save_sheet)
        self.setAcceptDrops(True)
        self._bind_widgets()
        self._bind_session()
        bind_worker(self.session, worker)

        state = Path(state_dir or app_state_dir())
        restore_session(self.settings, self.session, model, device, output_dir, server)
        self.canvas_mask.restore(self.settings)
        self.sweeps.restore(self.settings)
        self._canvas_follows_model(self.session.model)
        self._open_archive(state / "results")
        # each window its own recovery slot: the drawing and the request it was made for
        self.autosaver = SketchAutosaver(self.canvas, state, session=self._recovery_state, parent=self)
        self.session.request_changed.connect(self.autosaver.mark_changed)
        self.canvas_mask.options_changed.connect(self.autosaver.mark_changed)
        self._layout_restored = restore_layout(self.settings, self, self.splitter, self.panel)
        self._show_model(self.session.model)
        self._show_status(self.session.status_text())

    # ---- building ------------------------------------------------------------------------
    def _build_layout(self) -> None:
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(self.tools)
        column.addWidget(self.canvas, 1)
        results = QWidget()  # the strip under the picture, not under the controls: they keep the height
        stack = QVBoxLayout(results)
        stack.setContentsMargins(0, 0, 0, 0)
        stack.addWidget(self.results, 1)
        stack.addWidget(self.history)
        controls = QScrollArea()
        controls.setWidgetResizable(True)
        controls.setWidget(self.panel)
        controls.setMinimumWidth(self.panel.minimumSizeHint().width() + 24)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for widget, stretch in ((left, 3), (results, 3), (controls, 0)):
            self.splitter.addWidget(widget)
            self.splitter.setStretchFactor(self.splitter.count() - 1, stretch)
        self.splitter.setChildrenCollapsible(False)
        self._layout_restored = False
        self.setCentralWidget(self.splitter)
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
        # The run's state is said once, by the panel's progress bar; the status bar holds passing
        # messages on the left and facts on the right.
        self.canvas_size_label = QLabel()
        self.model_label = QLabel()
        self.device_label = QLabel()
        bar = self.statusBar()
        for label in (self.canvas_size_label, self.model_label, self.device_label):
            bar.addPermanentWidget(label)
        self._show_canvas_size()

    def _bind_widgets(self) -> None:
        panel, session = self.panel, self.session
        panel.generate_requested.connect(self.generate)
        panel.cancel_requested.connect(self.cancel)
        panel.model_chosen.connect(self.load_model)
        panel.backend_picker.local_chosen.connect(lambda: self.session.load_model(server_url=""))
        panel.backend_picker.server_chosen.connect(self.choose_server)
        self.server_lookup.answered.connect(self._server_answered)
        panel.live_changed.connect(self.runs.set_live)
        self.runs.set_live(panel.is_live())
        self.runs.same_picture_changed.connect(panel.show_same_picture)
        self.canvas.content_changed.connect(self.runs.sketch_changed)  # strokes, undo, clear, paste, open, resize
        self.canvas_mask.changed.connect(self.runs.changed)  # the mask or its settings
        self.canvas.content_changed.connect(self._show_canvas_size)
        self.history.entry_selected.connect(session.show)
        self.history.restore_requested.connect(lambda entry: session.load_request(entry.info.params))
        self.history.use_as_sketch_requested.connect(
            lambda entry: self.files.use_image_as_sketch(entry.picture(), "Using that result as the sketch"))
        self.preview.scrubber.valueChanged.connect(self._scrubbed)

    def _bind_session(self) -> None:
        s = self.session
        s.model_changed.connect(self._show_model)
        s.request_loaded.connect(self.canvas_mask.take_settings_of)
        s.model_changed.connect(self._remember_model)
        s.run_changed.connect(self._show_run)
        s.status_changed.connect(self._show_status)
        s.step_shown.connect(self._show_step)
        s.shown_changed.connect(self._show_entry)
        s.history_added.connect(lambda entry: self.history.add_entry(entry.thumbnail, entry, entry.caption()))
        s.history_removed.connect(self.history.remove)
        s.history_added.connect(lambda _entry: self.panel.presets.refresh_readiness())  # a run may have fetched it
        s.message.connect(self._show_notice)
        s.problem_changed.connect(self._show_problem)
        self.preview.dismiss_button.clicked.connect(s.dismiss_problem)
        s.embed_sketch_changed.connect(self.worker.set_embed_sketch)

    def _open_archive(self, folder: Path) -> None:
        """Every finished result is kept there as it finishes; the newest come back into the history."""
        try:
            archive = ResultArchive(folder, archive_budget(self.settings))
        except SketchpadError as error:
            self.report(f"Results will not be kept between sessions: {error}")
            return
        self.session.set_archive(archive)
        self.worker.set_archive(archive)
        self.session.load_history(kept_entries(archive))

    def _recovery_state(self) -> dict:
        return {"params": params_to_dict(self.session.request), "mask_options": self.canvas_mask.options.to_dict()}

    def start(self) -> None:
        """Tidy the output folder, offer back what crashed windows left, then load the model."""
        clean_leftovers(self.session.output_dir)  # temp files of saves cut short, ours only
        self._offer_recovery()
        self.session.load_model()

    def _offer_recovery(self) -> None:
        """Each drawing a killed window left is offered once, with its prompt and settings. The
        first one taken goes on the canvas; any further ones are saved into the output folder as
        PNGs that restore their settings when opened."""
        on_canvas = False
        for recovered in self.autosaver.orphans():
            params = params_from_dict((recovered.session or {}).get("params") or {})
            if self.ask_recover(recovered, params):
                if not on_canvas:
                    self.canvas.set_image(recovered.image, mask=recovered.mask)
                    self.canvas_mask.restore_dict((recovered.session or {}).get("mask_options"))
                    if params is not None:
                        self.session.load_request(params)
                    on_canvas = True
                    kept = " with its mask" if recovered.mask is not None else ""
                    self.report(f"Restored the drawing{kept}" + (" and its prompt" if params else "") +
                                " from a window that did not close properly")
                else:
                    self._save_recovered(recovered, params)
            self.autosaver.take(recovered)

    def _save_recovered(self, recovered: Recovered, params) -> None:
        picture = qimage_to_pil(recovered.image)
        try:
            target = next_free_path(self.session.output_dir, "recovered")
            if params is None:
                path = save_png(picture, target, {})
            else:  # its settings and its mask travel in the PNG, as a result's do
                options = (recovered.session or {}).get("mask_options")
                params = params.replace(mask=recovered_mask(recovered.mask, options))
                path = save_result(picture, ResultInfo(params, *picture.size, "", params.scheduler or ""), target)
        except SketchpadError as error:
            self.report(f"Could not keep a recovered drawing: {error}", error=True)
            return
        self.report(f"Another recovered drawing was saved as {path}; open it to continue")

    def ask_recover(self, recovered: Recovered, params) -> bool:
        prompt = f"\n\nPrompt: {params.prompt}" if params is not None and params.prompt.strip() else ""
        answer = QMessageBox.question(
            self, "Restore drawing?",
            f"A Sketchpad window did not close properly. Restore the drawing it kept?{prompt}")
        return answer == QMessageBox.StandardButton.Yes

    def load_model(self, model: str | None, device: str | None = None) -> None:
        self.session.load_model(model, device)

    def choose_server(self, url: str) -> None:
        """Ask the server for its checkpoints (off the GUI thread), then load one: the remembered
        one if it has it, else its first. A server that does not answer is one line, and the
        current backend stays."""
        self.statusBar().showMessage(f"Asking {display_address(url)} for its checkpoints…")
        self.server_lookup.ask(url)

    def _server_answered(self, url: str, names: list, problem: str) -> None:
        self.statusBar().clearMessage()  # the question is answered either way
        if problem:
            self.report(problem, error=True)
            self._show_model(self.session.model)  # the picker goes back to what is in use
            return
        if not names:
            self.report("that ComfyUI server has no checkpoints: put one in its models/checkpoints folder",
                        error=True)
            self._show_model(self.session.model)
            return
        wanted = self.session.model.server_model
        chosen = server_file(wanted, names) if wanted else None
        if chosen is None:  # picked for the person: say which, and why
            chosen = names[0]
            lacks = f"it has no {wanted!r}; " if wanted else ""
            self.report(f"Connected to {display_address(url)}: {lacks}using its checkpoint {chosen}")
        self.session.load_model(chosen, server_url=url)
        self.session.server_offers(checkpoints=names)

    # ---- generating ----------------------------------------------------------------------
    def generate(self, live: bool = False) -> int:
        """Post the session's request (see RunController.generate); its id, or 0 when nothing was sent."""
        return self.runs.generate(live)

    def cancel(self) -> None:
        self.runs.cancel()

    def _scrubbed(self, position: int) -> None:
        kept = len(self.preview.step_images())
        self.session.set_replay_step(position if self.preview.scrubber.isEnabled() and position <= kept else None)

    # ---- showing the session -------------------------------------------------------------
    def _show_step(self, step: int, total: int, image: QImage) -> None:
        if step == 1:
            self.preview.begin_run(total)
        self.preview.add_step(step, total, image)

    def _show_run(self, run: Run) -> None:
        self.panel.set_busy(run.active)
        if self.session.sweep_run():
            return  # a sweep's steps show on its sheet; the picture keeps the result on show
        if run.active and run.step == 0:
            if run.request_id != self._run_begun:  # a new run: the last one's marks go at once
                self._run_begun = run.request_id
                self.preview.begin_run(run.total)
                self.results.show_picture()  # its steps show here, over the sheet
            if run.waiting is not None:  # why no step has come yet, under the picture too
                self.preview.show_caption(run.waiting.text or f"step 0 / {run.total}")
        if run.status is RunStatus.CANCELLED and run.step:
            self.preview.mark_cancelled(run.step, run.total)

    def _show_status(self, text: str) -> None:
        run = self.session.run
        step, total = (run.step, run.total) if run.active else (0, 0)
        self.panel.set_progress(step, total, text)

    def _show_entry(self, entry: HistoryEntry | None) -> None:
        if entry is None:
            return
        run = self.session.run
        fresh = run.status is RunStatus.FINISHED and entry.request_id == run.request_id
        caption = f"result · {entry.caption()}" + (f" · {entry.seconds:.1f} s" if fresh else "")
        if not fresh:
            self.preview.begin_run(0)  # a picked history entry has no steps to scrub
        self.preview.show_result(entry.picture(), caption)

    def _show_model(self, model: ModelState) -> None:
        if model.on_server:
            self.panel.model_picker.show_checkpoints(model.checkpoints, model.loaded_name or model.server_model)
        else:
            self.panel.model_picker.show_local(model.model)
        self.panel.backend_picker.show_state(model)
        self.panel.generate_button.setEnabled(self.session.can_generate())
        self.model_label.setText(f"Model: {model.display_name}")
        self.device_label.setText(server_line(model) if model.on_server
                                  else f"Device: {model.loaded_device or model.device}")
        # only a change of the model's own state speaks in the preview: a server's connection going
        # and coming back must not overwrite the caption of a run or a result (its failure is the
        # session's problem on show)
        said, self._model_said = self._model_said, (model.status, model.message)
        if model.status is ModelStatus.LOADING:
            self.preview.show_caption(model.message or f"Loading {model.display_name}…")
        elif said == self._model_said:
            return
        elif model.status is ModelStatus.READY:
            self.preview.show_caption(READY_HINT)
            self._canvas_follows_model(model)
            self.panel.presets.set_model_family(*family_for(model))
        elif model.status is ModelStatus.FAILED:
            self.preview.show_caption("")  # the last loading line no longer applies

    def _canvas_follows_model(self, model: ModelState) -> None:
        """A page nobody has touched yet takes the model's native size (1024 x 1024 for SDXL), with
        nothing to undo; a drawing, an opened picture or a chosen size stays as it is."""
        side = native_size_for(model)
        if self.canvas.undo_stack().count() == 0 and self.canvas.canvas_size() != QSize(side, side):
            self.canvas.resize_canvas(side, side)
            self.canvas.undo_stack().clear()

    def _remember_model(self, model: ModelState) -> None:
        """A model or server that loads is written to the settings at once, so a crash or a kill
        (which the recovered drawing survives) does not send the next start back to another one."""
        choice = (model.backend, model.server_url, model.server_model, model.model, model.device)
        if model.status is ModelStatus.READY and choice != self._model_remembered:
            self._model_remembered = choice
            save_session(self.settings, self.session)
            self.settings.sync()  # on disk now, not when Qt gets round to it

    def _show_canvas_size(self) -> None:
        size = self.canvas.canvas_size()
        self.canvas_size_label.setText(f"Canvas {size.width()} × {size.height()}")

    def state_text(self) -> str:
        """The one line that says what is going on (shown by the panel's progress bar)."""
        return self.panel.progress_bar.text()

    # ---- feedback ------------------------------------------------------------------------
    def report(self, message: str, error: bool = False) -> None:
        self.session.say(message, error)

    def _show_notice(self, line: str) -> None:
        self.statusBar().showMessage(line, 5000)

    def _show_problem(self, text: str) -> None:
        self.preview.show_error(text)
        if text:
            self.statusBar().showMessage(text.splitlines()[0], 8000)

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
        self.runs.stop_timers()
        save_session(self.settings, self.session)
        self.canvas_mask.save(self.settings)
        self.sweeps.save(self.settings)
        save_layout(self.settings, self, self.splitter, self.panel)
        self.worker.stop()  # leaves within one step; never a short timeout
        self.autosaver.discard()
        event.accept()

    def confirm_discard(self) -> bool:
        """Ask before losing unsaved drawing; True to go ahead and close."""
        box = self.discard_question()
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

    def discard_question(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved drawing", "The sketch has unsaved changes.",
                          parent=self)
        if self.session.run.active and self.session.model.on_server:
            box.setInformativeText("A picture is being made on the ComfyUI server: closing stops it there.")
        return box

