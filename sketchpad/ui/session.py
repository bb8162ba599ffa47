"""The window's one observable state: what is asked, what runs, what is shown, what is kept.

The request the person is editing lives here and nowhere else: the panel edits it, and Generate,
Live, autosave and the settings read it. So do the last seed used, the model (where it runs, its
state, what it is called once loaded), the run in flight, the shown result, the history, the
contact sheet of the last sweep (sheet_state.py) and the one problem on show, which goes when its
cause does. A sweep is a run too: while it runs, `run` is it, counted over all its cells. Widgets
read it and listen to its signals; the
worker (through `bind_worker`) and the window's actions change it through its methods.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ..core.backend import Waiting
from ..core.errors import Failure, FailureKind, ServerState
from ..core.params import RANDOM_SEED, GenerationParams
from ..core.picture_key import PictureKey
from ..core.registry import DEFAULT_BACKEND, default_output_dir
from ..core.schedule import plan_steps
from ..core.storage import ResultInfo
from ..core.sweep import Cell, SweepPlan
from .history import History, HistoryEntry, shorten, thumbnail
from .sheet_state import Running, SheetState
from .session_state import (SERVER_BACKEND, Cause, ModelState, ModelStatus, Problem, Run, RunStatus,
                            displayed_step)

STATUS_ERROR_CHARS = 40  # of an error in the one state line
TINY_MODEL_DIR = "~/sketchpad-tiny"  # the README's name for it, too
NO_MODEL_HELP = (
    "Choose a model with Choose… beside Model, above the prompt: a Stable Diffusion 1.5 folder, a "
    ".safetensors file or a Hugging Face id. To try everything without a download, write the tiny test "
    f"model with `python -m sketchpad.tiny_model {TINY_MODEL_DIR}` and choose that folder. Or paint on a "
    "GPU server: set Runs on to ComfyUI server."
)
SERVER_HELP = ("Start the server (or check its address) and press Connect, or press “Use this computer” "
               "to paint here.")
MISSING_CHECKPOINT_HELP = "Pick one of the server's checkpoints from the Model list above."


class Session(QObject):
    request_changed = Signal(object)  # GenerationParams: every change, from the editor or from outside
    # (also when the editor's values stop making a request: `request` is then the last one they made)
    request_loaded = Signal(object)  # GenerationParams from outside the editor (a PNG, history, recovery)
    last_seed_changed = Signal(object)  # int: a seed may exceed 32 bits
    model_changed = Signal(object)  # ModelState
    model_load_requested = Signal(str, str, str)  # model, device, server URL ("" = this computer): load it
    run_changed = Signal(object)  # Run
    step_shown = Signal(int, int, QImage)  # step, total (as displayed), preview (may be null)
    shown_changed = Signal(object)  # HistoryEntry or None
    replay_changed = Signal(object)  # the step the scrubber shows instead of the result, or None
    history_added = Signal(object)  # HistoryEntry (newest)
    history_removed = Signal(object)  # HistoryEntry dropped to stay bounded, or a draft replaced
    status_changed = Signal(str)  # status_text()
    output_dir_changed = Signal(object)  # Path
    message = Signal(str)  # a passing notice (the status bar)
    problem_changed = Signal(str)  # the error on show, "" once its cause is gone
    sheet_changed = Signal(object)  # SheetState: a sweep started, a cell stepped or finished, the sweep ended
    embed_sketch_changed = Signal(bool)

    def __init__(self, output_dir: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._model = ModelState()
        self._request = GenerationParams(prompt="")
        self._request_problem = ""  # why the editor's values make no request now ("" when they do)
        self._last_seed: int | None = None
        self._run = Run()
        self._shown: HistoryEntry | None = None
        self._partial_on_show = False  # a later run's steps cover the shown result
        self._replay_step: int | None = None
        self._history = History()
        self._sheet: SheetState | None = None
        self._embed_sketch = True
        self._problem: Problem | None = None
        self._output_dir = Path(output_dir) if output_dir else default_output_dir()
        self.last_folder: Path | None = None  # the last folder a file dialog was used in

    # ---- the request being edited --------------------------------------------------------
    @property
    def request(self) -> GenerationParams:
        return self._request

    @property
    def request_problem(self) -> str:
        return self._request_problem

    def edit_request(self, params: GenerationParams) -> None:
        """The editor (the panel) changed it: noted, not echoed back. A failed run's message goes:
        the request it was about has changed."""
        was_invalid, self._request_problem = bool(self._request_problem), ""
        self._clear_problem(Cause.REQUEST, Cause.RUN)
        if self._run.status is RunStatus.FAILED:
            self._set_run(Run(request_id=self._run.request_id))
        if params != self._request or was_invalid:
            self._request = params
            self.request_changed.emit(params)

    def request_invalid(self, problem: str) -> None:
        """The editor's values make no request now; Generate says why. An error already on show
        about the request follows the values."""
        self._request_problem = problem
        if self._problem is not None and self._problem.cause is Cause.REQUEST:
            self._set_problem(Cause.REQUEST, problem)
        self.request_changed.emit(self._request)  # Live tries it, and says why it cannot run

    def warn_request(self, text: str) -> None:
        """Something the request names will not work (a file a server lacks): said now, though a run
        may still be tried (the server may have it by then); it goes with the next edit or run."""
        self._set_problem(Cause.REQUEST, text)

    def check_request(self) -> bool:
        """Before a run: False, and the problem shown, when the values make no request."""
        if self._request_problem:
            self._set_problem(Cause.REQUEST, self._request_problem)
        return not self._request_problem

    def load_request(self, params: GenerationParams) -> None:
        """A request from outside the editor; the editor shows it (and writes back what it shows)."""
        self._request = params
        self._request_problem = ""
        self._clear_problem(Cause.REQUEST)
        self.request_loaded.emit(params)
        if self._request is params:  # the editor wrote nothing back: say it here
            self.request_changed.emit(params)

    def live_request(self) -> GenerationParams:
        """What Live runs: a random seed reuses the last run's, so turning the dial compares like with like."""
        if self._request.seed == RANDOM_SEED and self._last_seed is not None:
            return self._request.replace(seed=self._last_seed)
        return self._request

    @property
    def last_seed(self) -> int | None:
        """The seed the last finished run used."""
        return self._last_seed

    def note_last_seed(self, seed: int) -> None:
        if seed != self._last_seed:
            self._last_seed = seed
            self.last_seed_changed.emit(seed)

    # ---- model and backend ---------------------------------------------------------------
    @property
    def model(self) -> ModelState:
        return self._model

    def load_model(self, model: str | None = None, device: str | None = None, server_url: str | None = None) -> None:
        """Load a model; `server_url` switches to a ComfyUI server ("" back to this computer, None: keep).

        `model` is a checkpoint name when the choice is a server, this computer's model otherwise;
        the other one stays as it was."""
        if not self._run.active:
            self._run = Run()  # a finished run's "done" no longer describes the new model
        self._clear_problem(Cause.MODEL)
        self._set_model(**self._choice(model, device, server_url), status=ModelStatus.LOADING, message="",
                        failure=None, loaded_name="", loaded_device="")
        state = self._model
        self.model_load_requested.emit(state.chosen, state.device, state.server_url if state.on_server else "")

    def configure_model(self, model: str | None = None, device: str | None = None,
                        server_url: str | None = None) -> None:
        """Choose without loading (e.g. restored settings before start)."""
        self._set_model(**self._choice(model, device, server_url))

    def restore_model(self, **fields) -> None:
        """The remembered choice (ModelState fields; None: keep), without loading it."""
        fields = {name: value for name, value in fields.items() if value is not None}
        if fields.get("backend") == SERVER_BACKEND and not fields.get("server_url", self._model.server_url):
            fields["backend"] = DEFAULT_BACKEND  # a server backend with no address is this computer
        self._set_model(**fields)

    def _choice(self, model, device, server_url) -> dict:
        choice = {"device": device or self._model.device}
        if server_url is not None:
            url = server_url.strip()
            choice["backend"] = SERVER_BACKEND if url else DEFAULT_BACKEND
            if url:
                if url != self._model.server_url:  # another server: what it offers is not known yet
                    choice.update(checkpoints=(), loras=(), controlnets=())
                choice["server_url"] = url  # "" keeps the last server, to switch back to it later
        on_server = choice.get("backend", self._model.backend) == SERVER_BACKEND
        choice["server_state"] = ServerState.CONNECTING if on_server else None
        if model is not None:
            choice["server_model" if on_server else "model"] = model
        return choice

    def server_offers(self, checkpoints=None, loras=None, controlnets=None) -> None:
        """What the server has (None: not known anew), for the pickers to list."""
        changes = {name: tuple(value) for name, value in
                   (("checkpoints", checkpoints), ("loras", loras), ("controlnets", controlnets)) if value is not None}
        self._set_model(**changes)

    def server_state_changed(self, state: ServerState) -> None:
        """The client's connection state; a server back again takes its lost-server error with it."""
        if not self._model.on_server:
            return  # a late report from a server left behind
        self._set_model(server_state=state)
        if state is ServerState.READY and self._run.failure is not None and self._run.failure.server_gone:
            self._clear_problem(Cause.RUN)
            self._set_run(Run(request_id=self._run.request_id))

    def model_loading(self, message: str) -> None:
        self._set_model(status=ModelStatus.LOADING, message=message)

    def model_ready(self, name: str, device: str) -> None:
        server_state = ServerState.READY if self._model.on_server else None
        self._clear_problem(Cause.MODEL)
        self._set_model(status=ModelStatus.READY, message="", failure=None, loaded_name=name, loaded_device=device,
                        server_state=server_state)

    def model_failed(self, failure: Failure) -> None:
        changes = {}
        help_text = NO_MODEL_HELP
        if self._model.on_server:  # a server that answered but cannot run the choice is still there
            changes["server_state"] = _state_after(failure.kind)
            help_text = SERVER_HELP if failure.kind.server_gone else ""
            if failure.choices:  # up, but without that checkpoint: offer what it has
                changes["checkpoints"] = failure.choices
                help_text = MISSING_CHECKPOINT_HELP
        self._set_model(status=ModelStatus.FAILED, message=failure.message, failure=failure.kind, **changes)
        self._set_problem(Cause.MODEL, f"{failure.message}\n\n{help_text}".strip())

    def _set_model(self, **changes) -> None:
        self._model = replace(self._model, **changes)
        self.model_changed.emit(self._model)
        self._status_changed()

    def can_generate(self) -> bool:
        """A model is loaded or on its way (a request made while it loads waits for it)."""
        return self._model.status in (ModelStatus.READY, ModelStatus.LOADING)

    # ---- the run in flight ---------------------------------------------------------------
    @property
    def run(self) -> Run:
        return self._run

    def is_redundant(self, key: PictureKey | None) -> bool:
        """True when this request would make the picture already shown or already on its way (a
        draft request is also covered by its fully decoded picture)."""
        if key is None:
            return False
        if self._sheet is not None and self._sheet.active and self._run.request_id == self._sheet.request_id:
            return self._sheet.covers(key) or self.same_picture_as_shown(key)  # e.g. Live after a click on a cell
        if self._run.active:
            return self._run.key is not None and self._run.key.covers(key)
        return self.same_picture_as_shown(key) and not self._partial_on_show

    def same_picture_as_shown(self, key: PictureKey | None) -> bool:
        """The request would paint the picture on show (e.g. another denoise that runs the same steps)."""
        return key is not None and self._shown is not None and self._shown.key is not None and \
            self._shown.key.covers(key)

    def run_started(self, request_id: int, params: GenerationParams, key: PictureKey | None) -> None:
        self._clear_problem(Cause.RUN, Cause.REQUEST)
        self.set_replay_step(None)
        self._set_run(Run(request_id, params, key, RunStatus.GENERATING, 0, plan_steps(params).run_steps))

    def run_waiting(self, request_id: int, waiting: Waiting) -> None:
        if request_id == self._run.request_id and self._run.active and waiting != self._run.waiting:
            self._set_run(replace(self._run, waiting=waiting))

    def run_step(self, request_id: int, step: int, total: int, preview: QImage) -> None:
        run = self._run
        if request_id != run.request_id or not run.active:
            return
        shown = displayed_step(run.params, step, total)
        if shown is None:
            return
        self._partial_on_show = True
        self._set_run(replace(run, step=shown[0], total=shown[1], waiting=None))
        self.step_shown.emit(shown[0], shown[1], preview)

    def run_finished(self, request_id: int, image: QImage, info: ResultInfo, seconds: float,
                     path: Path | None = None, sketch: QImage | None = None) -> HistoryEntry | None:
        if request_id != self._run.request_id:
            return None
        entry = HistoryEntry(info, thumbnail(image), image, path, seconds, self._run.key, request_id, sketch)
        if self._model.on_server and self._model.server_state is not ServerState.READY:
            self._set_model(server_state=ServerState.READY)  # the server answered again
        self.note_last_seed(info.params.seed)
        self._set_run(replace(self._run, status=RunStatus.FINISHED, step=self._run.total, seconds=seconds,
                              waiting=None))
        self.add_to_history(entry)
        self.show(entry)
        return entry

    def take_outcome(self, outcome) -> HistoryEntry | None:
        """The worker's Outcome (request_id, image, info, seconds, and `archived`: its file, if kept)."""
        return self.run_finished(outcome.request_id, outcome.image, outcome.info, outcome.seconds,
                                 getattr(outcome, "archived", None), getattr(outcome, "sketch", None))

    def run_failed(self, request_id: int, failure: Failure) -> None:
        self._end_sheet(request_id, RunStatus.FAILED)
        if request_id != self._run.request_id:
            return
        if self._model.on_server and failure.kind.server_gone:  # an idle connection's loss shows only now
            self._set_model(server_state=_state_after(failure.kind))
        self._set_run(replace(self._run, status=RunStatus.FAILED, message=failure.message, failure=failure.kind,
                              waiting=None))
        self._set_problem(Cause.RUN, failure.message)

    def run_cancelled(self, request_id: int) -> None:
        self._end_sheet(request_id, RunStatus.CANCELLED)
        if request_id == self._run.request_id and self._run.active:
            self._set_run(replace(self._run, status=RunStatus.CANCELLED, waiting=None))

    # ---- a sweep and its contact sheet ---------------------------------------------------
    @property
    def sheet(self) -> SheetState | None:
        """The last sweep's sheet (it stays, with its finished cells, after a newer run)."""
        return self._sheet

    def sweep_started(self, request_id: int, plan: SweepPlan, keys: dict, sketch: QImage,
                      on_show: dict[Cell, HistoryEntry] | None = None) -> None:
        """A sweep posted as `request_id` (0: none was needed); `on_show`: cells whose picture was
        already on show, so they are part of the sheet without running again."""
        sheet = SheetState(plan, request_id, sketch, keys, dict(on_show or {}))
        self._sheet = sheet
        if request_id:
            self._clear_problem(Cause.RUN, Cause.REQUEST)
            self.set_replay_step(None)
            self._set_run(Run(request_id, plan.params, None, RunStatus.GENERATING, *sheet.progress()))
        else:
            sheet.status = RunStatus.FINISHED
        self.sheet_changed.emit(sheet)

    def sweep_step(self, request_id: int, cell: Cell, step: int, total: int, preview: QImage) -> None:
        sheet = self._sheet
        if sheet is None or sheet.request_id != request_id or not sheet.active:
            return
        shown = displayed_step(cell.params, step, total)
        if shown is None:
            return
        before = sheet.running.get(cell)
        kept = preview if not preview.isNull() or before is None else before.preview
        sheet.running[cell] = Running(shown, kept)
        self._sheet_progress(sheet)
        self.sheet_changed.emit(sheet)

    def sweep_cell_done(self, cell: Cell, outcome) -> HistoryEntry:
        """A finished cell (the worker's Outcome): an ordinary result in the history, and its place
        on the sheet filled, even when a newer request has begun meanwhile."""
        sheet = self._sheet
        ours = sheet is not None and sheet.request_id == outcome.request_id
        entry = HistoryEntry(outcome.info, thumbnail(outcome.image), outcome.image, outcome.archived, outcome.seconds,
                             sheet.keys.get(cell) if ours else None, outcome.request_id, outcome.sketch)
        self.note_last_seed(outcome.info.params.seed)
        self.add_to_history(entry)
        if ours:
            sheet.done[cell] = entry
            sheet.seconds += outcome.seconds
            sheet.running.pop(cell, None)
            self._sheet_progress(sheet)
            self.sheet_changed.emit(sheet)
        return entry

    def sweep_finished(self, request_id: int) -> None:
        self._end_sheet(request_id, RunStatus.FINISHED)
        if request_id == self._run.request_id and self._run.active:
            made, total = self._sheet.progress() if self._sheet is not None else (0, 0)
            self._set_run(replace(self._run, status=RunStatus.FINISHED, step=made, total=total, waiting=None,
                                  seconds=self._sheet.seconds if self._sheet is not None else 0.0))

    def take_cell(self, cell: Cell) -> HistoryEntry | None:
        """A finished cell picked on the sheet: its picture becomes the result on show and the request
        turns to its value (and its seed, unless the seed field is random: then Live reuses it)."""
        sheet = self._sheet
        entry = sheet.done.get(cell) if sheet is not None else None
        if entry is None:
            return None
        self.show(entry)  # first: the request's change below then finds its picture on show
        made = cell.params
        knob = {"strength": made.strength, "start_at_step": made.start_at_step} if sheet.plan.axis else {}
        if self._request.seed == RANDOM_SEED:
            self.note_last_seed(made.seed)
        else:
            knob["seed"] = made.seed
        if knob:
            self.load_request(self._request.replace(**knob))
        return entry

    def sweep_run(self) -> bool:
        """The run in flight, or the last one, is the sheet's sweep."""
        return self._sheet is not None and self._sheet.request_id == self._run.request_id != 0

    def _sheet_progress(self, sheet: SheetState) -> None:
        if self._run.request_id == sheet.request_id and self._run.active:
            made, total = sheet.progress()
            self._set_run(replace(self._run, step=made, total=total, waiting=None))

    def _end_sheet(self, request_id: int, status: RunStatus) -> None:
        sheet = self._sheet
        if sheet is not None and sheet.request_id == request_id and sheet.active:
            sheet.status = status
            sheet.running.clear()
            self.sheet_changed.emit(sheet)

    # ---- what saved pictures carry -------------------------------------------------------
    @property
    def embed_sketch(self) -> bool:
        """Saved and kept pictures carry the sketch they were made from."""
        return self._embed_sketch

    def set_embed_sketch(self, on: bool) -> None:
        if on != self._embed_sketch:
            self._embed_sketch = on
            self.embed_sketch_changed.emit(on)

    def _set_run(self, run: Run) -> None:
        self._run = run
        self.run_changed.emit(run)
        self._status_changed()

    # ---- what is shown -------------------------------------------------------------------
    @property
    def shown(self) -> HistoryEntry | None:
        """The newest finished result picked for show (it may be covered by a later run's steps)."""
        return self._shown

    @property
    def result_on_show(self) -> bool:
        """The shown result is what the preview shows (no later run's steps cover it)."""
        return self._shown is not None and not self._partial_on_show

    def show(self, entry: HistoryEntry | None) -> None:
        self._shown = entry
        self._partial_on_show = False
        self._replay_step = None
        self.shown_changed.emit(entry)

    @property
    def replay_step(self) -> int | None:
        return self._replay_step

    def set_replay_step(self, step: int | None) -> None:
        """The scrubber shows this step's preview instead of the result (None: the result)."""
        if step != self._replay_step:
            self._replay_step = step
            self.replay_changed.emit(step)

    # ---- history -------------------------------------------------------------------------
    def history(self) -> list[HistoryEntry]:
        """Newest first."""
        return self._history.entries()

    def set_archive(self, archive) -> None:
        """The ResultArchive keeping finished results: pictures released from memory are pinned there."""
        self._history.archive = archive

    @property
    def archive(self):
        return self._history.archive

    def load_history(self, entries: list[HistoryEntry]) -> None:
        """Results kept by earlier sessions (newest first), put into the history at start."""
        for entry in reversed(entries):
            if self._history.adopt(entry):
                self.add_to_history(entry)

    def add_to_history(self, entry: HistoryEntry) -> None:
        replaced, dropped = self._history.add(entry, self._shown)
        for gone in ([replaced] if replaced is not None else []) + dropped:
            self.history_removed.emit(gone)
        self.history_added.emit(entry)

    # ---- where results go ----------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return self._output_dir

    def set_output_dir(self, folder: Path) -> None:
        self._output_dir = Path(folder)
        self.output_dir_changed.emit(self._output_dir)

    def dialog_folder(self) -> Path:
        """Where a file dialog starts: the last folder used, else the output folder."""
        if self.last_folder is not None and self.last_folder.is_dir():
            return self.last_folder
        return self._output_dir

    def set_archive_budget(self, max_bytes: int) -> None:
        """The space kept results may take; the oldest go beyond it (never one the history only has there)."""
        if self.archive is not None:
            self.archive.set_max_bytes(max_bytes)

    # ---- what the person is told ---------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        """A passing notice; an error from an action stays on show until the next action works."""
        if error:
            self._set_problem(Cause.ACTION, text)
        else:
            self._clear_problem(Cause.ACTION)
        self.message.emit(text.splitlines()[0] if text else "")

    @property
    def problem(self) -> str:
        return self._problem.text if self._problem is not None else ""

    def dismiss_problem(self) -> None:
        self._clear_problem(*Cause)

    def _set_problem(self, cause: Cause, text: str) -> None:
        self._problem = Problem(cause, text)
        self.problem_changed.emit(text)

    def _clear_problem(self, *causes: Cause) -> None:
        if self._problem is not None and self._problem.cause in causes:
            self._problem = None
            self.problem_changed.emit("")

    # ---- the one state line --------------------------------------------------------------
    def status_text(self) -> str:
        model, run = self._model, self._run
        if model.status is ModelStatus.LOADING:
            return "connecting to the server…" if model.on_server else "loading model…"
        if model.status is ModelStatus.FAILED:
            if model.on_server and model.failure is not None and model.failure.server_gone:
                return f"error: server {model.server_state.value if model.server_state else 'unreachable'}"
            return "error: no checkpoint" if model.on_server else "error: no model"
        if self.sweep_run() and run.status is not RunStatus.FAILED:
            return self._sweep_text(self._sheet, run)
        if run.status is RunStatus.GENERATING:
            if run.step:
                return f"step {run.step} / {run.total}"
            return (run.waiting.text if run.waiting is not None else "") or "generating…"
        if run.status is RunStatus.FINISHED:
            return f"done · {run.seconds:.1f} s"
        if run.status is RunStatus.CANCELLED:
            return f"cancelled at step {run.step} / {run.total}" if run.step else "cancelled"
        if run.status is RunStatus.FAILED:
            # the whole message is in the error bar; this line only has to fit the progress bar
            return f"error: {shorten(run.message.splitlines()[0], STATUS_ERROR_CHARS) if run.message else 'failed'}"
        if model.status is ModelStatus.READY:
            return "ready"
        return "starting"

    @staticmethod
    def _sweep_text(sheet: SheetState, run: Run) -> str:
        pictures = len(sheet.plan.cells)
        if run.status is RunStatus.GENERATING:
            making = f"picture {len(sheet.done) + 1} / {pictures}"
            if len(sheet.running) == 1:
                (running,) = sheet.running.values()
                return f"{making} · step {running.step[0]} / {running.step[1]}"
            if sheet.running:  # several servers at once
                return f"pictures {len(sheet.done) + 1}–{len(sheet.done) + len(sheet.running)} / {pictures}"
            return (run.waiting.text if run.waiting is not None else "") or f"{making}…"
        if run.status is RunStatus.FINISHED:
            return f"done · {pictures} pictures · {run.seconds:.1f} s"
        return f"cancelled · {len(sheet.done)} of {pictures} pictures made"

    def _status_changed(self) -> None:
        self.status_changed.emit(self.status_text())


def _state_after(kind: FailureKind) -> ServerState:
    """The connection state a failure of this kind leaves behind."""
    if kind is FailureKind.NOT_ANSWERING:
        return ServerState.NOT_ANSWERING
    return ServerState.UNREACHABLE if kind.server_gone else ServerState.READY


def bind_worker(session: Session, worker) -> None:
    """The worker reports into the session; the session's load requests go to the worker."""
    session.model_load_requested.connect(lambda model, device, url: worker.load_model(model or None, device, url or None))
    worker.model_loading.connect(session.model_loading)
    worker.model_ready.connect(session.model_ready)
    worker.model_failed.connect(session.model_failed)
    worker.server_state.connect(session.server_state_changed)
    worker.server_offers.connect(session.server_offers)
    worker.step_preview.connect(session.run_step)
    worker.request_waiting.connect(session.run_waiting)
    worker.result_ready.connect(session.take_outcome)
    worker.request_failed.connect(session.run_failed)
    worker.request_cancelled.connect(session.run_cancelled)
    worker.cell_step.connect(session.sweep_step)
    worker.cell_ready.connect(session.sweep_cell_done)
    worker.sweep_finished.connect(session.sweep_finished)
    worker.notice.connect(session.say)
