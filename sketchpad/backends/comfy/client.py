"""The ComfyUI backend: the same contract as the local engine, run on a ComfyUI server.

One generate() = upload the sketch (content-addressed, once per session), POST /prompt with our own
prompt id and client id, then follow our websocket (job.py): why the prompt waits, one StepPreview
per executed sampler step, the result picture from SaveImageWebsocket. should_stop is polled between
messages; stopping removes our own pending prompt from /queue and interrupts it only while it runs
(never another client's). With a mask the server works on the part of the picture core/masks.py
plans (inpaint.py), and the picture comes back with that part pasted in through the feather.

The connection's state (core.errors.ServerState) is reported through on_state as it changes, also
between jobs (check_idle): once the server is known to be gone, generate() says so at once.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import urllib.parse
import uuid
from typing import Callable

from PIL import Image

from ...core.backend import GenerationResult, OnStep, OnWaiting, ShouldStop
from ...core.errors import FailureKind, ServerState, SketchpadError
from ...core.images import prepare_sketch, scribble_image
from ...core.masks import InpaintPlan, start_masked_run
from ...core.params import GenerationParams
from ...core.schedule import plan_steps
from ...core.server_address import parse_server_url
from ...core.server_files import missing_model, server_file
from . import failures
from .connection import CONNECT_TIMEOUT, Connection, ConnectionLost, ServerError
from .inpaint import is_inpainting_checkpoint, mask_picture
from .job import Job, JobObserver, decode_png, observe
from .loras import with_local_hash
from .workflow import (FILE_OUTPUT, WEBSOCKET_OUTPUT, Graph, ServerControl, ServerMask, build_graph,
                       comfy_sampler, our_scheduler)

log = logging.getLogger(__name__)

POLL = 0.02  # seconds between should_stop checks while waiting for the server
RECONNECT_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # backoff after a dropped websocket
IDLE_RETRY = 2.0  # seconds between connection attempts while idle and offline
IDLE_CONNECT_TIMEOUT = 1.0  # a look between jobs (or before one) never holds the worker longer
IDLE_DRAIN = 200  # messages read at most per idle look (what arrived since the last job)
CANCEL_WAIT = 5.0  # how long close() and Ctrl+C wait for the server to confirm our job is gone
# ComfyUI's --preview-method values, asked for per prompt (servers that take extra_data.preview_method;
# older ones use their own setting). It has no full-VAE preview: TAESD is the closest.
_SERVER_PREVIEWS = {"latent2rgb": "latent2rgb", "taesd": "taesd", "vae": "taesd", "none": "none"}
NO_PREVIEWS_HINT = ("the ComfyUI server sends no step previews; start it with --preview-method latent2rgb "
                    "to watch the picture form")
_GONE_STATES = {FailureKind.NOT_ANSWERING: ServerState.NOT_ANSWERING}  # any other gone kind: UNREACHABLE

Notify = Callable[[str], None]
OnState = Callable[[ServerState], None]


class ComfyBackend:
    """A Backend on a ComfyUI server. Raises SketchpadError (with its kind) for every problem, in one line.

    After connecting, `checkpoints`, `loras` and `controlnets` list the server's files, `model_name`
    is the checkpoint in use (the server's own name for it) and `state` the connection's state.
    """

    def __init__(self, url: str, model: str | None = None, *, token: str | None = None,
                 notify: Notify | None = None, on_state: OnState | None = None,
                 http_timeout: float | None = None, answer_timeout: float | None = None,
                 observer: JobObserver | None = None):
        address = parse_server_url(url, token)
        options = {}
        if http_timeout is not None:
            options["http_timeout"] = http_timeout
        if answer_timeout is not None:
            options["answer_timeout"] = answer_timeout
        self._conn = Connection(address, **options)
        self._notify = notify or (lambda message: None)
        self.on_state = on_state or (lambda state: None)
        self._observer = observer
        self.server = address.base  # never carries credentials
        self.state = ServerState.CONNECTING
        self._uploaded: dict[str, str] = {}  # sketch digest -> name on the server
        self._told_no_previews = False
        self.uploads = 0  # sketches sent this session (a dial-only change sends none)
        self._stopped: list[str] = []  # prompts we asked the server to drop
        self._next_idle_try = 0.0

        self._connect()
        try:
            info = self._node_info("CheckpointLoaderSimple", "KSampler", "KSamplerAdvanced", WEBSOCKET_OUTPUT,
                                   "LoraLoader", "ControlNetLoader")
            self.checkpoints = _choices(info, "CheckpointLoaderSimple", "ckpt_name")
            self.loras = _choices(info, "LoraLoader", "lora_name")
            self.controlnets = _choices(info, "ControlNetLoader", "control_net_name")
            self._samplers = _choices(info, "KSampler", "sampler_name")
            self._schedulers = _choices(info, "KSampler", "scheduler")
            self._output_class = WEBSOCKET_OUTPUT if WEBSOCKET_OUTPUT in info else FILE_OUTPUT
            self.model_name = self._checkpoint(model)
        except SketchpadError:
            self._conn.close_socket()  # nothing will use it
            raise
        self.device_name = self._device()

    def _checkpoint(self, model: str | None) -> str:
        """The server's checkpoint for `model`, matched by name as LoRAs are; its first when none is asked for."""
        if model is None:
            if not self.checkpoints:
                raise failures.missing_checkpoint(self.server, None, [])
            self._notify(f"No checkpoint chosen: using the server's first, {self.checkpoints[0]}")
            return self.checkpoints[0]
        name = server_file(model, self.checkpoints)
        if name is None:
            raise failures.missing_checkpoint(self.server, model, self.checkpoints)
        return name

    # -- the contract ---------------------------------------------------------------------------
    def generate(self, params: GenerationParams, sketch: Image.Image, on_step: OnStep | None = None,
                 should_stop: ShouldStop | None = None, on_waiting: OnWaiting | None = None
                 ) -> GenerationResult | None:
        started = time.perf_counter()
        self._observe("started")
        params = params.validated().with_concrete_seed()
        stop = should_stop or (lambda: False)
        picture = inpaint = None
        if params.mask is None:
            sketch = prepare_sketch(sketch)
        else:  # the sketch is the picture at its own size; the server works on its masked part
            picture, inpaint, on_step = start_masked_run(params.mask, sketch, on_step)
            sketch = inpaint.work_picture(picture)
        plan = plan_steps(params)
        scheduler = our_scheduler(params)
        if plan.run_steps == 0:  # denoise 0 / start = steps: the sketch itself, no server involved
            unchanged = sketch if picture is None else picture
            return GenerationResult(unchanged.copy(), params, scheduler, 0, time.perf_counter() - started)
        try:
            self._check_reachable()
            server_loras = self._server_loras(params)
            control_model = self._server_controlnet(params)
            sampler = comfy_sampler(scheduler, self._samplers, self._schedulers)
            params = params.replace(loras=tuple(with_local_hash(lora) for lora in params.loras))
            if stop() or not self._ensure_socket(stop):
                return None

            def upload_and_build() -> Graph:
                image_name = None if plan.from_pure_noise and inpaint is None else self._upload(sketch)
                # the lines it keeps: the sketch inverted, sent like the sketch, when a step that runs uses it
                control = (ServerControl(control_model, lambda: self._upload(scribble_image(sketch)))
                           if control_model is not None else None)
                mask = None
                if inpaint is not None:
                    inpainting = is_inpainting_checkpoint(self.model_name)
                    mask = ServerMask(self._upload(mask_picture(inpaint, inpainting)), inpainting)
                return build_graph(params, plan, self.model_name, sampler, sketch.size, image_name,
                                   self._output_class, server_loras, control, mask)

            graph = upload_and_build()
            prompt_id = str(uuid.uuid4())
            try:
                try:
                    number = self._submit(graph, prompt_id, params.preview_method)
                except _SketchGone:
                    # the server lost its input folder (a restart, a clean-up): send the pictures again, once
                    self._uploaded.clear()
                    graph = upload_and_build()
                    number = self._submit(graph, prompt_id, params.preview_method, retry=False)
                job = Job(prompt_id, number, graph, params.preview_method != "none",
                          on_step or (lambda preview: None), on_waiting or (lambda waiting: None), self._observer)
            except SketchpadError:
                raise
            except BaseException:
                # Ctrl+C or a quit while posting: the server may hold the prompt already; leave nothing of ours
                self._cancel(prompt_id, wait=True)
                raise
            image = self._run(job, stop)
        except ServerError as error:
            if error.kind.server_gone:
                self._lost(error)
            raise
        if image is None:
            return None
        if inpaint is not None:
            image = self._pasted(picture, inpaint, image)
        if job.steps_seen and not job.previews_seen and params.preview_method != "none" and not self._told_no_previews:
            self._told_no_previews = True
            self._notify(NO_PREVIEWS_HINT)
        self._observe("finished")
        return GenerationResult(image, params, scheduler, graph.steps, time.perf_counter() - started)

    def _pasted(self, picture: Image.Image, inpaint: InpaintPlan, image: Image.Image) -> Image.Image:
        """The server's work picture put back into `picture` (core: outside the feather, the picture)."""
        if image.size != inpaint.work_size:
            raise ServerError(f"the ComfyUI server at {self.server} sent a {image.size[0]}x{image.size[1]} picture "
                              f"for a {inpaint.work_size[0]}x{inpaint.work_size[1]} one", FailureKind.SERVER_FAILED)
        return inpaint.paste(picture, image)

    def close(self) -> None:
        """Make sure no prompt of ours is left queued or running, then disconnect."""
        for prompt_id in self._stopped[-3:]:
            if self._conn.connected and self._queued_quietly(prompt_id):
                self._cancel(prompt_id, wait=True)
        self._stopped.clear()
        self._conn.close_socket()
        self._set_state(ServerState.CLOSED)

    def _server_loras(self, params: GenerationParams) -> tuple[tuple[str, float], ...]:
        """(server file, weight) for each of the request's LoRAs; a LoRA the server lacks is an error.
        The server's list is read again before saying so: a file may have been added since we looked."""
        names = [server_file(lora.source, self.loras) for lora in params.loras]
        if None in names:
            self.loras = _choices(self._conn.get("/object_info/LoraLoader") or {}, "LoraLoader", "lora_name")
            names = [server_file(lora.source, self.loras) for lora in params.loras]
        for lora, name in zip(params.loras, names):
            if name is None:
                raise missing_model("LoRA", lora.source, self.loras, "models/loras")
        return tuple((name, float(lora.weight)) for lora, name in zip(params.loras, names))

    def _server_controlnet(self, params: GenerationParams) -> str | None:
        """The server's file for the request's ControlNet; None without one or at strength 0 (then the
        graph is exactly the one without it)."""
        spec = params.control
        if spec is None or not spec.applies:
            return None
        name = server_file(spec.model, self.controlnets)
        if name is None:
            self.controlnets = _choices(self._conn.get("/object_info/ControlNetLoader") or {}, "ControlNetLoader",
                                        "control_net_name")
            name = server_file(spec.model, self.controlnets)
        if name is None:
            raise missing_model("ControlNet", spec.model, self.controlnets, "models/controlnet")
        return name

    # -- connecting -----------------------------------------------------------------------------
    def _connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        self._conn.open_socket(timeout)
        self._set_state(ServerState.READY)

    def _check_reachable(self) -> None:
        """A server already known not to answer is said so at once; one known unreachable gets one
        quick try (it may be back), no backoff."""
        if self.state is ServerState.NOT_ANSWERING:
            raise ServerError(f"the ComfyUI server at {self.server} is not answering (nothing from it for "
                              f"{self._conn.silent_for:.0f} s); it may be stopped or overloaded",
                              FailureKind.NOT_ANSWERING)
        if self.state is ServerState.UNREACHABLE:
            self._connect(IDLE_CONNECT_TIMEOUT)

    def _ensure_socket(self, stop: ShouldStop) -> bool:
        return self._conn.connected or self._reconnect(stop)

    def _reconnect(self, stop: ShouldStop) -> bool:
        """Connect again with backoff; False if stop() asked us to give up first (a quit never waits
        out the backoff). Raises ServerError once every attempt failed, or at once when the server
        takes the connection and says nothing (a backoff would only multiply the wait)."""
        self._set_state(ServerState.RECONNECTING)
        last: ServerError | None = None
        for delay in RECONNECT_DELAYS:
            if _sleep_unless(stop, delay):
                return False
            try:
                self._connect()
                return True
            except ServerError as error:
                if error.kind is not FailureKind.UNREACHABLE:
                    raise
                last = error
        raise last

    def check_idle(self) -> None:
        """Between jobs: notice a server that went away, stopped answering or came back, so the
        status line tells the truth before the next request. Reading the socket also answers the
        idle pings that tell a hung server from a quiet one."""
        if self.state is ServerState.CLOSED:
            return
        if self._conn.connected:
            try:
                for _ in range(IDLE_DRAIN):  # status broadcasts, the tail of a job we stopped
                    if self._conn.receive(0.0) is None:
                        return
                return
            except ConnectionLost as error:
                log.info("the websocket to %s dropped while idle (%s); connecting again", self.server, error)
            except ServerError as error:
                self._lost(error)
                return
        elif time.monotonic() < self._next_idle_try:
            return
        self._next_idle_try = time.monotonic() + IDLE_RETRY
        try:
            self._connect(IDLE_CONNECT_TIMEOUT)
        except ServerError as error:
            self._lost(error)

    def _lost(self, error: ServerError) -> None:
        """The server is gone (unreachable) or silent (not answering): say so, and start afresh next time."""
        self._conn.close_socket()
        self._set_state(_GONE_STATES.get(error.kind, ServerState.UNREACHABLE))

    def _set_state(self, state: ServerState) -> None:
        if state is not self.state:
            log.info("ComfyUI server %s: %s", self.server, state.value)
            self.state = state
            self.on_state(state)

    def _node_info(self, *classes: str) -> dict:
        info = {}
        for name in classes:
            answer = self._conn.get(f"/object_info/{name}")
            if isinstance(answer, dict) and name in answer:
                info[name] = answer[name]
        if "KSampler" not in info or "CheckpointLoaderSimple" not in info:
            raise ServerError(f"{self.server} does not look like a ComfyUI server (no KSampler node)",
                              FailureKind.REFUSED)
        return info

    def _device(self) -> str:
        try:
            stats = self._conn.get("/system_stats") or {}
            device = (stats.get("devices") or [{}])[0]
            return str(device.get("name") or device.get("type") or "unknown device")
        except SketchpadError as error:
            log.info("no device name from %s: %s", self.server, error)
            return "unknown device"

    # -- one job --------------------------------------------------------------------------------
    def _upload(self, sketch: Image.Image) -> str:
        buffer = io.BytesIO()
        sketch.save(buffer, format="PNG")
        png = buffer.getvalue()
        digest = hashlib.sha256(png).hexdigest()
        if digest not in self._uploaded:
            # named by content: the same sketch always has the same name, so re-sending is never needed
            self._uploaded[digest] = self._conn.upload_png(f"sketchpad-{digest[:32]}.png", png)
            self.uploads += 1
        return self._uploaded[digest]

    def _submit(self, graph: Graph, prompt_id: str, job_previews: str, retry: bool = True) -> int | None:
        """POST the prompt; its number in the server's queue."""
        body = {"prompt": graph.nodes, "prompt_id": prompt_id, "client_id": self._conn.client_id,
                "extra_data": {"preview_method": _SERVER_PREVIEWS[job_previews]}}
        posting = time.perf_counter()
        status, answer = self._conn.call("POST", "/prompt", body, accept_statuses=(200, 400))
        self._observe("posted", seconds=time.perf_counter() - posting)
        if status == 400:
            if retry and failures.names_missing_image(answer):
                raise _SketchGone()
            raise failures.rejected_prompt(answer, self.server, self.checkpoints, self.loras, self.controlnets)
        number = answer.get("number") if isinstance(answer, dict) else None
        return number if isinstance(number, int) else None

    def _run(self, job: Job, stop: ShouldStop) -> Image.Image | None:
        """Follow the job to its picture; whatever ends it early leaves nothing of ours on the server."""
        try:
            return self._follow(job, stop)
        except ServerError as error:
            if error.kind.server_gone:  # asking it to cancel would only wait again; close() tries later
                self._stopped = self._stopped[-2:] + [job.prompt_id]
            else:
                self._cancel(job.prompt_id, wait=True)
            raise
        except BaseException:
            # another error, Ctrl+C or a quit: leave nothing of ours queued or running
            self._cancel(job.prompt_id, wait=True)
            raise

    def _follow(self, job: Job, stop: ShouldStop) -> Image.Image | None:
        while True:
            if stop():
                # newest wins: the next request need not wait for the server to confirm this one is gone
                self._cancel(job.prompt_id, wait=False)
                self._stopped = self._stopped[-2:] + [job.prompt_id]
                return None
            try:
                message = self._conn.receive(POLL)
            except ConnectionLost as error:
                log.info("the websocket to %s dropped mid-job (%s)", self.server, error)
                self._resume(job, stop)
                continue
            if message is None:
                continue
            kind, payload = message
            if kind == "binary":
                if job.on_frame(payload):
                    # The output node runs last: with the picture in hand the job is done. Waiting for
                    # execution_success would add the server's between-jobs gc.collect() (about 1 s on a
                    # busy CPU), which holds its event loop before those last messages go out.
                    return job.result
                continue
            if job.on_message(payload):
                return self._result(job)
            if job.queue_changed:
                job.saw_queue(self._conn.get("/queue") or {}, set(self._stopped))

    def _resume(self, job: Job, stop: ShouldStop) -> None:
        """The websocket dropped mid-job: reconnect; go on if the server still has our job.
        Stopped meanwhile, it returns at once and _follow's stop check ends the job."""
        try:
            if not self._reconnect(stop):
                return
        except ServerError as error:
            if error.kind is not FailureKind.UNREACHABLE:
                raise
            raise ServerError(f"lost the ComfyUI server at {self.server} while generating ({error.reason}); "
                              "is it running?", FailureKind.CONNECTION_LOST) from error
        if not self._is_queued(job.prompt_id):
            raise ServerError(f"the connection to {self.server} dropped while it finished the picture; "
                              "generate again", FailureKind.CONNECTION_LOST)

    def _result(self, job: Job) -> Image.Image:
        if job.result is not None:
            return job.result
        if job.files:  # the PreviewImage fallback: fetch the file from the server's temp folder
            entry = job.files[0]
            query = urllib.parse.urlencode({"filename": entry.get("filename", ""), "subfolder": entry.get("subfolder", ""),
                                            "type": entry.get("type", "temp")})
            return decode_png(self._conn.fetch(f"/view?{query}"))
        raise ServerError(f"the ComfyUI server at {self.server} finished without sending the picture",
                          FailureKind.SERVER_FAILED)

    def _cancel(self, prompt_id: str, wait: bool) -> None:
        """Remove our prompt if it still waits; interrupt it only if it runs (an interrupt for a prompt
        that is not running does nothing but put a line in the server's log). Ours only, by its id."""
        try:
            self._conn.post("/queue", {"delete": [prompt_id]})
            if prompt_id in _prompts(self._conn.get("/queue") or {}, "queue_running"):
                self._conn.post("/interrupt", {"prompt_id": prompt_id})
            if wait:
                deadline = time.monotonic() + CANCEL_WAIT
                while self._is_queued(prompt_id) and time.monotonic() < deadline:
                    time.sleep(0.05)
        except SketchpadError as error:
            log.info("could not cancel prompt %s on %s: %s", prompt_id, self.server, error)  # a server gone runs nothing

    def _queued_quietly(self, prompt_id: str) -> bool:
        try:
            return self._is_queued(prompt_id)
        except SketchpadError:
            return False

    def _is_queued(self, prompt_id: str) -> bool:
        queue = self._conn.get("/queue") or {}
        return prompt_id in _prompts(queue, "queue_running") + _prompts(queue, "queue_pending")

    def _observe(self, event: str, **details) -> None:
        observe(self._observer, event, **details)


class _SketchGone(Exception):
    """The server no longer has the sketch we uploaded earlier this session."""


def _prompts(queue: dict, lane: str) -> list[str]:
    return [entry[1] for entry in queue.get(lane) or [] if isinstance(entry, list) and len(entry) > 1]


def _sleep_unless(stop: ShouldStop, seconds: float) -> bool:
    """Sleep, looking at stop() every POLL seconds; True if it said stop."""
    deadline = time.monotonic() + seconds
    while True:
        if stop():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(POLL, left))


def _choices(info: dict, node: str, name: str) -> list[str]:
    spec = (((info.get(node) or {}).get("input") or {}).get("required") or {}).get(name)
    if not spec:
        return []
    first = spec[0]
    if isinstance(first, list):
        return [str(item) for item in first]
    if first == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):  # the newer combo spelling
        return [str(item) for item in spec[1].get("options") or []]
    return []
