"""Runs, beside the session: Generate, Cancel, and Live's scheduling, drafts and refines.

Every run reads the session's request and the canvas: its sketch and its mask (with the mask's
settings; None while nothing is masked), which every request posted carries. Live regenerates a
moment after each change (a dial turn, a finished stroke, a mask edit, an edit); on this computer
it sends a draft (TAESD decode) and, once things rest, refines the newest draft with the full VAE
(the engine reuses its latents: one decode). A request that would paint the picture on show, or
the one on its way, is not sent: requests are compared by the steps they run (core/picture_key.py),
so two dial values that run the same steps cost one run.

A sweep (core/sweep.py) runs the request as it stands across several values and seeds, at the seed
Live would use; a cell whose picture is on show joins the sheet without running again. It is not
Live: a Generate or a Live change afterwards is a new request, which stops the rest of the sweep.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from ..core.params import GenerationParams, MaskSpec
from ..core.picture_key import PictureKey, picture_key
from ..core.sweep import plan_sweep
from ..qimages import pixel_digest
from .session import Session

LIVE_DEBOUNCE_MS = 120
# this long at rest, the newest Live draft is refined with the full VAE
LIVE_REFINE_MS = 400
SAME_PICTURE = "Nothing to run: that is the picture on show (the same steps, seed, prompt, sketch and model)"


class RunController(QObject):
    same_picture_changed = Signal(bool)  # the request as it stands would paint the picture on show

    def __init__(self, session: Session, worker, sketch: Callable[[], QImage],
                 finish_editing: Callable[[], None] = lambda: None, parent: QObject | None = None,
                 mask: Callable[[], MaskSpec | None] = lambda: None):
        super().__init__(parent)
        self.session, self.worker = session, worker
        self._sketch, self._finish_editing, self._mask = sketch, finish_editing, mask
        self._live = False
        self._digest: str | None = None  # of the sketch as it is now; None once it changes
        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_DEBOUNCE_MS)
        self._live_timer.timeout.connect(lambda: self.generate(live=True))
        self._refine_timer = QTimer(self, singleShot=True, interval=LIVE_REFINE_MS)
        self._refine_timer.timeout.connect(self._refine_draft)
        self._last_draft: tuple[GenerationParams, QImage] | None = None  # until it is refined
        session.request_changed.connect(self.changed)
        for signal in (session.request_changed, session.shown_changed, session.model_changed):
            signal.connect(self._tell_same_picture)

    # ---- what the window wires -------------------------------------------------------------
    def set_live(self, on: bool) -> None:
        self._live = on

    def is_live(self) -> bool:
        return self._live

    def sketch_changed(self) -> None:
        self._digest = None
        self.changed()

    def changed(self, *_) -> None:
        """The request or the sketch changed: in Live, regenerate once the changes pause."""
        if self._live:
            self._live_timer.start()
        self._tell_same_picture()

    def generate(self, live: bool = False) -> int:
        """Post the session's request; returns its id, or 0 when nothing was sent (no model, a
        request that cannot run, or the picture already on show or on its way). A request made
        while the model loads waits for it in the worker. A plain Generate is never a draft."""
        if not live:
            self._finish_editing()  # a typed-in entry counts once Generate is pressed
        if not self.session.can_generate() or not self.session.check_request():
            return 0  # what is on show (the model guidance, the request's problem) says why
        # a server decodes in full anyway: a draft there would only make its refine a second run
        draft = live and not self.session.model.on_server
        request = self.session.live_request() if live else self.session.request
        params = request.replace(draft=draft, mask=self._mask())
        sketch = self._sketch()
        if draft:  # a concrete seed, so the refine makes the same picture as the draft
            params = params.with_concrete_seed()
            self._last_draft = (params, sketch)
            self._refine_timer.start()
        else:
            self._last_draft = None
            self._refine_timer.stop()
        return self._post(params, sketch, quiet=live)

    def sweep(self, axis: str | None, values, batch: int = 1, servers=()) -> int:
        """Run the request across `values` of `axis` (None: the seeds alone) and `batch` seeds; its id,
        or 0 when nothing was sent. `servers`: other ComfyUI servers sharing the cells when the model
        runs on one. SketchpadError (one line) for values that make no sweep."""
        self._finish_editing()
        if not self.session.can_generate() or not self.session.check_request():
            return 0
        # like Live: a random seed field reuses the last run's seed, so the sheet compares with it
        plan = plan_sweep(self.session.live_request().replace(draft=False, mask=self._mask()), axis, values, batch)
        sketch = self._sketch()
        digest = pixel_digest(sketch)
        keys = {cell: picture_key(cell.params, digest, self.session.model.identity) for cell in plan.cells}
        shown = self.session.shown
        on_show = {cell: shown for cell, key in keys.items() if self.session.same_picture_as_shown(key)}
        self.stop_timers()  # a pending Live draft would stop the sweep
        to_run = [cell for cell in plan.cells if cell not in on_show]
        servers = tuple(servers) if self.session.model.on_server else ()
        request_id = self.worker.request_sweep(to_run, sketch, servers) if to_run else 0
        self.session.sweep_started(request_id, plan, keys, sketch, on_show)
        return request_id

    def cancel(self) -> None:
        self.stop_timers()
        self.worker.cancel()

    def stop_timers(self) -> None:
        self._live_timer.stop()
        self._refine_timer.stop()
        self._last_draft = None

    # ---- internals -------------------------------------------------------------------------
    def _key(self, params: GenerationParams, sketch: QImage | None = None) -> PictureKey | None:
        """`sketch`: the picture being posted (its digest is taken afresh), else the canvas as it is."""
        if sketch is not None:
            digest = pixel_digest(sketch)
        else:
            if self._digest is None:
                self._digest = pixel_digest(self._sketch())
            digest = self._digest
        return picture_key(params, digest, self.session.model.identity)

    def _post(self, params: GenerationParams, sketch: QImage, quiet: bool) -> int:
        key = self._key(params, sketch)
        if self.session.is_redundant(key):
            if not quiet:
                self.session.say(SAME_PICTURE)
            return 0
        request_id = self.worker.request(params, sketch)
        self.session.run_started(request_id, params, key)
        return request_id

    def _refine_draft(self) -> None:
        """The same request as the newest draft with the full VAE: after the draft has finished
        (a refine posted earlier would abort it and redo every step) and while no change is pending.
        A draft that failed or was cancelled is not refined."""
        if self._last_draft is None or self._live_timer.isActive():
            return  # the pending change sends a new draft, which restarts this timer
        if self.session.run.active:
            self._refine_timer.start()  # look again once the draft had time to finish
            return
        params, sketch = self._last_draft
        self._last_draft = None
        shown = self.session.shown
        if shown is not None and shown.key is not None and shown.key.draft and shown.key.covers(self._key(params, sketch)):
            self._post(params.replace(draft=False), sketch, quiet=True)

    def _tell_same_picture(self, *_) -> None:
        """Whether the dial's value (the request as it stands) paints the picture on show."""
        shown = self.session.shown
        same = False
        if shown is not None and shown.key is not None and not self.session.request_problem:
            params = self.session.live_request() if self._live else self.session.request
            params = params.replace(draft=self._live, mask=self._mask())
            same = self.session.same_picture_as_shown(self._key(params))
        self.same_picture_changed.emit(same)
