"""The window's one observable state: what is asked, what runs, what is shown, what is kept.

Widgets read it and listen to its signals; the worker (through `bind_worker`) and the window's
actions change it through its methods. Nothing else holds a copy: there is one current run, one
shown result, one history, one model/backend state, and `status_text()` says them in one line.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

from ..core.params import RANDOM_SEED, GenerationParams
from ..core.registry import DEFAULT_BACKEND, default_output_dir
from ..core.schedule import plan_steps
from ..core.sources import DEFAULT_MODEL
from ..core.storage import ResultInfo

SERVER_BACKEND = "comfyui"
# what the client reports (ComfyBackend.on_state) -> what the status bar says
_SERVER_STATES = {"connected": "ready", "reconnecting": "reconnecting", "offline": "unreachable"}
MAX_HISTORY = 100  # entries in the strip
# Full-size pictures kept in memory (the newest ones); older entries keep a thumbnail and, when
# they were archived, their file. 48 MiB is ~60 results at 512x512, so a Live session stays bounded.
MAX_HISTORY_PIXEL_BYTES = 48 * 1024 * 1024
THUMB_SIDE = 96
PROMPT_IN_CAPTION = 40  # characters of the prompt a caption shows
STATUS_ERROR_CHARS = 40  # of an error in the one state line


class ModelStatus(enum.Enum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelState:
    """Which model runs where: this computer's model and a server's checkpoint are kept apart, so
    switching back to this computer loads its own model again."""

    model: str = DEFAULT_MODEL  # this computer's model
    device: str = "auto"
    backend: str = DEFAULT_BACKEND
    server_url: str = ""  # as the person gave it (may carry credentials: show display_address only)
    server_model: str = ""  # the server's checkpoint; "" for its first
    server_state: str = ""  # connecting / ready / reconnecting / unreachable ("" on this computer)
    checkpoints: tuple[str, ...] = ()  # what the server offers, once known
    status: ModelStatus = ModelStatus.UNLOADED
    message: str = ""  # the loading progress line, or why it failed
    loaded_name: str = ""  # as the backend names it once ready
    loaded_device: str = ""

    @property
    def on_server(self) -> bool:
        return self.backend == SERVER_BACKEND and bool(self.server_url)

    @property
    def chosen(self) -> str:
        """The model the chosen backend loads: the checkpoint on a server, else the local model."""
        return self.server_model if self.on_server else self.model

    @property
    def display_name(self) -> str:
        if self.loaded_name:
            return self.loaded_name
        if self.on_server:
            return self.server_model or "the server's first checkpoint"
        return Path(self.model).name or self.model


class RunStatus(enum.Enum):
    IDLE = "idle"
    GENERATING = "generating"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class RequestKey:
    """A request as Live compares it: every field of the params plus the sketch's pixels."""

    params: GenerationParams
    sketch_digest: str

    @staticmethod
    def of(params: GenerationParams, sketch_digest: str) -> RequestKey | None:
        """None for a random seed: two random-seed requests are never the same picture."""
        return None if params.seed == RANDOM_SEED else RequestKey(params, sketch_digest)


@dataclass(frozen=True)
class Run:
    request_id: int = 0
    params: GenerationParams | None = None
    key: RequestKey | None = None
    status: RunStatus = RunStatus.IDLE
    step: int = 0  # as a person counts them: 1..total, total = the steps that run
    total: int = 0
    message: str = ""  # why it failed
    seconds: float = 0.0

    @property
    def active(self) -> bool:
        return self.status is RunStatus.GENERATING


@dataclass(eq=False)
class HistoryEntry:
    """One finished result. Identity matters (the strip hands entries back), so eq=False."""

    info: ResultInfo
    thumbnail: QImage
    image: QImage | None  # None once released from memory; then `path` has it
    path: Path | None = None  # where the archive keeps it, if it does
    seconds: float = 0.0
    key: RequestKey | None = None
    request_id: int = 0  # the run that made it; 0 for one reloaded from the archive

    def picture(self) -> QImage:
        """The full picture, from memory or its file (a null QImage if that is gone)."""
        if self.image is not None:
            return self.image
        return QImage(str(self.path)) if self.path is not None else QImage()

    def caption(self) -> str:
        return describe(self.info)

    def pixel_bytes(self) -> int:
        return self.image.sizeInBytes() if self.image is not None else 0


def shorten(text: str, limit: int = PROMPT_IN_CAPTION) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe(info: ResultInfo) -> str:
    """One line naming a result: its prompt (shortened), seed, knob, sampler and size."""
    from ..core.registry import scheduler_label

    params = info.params
    knob = (f"start {params.start_at_step}/{params.steps}" if params.start_at_step is not None
            else f"denoise {params.strength:.2f}")
    prompt = f"“{shorten(params.prompt)}” · " if params.prompt.strip() else ""
    return f"{prompt}seed {params.seed} · {knob} · {scheduler_label(info.sampler)} · {info.width}x{info.height}"


def displayed_step(params: GenerationParams, step: int, total: int) -> tuple[int, int] | None:
    """The engine's (step, total) as a person counts them against the Steps box, or None to hide.

    A scheduler may evaluate the model more often than the steps that run (PLMS warms up with an
    extra one: 21 for 20); those first evaluations belong to step 1 and are not shown on their own.
    """
    runs = plan_steps(params).run_steps
    if runs <= 0 or total <= runs:
        return step, total
    extra = total - runs
    return (step - extra, runs) if step > extra else None


class Session(QObject):
    model_changed = Signal(object)  # ModelState
    model_load_requested = Signal(str, str, str)  # model, device, server URL ("" = this computer): load it
    request_loaded = Signal(object)  # GenerationParams from outside the editor (a PNG, history, recovery)
    run_changed = Signal(object)  # Run
    step_shown = Signal(int, int, QImage)  # step, total (as displayed), preview (may be null)
    shown_changed = Signal(object)  # HistoryEntry or None
    replay_changed = Signal(object)  # the step the scrubber shows instead of the result, or None
    history_added = Signal(object)  # HistoryEntry (newest)
    history_removed = Signal(object)  # HistoryEntry dropped to stay bounded
    status_changed = Signal(str)  # status_text()
    output_dir_changed = Signal(object)  # Path
    message = Signal(str, bool)  # something to tell the person once; True: an error

    def __init__(self, output_dir: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._model = ModelState()
        self._request = GenerationParams(prompt="")
        self._run = Run()
        self._shown: HistoryEntry | None = None
        self._replay_step: int | None = None
        self._history: deque[HistoryEntry] = deque()
        self._output_dir = Path(output_dir) if output_dir else default_output_dir()
        self.last_folder: Path | None = None  # the last folder a file dialog was used in
        self.archive = None  # the ResultArchive keeping every finished result, if it could be opened

    # ---- the request being edited --------------------------------------------------------
    @property
    def request(self) -> GenerationParams:
        return self._request

    def edit_request(self, params: GenerationParams) -> None:
        """The editor (the panel) changed it: noted, not echoed back."""
        self._request = params

    def load_request(self, params: GenerationParams) -> None:
        """A request from outside the editor; the editor shows it."""
        self._request = params
        self.request_loaded.emit(params)

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
        self._set_model(**self._choice(model, device, server_url), status=ModelStatus.LOADING, message="",
                        loaded_name="", loaded_device="")
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
                if url != self._model.server_url:
                    choice["checkpoints"] = ()  # another server: its list is not known yet
                choice["server_url"] = url  # "" keeps the last server, to switch back to it later
        on_server = choice.get("backend", self._model.backend) == SERVER_BACKEND
        choice["server_state"] = "connecting" if on_server else ""
        if model is not None:
            choice["server_model" if on_server else "model"] = model
        return choice

    def server_checkpoints(self, names) -> None:
        """The server's checkpoints, for the model control to list."""
        self._set_model(checkpoints=tuple(names))

    def server_state_changed(self, state: str) -> None:
        """The client's connection state (connected / reconnecting / offline)."""
        if self._model.on_server and state in _SERVER_STATES:
            self._set_model(server_state=_SERVER_STATES[state])

    def model_loading(self, message: str) -> None:
        self._set_model(status=ModelStatus.LOADING, message=message)

    def model_ready(self, name: str, device: str) -> None:
        server_state = "ready" if self._model.on_server else ""
        self._set_model(status=ModelStatus.READY, message="", loaded_name=name, loaded_device=device,
                        server_state=server_state)

    def model_failed(self, message: str) -> None:
        server_state = ""
        if self._model.on_server:  # a server that answered but cannot run the choice is not "unreachable"
            server_state = "unreachable" if "cannot reach" in message else "failed"
        self._set_model(status=ModelStatus.FAILED, message=message, server_state=server_state)

    def _set_model(self, **changes) -> None:
        self._model = replace(self._model, **changes)
        self.model_changed.emit(self._model)
        self._status_changed()

    # ---- the run in flight ---------------------------------------------------------------
    @property
    def run(self) -> Run:
        return self._run

    def is_redundant(self, key: RequestKey | None) -> bool:
        """True when this request would make the picture already shown or already on its way."""
        if key is None:
            return False
        if self._run.active and self._run.key == key:
            return True
        return self._shown is not None and self._shown.key == key and not self._run.active

    def run_started(self, request_id: int, params: GenerationParams, key: RequestKey | None) -> None:
        self._set_run(Run(request_id, params, key, RunStatus.GENERATING, 0, plan_steps(params).run_steps))

    def run_step(self, request_id: int, step: int, total: int, preview: QImage) -> None:
        run = self._run
        if request_id != run.request_id or not run.active:
            return
        shown = displayed_step(run.params, step, total)
        if shown is None:
            return
        self._set_run(replace(run, step=shown[0], total=shown[1]))
        self.step_shown.emit(shown[0], shown[1], preview)

    def run_finished(self, request_id: int, image: QImage, info: ResultInfo, seconds: float,
                     path: Path | None = None) -> HistoryEntry | None:
        if request_id != self._run.request_id:
            return None
        entry = HistoryEntry(info, _thumbnail(image), image, path, seconds, self._run.key, request_id)
        if self._model.on_server and self._model.server_state != "ready":
            self._set_model(server_state="ready")  # the server answered again
        self._set_run(replace(self._run, status=RunStatus.FINISHED, step=self._run.total, seconds=seconds))
        self.add_to_history(entry)
        self.show(entry)
        return entry

    def take_outcome(self, outcome) -> HistoryEntry | None:
        """The worker's Outcome (request_id, image, info, seconds, and `archived`: its file, if kept)."""
        return self.run_finished(outcome.request_id, outcome.image, outcome.info, outcome.seconds,
                                 getattr(outcome, "archived", None))

    def run_failed(self, request_id: int, message: str) -> None:
        if request_id == self._run.request_id:
            if self._model.on_server and _lost_server(message):  # an idle connection's loss shows only now
                self._set_model(server_state="unreachable")
            self._set_run(replace(self._run, status=RunStatus.FAILED, message=message))
            self.message.emit(message, True)

    def run_cancelled(self, request_id: int) -> None:
        if request_id == self._run.request_id and self._run.active:
            self._set_run(replace(self._run, status=RunStatus.CANCELLED))

    def _set_run(self, run: Run) -> None:
        self._run = run
        self.run_changed.emit(run)
        self._status_changed()

    # ---- what is shown -------------------------------------------------------------------
    @property
    def shown(self) -> HistoryEntry | None:
        return self._shown

    def show(self, entry: HistoryEntry | None) -> None:
        self._shown = entry
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
        return list(self._history)

    def load_history(self, entries: list[HistoryEntry]) -> None:
        """Results kept by earlier sessions (newest first), put into the history at start."""
        for entry in reversed(entries[:MAX_HISTORY]):
            self.add_to_history(entry)

    def add_to_history(self, entry: HistoryEntry) -> None:
        self._history.appendleft(entry)
        self._trim_history()
        self.history_added.emit(entry)

    def _trim_history(self) -> None:
        pixel_bytes = 0
        for entry in list(self._history):
            pixel_bytes += entry.pixel_bytes()
            if pixel_bytes <= MAX_HISTORY_PIXEL_BYTES or entry is self._history[0] or entry is self._shown:
                continue
            if entry.path is not None:  # the file has it: keep the thumbnail only
                pixel_bytes -= entry.pixel_bytes()
                entry.image = None
            else:
                self._drop(entry)
        while len(self._history) > MAX_HISTORY:
            self._drop(self._history[-1])

    def _drop(self, entry: HistoryEntry) -> None:
        self._history.remove(entry)
        self.history_removed.emit(entry)

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
        """The space kept results may take; the oldest go beyond it."""
        if self.archive is not None:
            self.archive.set_max_bytes(max_bytes)

    def say(self, text: str, error: bool = False) -> None:
        self.message.emit(text, error)

    # ---- the one state line --------------------------------------------------------------
    def status_text(self) -> str:
        model, run = self._model, self._run
        if model.status is ModelStatus.LOADING:
            return "connecting to the server…" if model.on_server else "loading model…"
        if model.status is ModelStatus.FAILED:
            if model.on_server:
                return "error: server unreachable" if model.server_state == "unreachable" else "error: no checkpoint"
            return "error: no model"
        if run.status is RunStatus.GENERATING:
            return f"step {run.step} / {run.total}" if run.step else "generating…"
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

    def _status_changed(self) -> None:
        self.status_changed.emit(self.status_text())


def _lost_server(message: str) -> bool:
    return "cannot reach the ComfyUI server" in message or "lost the ComfyUI server" in message


def _thumbnail(image: QImage) -> QImage:
    return image.scaled(THUMB_SIDE, THUMB_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


def bind_worker(session: Session, worker) -> None:
    """The worker reports into the session; the session's load requests go to the worker."""
    session.model_load_requested.connect(lambda model, device, url: worker.load_model(model or None, device, url or None))
    worker.model_loading.connect(session.model_loading)
    worker.model_ready.connect(session.model_ready)
    worker.model_failed.connect(session.model_failed)
    worker.server_state.connect(session.server_state_changed)
    worker.server_checkpoints.connect(session.server_checkpoints)
    worker.step_preview.connect(session.run_step)
    worker.result_ready.connect(session.take_outcome)
    worker.request_failed.connect(session.run_failed)
    worker.request_cancelled.connect(session.run_cancelled)
    worker.notice.connect(session.say)
