"""The ComfyUI backend: the same contract as the local engine, run on a ComfyUI server.

One generate() = upload the sketch (content-addressed, once per session), POST /prompt with our own
prompt id and client id, then follow our websocket: one StepPreview per executed sampler step, the
result picture from SaveImageWebsocket. should_stop is polled between messages; stopping removes our
own pending prompt from /queue and interrupts our own running prompt only (never another client's).
"""

from __future__ import annotations

import hashlib
import io
import time
import urllib.parse
import uuid
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...core.backend import GenerationResult, OnStep, ShouldStop, StepPreview
from ...core.errors import SketchpadError
from ...core.images import prepare_sketch, scribble_image
from ...core.params import GenerationParams
from ...core.schedule import plan_steps
from . import failures
from .control_range import executed_sigmas
from .connection import Connection, ConnectionLost, ServerError, parse_server_url
from .frames import parse_frame
from .loras import missing_lora, missing_model, server_file, server_lora_name, with_local_hash
from .workflow import (FILE_OUTPUT, WEBSOCKET_OUTPUT, Graph, ServerControl, build_graph, comfy_sampler, control_window,
                       our_scheduler)

POLL = 0.02  # seconds between should_stop checks while waiting for the server
RECONNECT_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # backoff after a dropped websocket
IDLE_RETRY = 2.0  # seconds between connection attempts while idle and offline
IDLE_DRAIN = 200  # messages read at most per idle look (what arrived since the last job)
CANCEL_WAIT = 5.0  # how long close() and Ctrl+C wait for the server to confirm our job is gone
# ComfyUI's --preview-method values, asked for per prompt (servers that take extra_data.preview_method;
# older ones use their own setting). It has no full-VAE preview: TAESD is the closest.
_SERVER_PREVIEWS = {"latent2rgb": "latent2rgb", "taesd": "taesd", "vae": "taesd", "none": "none"}
NO_PREVIEWS_HINT = ("the ComfyUI server sends no step previews; start it with --preview-method latent2rgb "
                    "to watch the picture form")

Notify = Callable[[str], None]


class ComfyBackend:
    """A Backend on a ComfyUI server. Raises SketchpadError for every problem, in one line."""

    def __init__(self, url: str, model: str | None = None, *, token: str | None = None,
                 notify: Notify | None = None, on_state: Notify | None = None,
                 http_timeout: float | None = None, answer_timeout: float | None = None):
        address = parse_server_url(url, token)
        options = {}
        if http_timeout is not None:
            options["http_timeout"] = http_timeout
        if answer_timeout is not None:
            options["answer_timeout"] = answer_timeout
        self._conn = Connection(address, **options)
        self._notify = notify or (lambda message: None)
        self.on_state = on_state or (lambda state: None)
        self.server = address.base  # never carries credentials
        self.state = "connecting"
        self._uploaded: dict[str, str] = {}  # sketch digest -> name on the server
        self._told_no_previews = False
        self.uploads = 0  # sketches sent this session (a dial-only change sends none)
        self.last_timing: dict[str, float] = {}
        self._stopped: list[str] = []  # prompts we asked the server to drop
        self._post_seconds = 0.0
        self._next_idle_try = 0.0

        self._connect()
        info = self._node_info("CheckpointLoaderSimple", "KSampler", "KSamplerAdvanced", WEBSOCKET_OUTPUT, "LoraLoader",
                               "ControlNetLoader")
        self.checkpoints = _choices(info, "CheckpointLoaderSimple", "ckpt_name")
        self.loras = _choices(info, "LoraLoader", "lora_name")
        self.controlnets = _choices(info, "ControlNetLoader", "control_net_name")
        self._samplers = _choices(info, "KSampler", "sampler_name")
        self._schedulers = _choices(info, "KSampler", "scheduler")
        self._output_class = WEBSOCKET_OUTPUT if WEBSOCKET_OUTPUT in info else FILE_OUTPUT
        if model is None:
            if not self.checkpoints:
                raise failures.missing_checkpoint("(any)", [])
            model = self.checkpoints[0]
            self._notify(f"Using the server's checkpoint {model}")
        elif model not in self.checkpoints:
            raise failures.missing_checkpoint(model, self.checkpoints)
        self.model_name = model
        self.device_name = self._device()

    # -- the contract ---------------------------------------------------------------------------
    def generate(self, params: GenerationParams, sketch: Image.Image, on_step: OnStep | None = None,
                 should_stop: ShouldStop | None = None) -> GenerationResult | None:
        started = time.perf_counter()
        self.last_timing = {}
        params = params.validated().with_concrete_seed()
        stop = should_stop or (lambda: False)
        server_loras = self._server_loras(params)
        control_model = self._server_controlnet(params)
        params = params.replace(loras=tuple(with_local_hash(lora) for lora in params.loras))
        sketch = prepare_sketch(sketch)
        plan = plan_steps(params)
        scheduler = our_scheduler(params)
        sampler = comfy_sampler(scheduler, self._samplers, self._schedulers)
        if plan.run_steps == 0:  # denoise 0 / start = steps: the sketch itself, no server involved
            return GenerationResult(sketch.copy(), params, scheduler, 0, time.perf_counter() - started)
        if stop() or not self._ensure_socket(stop):
            return None

        def upload_and_build() -> Graph:
            image_name = None if plan.from_pure_noise else self._upload(sketch)
            control = None
            # the lines it keeps: the sketch inverted, sent like the sketch (not when no step that runs uses it)
            if control_model is not None and control_window(params.control, params, plan, sampler) is not None:
                control = ServerControl(control_model, self._upload(scribble_image(sketch)), params.control)
            return build_graph(params, plan, self.model_name, sampler, sketch.size, image_name, self._output_class,
                               server_loras, control)

        graph = upload_and_build()
        prompt_id = str(uuid.uuid4())
        try:
            self._submit(graph, prompt_id, params.preview_method)
        except _SketchGone:
            # the server lost its input folder (a restart, a clean-up): send the pictures again, once
            self._uploaded.clear()
            graph = upload_and_build()
            self._submit(graph, prompt_id, params.preview_method, retry=False)
        submitted = time.perf_counter()
        # the steps the server really runs: ComfyUI's ddim_uniform runs one more than asked when the
        # count does not divide 1000 (7 -> 8), and the previews should count what happens
        server_steps = len(executed_sigmas(graph.nodes[graph.sampler_node]))
        try:
            job = _Job(prompt_id, graph, server_steps, params.preview_method != "none")
            image = self._follow(job, on_step or (lambda preview: None), stop)
        except BaseException:
            # an error, Ctrl+C or a quit: leave nothing of ours queued or running
            self._cancel(prompt_id, wait=True)
            raise
        if image is None:
            return None
        if job.steps_seen and not job.previews_seen and params.preview_method != "none" and not self._told_no_previews:
            self._told_no_previews = True
            self._notify(NO_PREVIEWS_HINT)
        finished = time.perf_counter()
        # for the benchmark: our clock (perf_counter) and the server's own (milliseconds, its messages)
        self.last_timing = {"started": started, "submitted": submitted, "finished": finished,
                            "server_started": job.started_at, "first_preview": job.first_preview_at,
                            "server_execution": job.server_execution, "preview_bytes": job.preview_bytes,
                            "preview_times": job.preview_times, "stale_stopped": job.stale_stopped_at,
                            "posted": self._post_seconds, "server_success": job.success_at, "server_ended": job.ended_at}
        return GenerationResult(image, params, scheduler, server_steps, finished - started)

    def close(self) -> None:
        """Make sure no prompt of ours is left queued or running, then disconnect."""
        for prompt_id in self._stopped[-3:]:
            if self._conn.connected and self._queued_quietly(prompt_id):
                self._cancel(prompt_id, wait=True)
        self._stopped.clear()
        self._conn.close_socket()
        self._set_state("closed")

    def _server_loras(self, params: GenerationParams) -> tuple[tuple[str, float], ...]:
        """(server file, weight) for each of the request's LoRAs; a LoRA the server lacks is an error.
        The server's list is read again before saying so: a file may have been added since we looked."""
        names = [server_lora_name(lora, self.loras) for lora in params.loras]
        if None in names:
            self.loras = _choices(self._conn.get("/object_info/LoraLoader") or {}, "LoraLoader", "lora_name")
            names = [server_lora_name(lora, self.loras) for lora in params.loras]
        for lora, name in zip(params.loras, names):
            if name is None:
                raise missing_lora(lora, self.loras)
        return tuple((name, float(lora.weight)) for lora, name in zip(params.loras, names))

    def _server_controlnet(self, params: GenerationParams) -> str | None:
        """The server's file for the request's ControlNet; None without one or at strength 0 (then the
        graph is exactly the one without it)."""
        spec = params.control
        if spec is None or spec.strength == 0:
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
    def _connect(self) -> None:
        self._conn.open_socket()
        self._set_state("connected")

    def _ensure_socket(self, stop: ShouldStop) -> bool:
        return self._conn.connected or self._reconnect(stop)

    def _reconnect(self, stop: ShouldStop) -> bool:
        """Connect again with backoff; False if stop() asked us to give up first (a quit never waits
        out the backoff). Raises ServerError once every attempt failed."""
        self._set_state("reconnecting")
        last: SketchpadError | None = None
        for delay in RECONNECT_DELAYS:
            if _sleep_unless(stop, delay):
                return False
            try:
                self._connect()
                return True
            except ServerError as error:
                last = error
        self._set_state("offline")
        raise last or ServerError(f"cannot reach the ComfyUI server at {self.server}")

    def check_idle(self) -> None:
        """Between jobs: notice a server that went away, stopped answering or came back, so the
        status line tells the truth before the next request. Reading the socket also answers the
        idle pings that tell a hung server from a quiet one."""
        if self._conn.connected:
            try:
                for _ in range(IDLE_DRAIN):  # status broadcasts, the tail of a job we stopped
                    if self._conn.receive(0.0) is None:
                        break
            except (ConnectionLost, ServerError):
                self._set_state("offline")
            return
        if time.monotonic() < self._next_idle_try:
            return
        self._next_idle_try = time.monotonic() + IDLE_RETRY
        try:
            self._connect()
        except ServerError:
            self._set_state("offline")

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    def _node_info(self, *classes: str) -> dict:
        info = {}
        for name in classes:
            answer = self._conn.get(f"/object_info/{name}")
            if isinstance(answer, dict) and name in answer:
                info[name] = answer[name]
        if "KSampler" not in info or "CheckpointLoaderSimple" not in info:
            raise ServerError(f"{self.server} does not look like a ComfyUI server (no KSampler node)")
        return info

    def _device(self) -> str:
        try:
            stats = self._conn.get("/system_stats") or {}
            device = (stats.get("devices") or [{}])[0]
            return str(device.get("name") or device.get("type") or "unknown device")
        except SketchpadError:
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

    def _submit(self, graph: Graph, prompt_id: str, job_previews: str, retry: bool = True) -> None:
        body = {"prompt": graph.nodes, "prompt_id": prompt_id, "client_id": self._conn.client_id,
                "extra_data": {"preview_method": _SERVER_PREVIEWS[job_previews]}}
        posting = time.perf_counter()
        status, answer = self._conn.call("POST", "/prompt", body, accept_statuses=(200, 400))
        self._post_seconds = time.perf_counter() - posting
        if status == 400:
            if retry and failures.names_missing_image(answer):
                raise _SketchGone()
            raise failures.rejected_prompt(answer, self.checkpoints, self.loras, self.controlnets)

    def _follow(self, job: "_Job", on_step: OnStep, stop: ShouldStop) -> Image.Image | None:
        while True:
            if stop():
                # newest wins: the next request need not wait for the server to confirm this one is gone
                self._cancel(job.prompt_id, wait=False)
                self._stopped = self._stopped[-2:] + [job.prompt_id]
                return None
            try:
                message = self._conn.receive(POLL)
            except ConnectionLost:
                self._resume(job, stop)
                continue
            if message is None:
                continue
            kind, payload = message
            if kind == "binary":
                if job.on_frame(payload, on_step):
                    # The output node runs last: with the picture in hand the job is done. Waiting for
                    # execution_success would add the server's between-jobs gc.collect() (about 1 s on a
                    # busy CPU), which holds its event loop before those last messages go out.
                    return job.result
                continue
            done = job.on_message(payload, on_step)
            if done:
                return self._result(job)

    def _resume(self, job: "_Job", stop: ShouldStop) -> None:
        """The websocket dropped mid-job: reconnect; go on if the server still has our job.
        Stopped meanwhile, it returns at once and _follow's stop check ends the job."""
        try:
            if not self._reconnect(stop):
                return
        except ServerError as error:
            raise ServerError(f"lost the ComfyUI server at {self.server} while generating: {error}") from None
        if not self._is_queued(job.prompt_id):
            raise ServerError(f"the connection to {self.server} dropped while it finished the picture; "
                              "generate again") from None

    def _result(self, job: "_Job") -> Image.Image:
        if job.result is not None:
            return job.result
        if job.files:  # the PreviewImage fallback: fetch the file from the server's temp folder
            entry = job.files[0]
            query = urllib.parse.urlencode({"filename": entry.get("filename", ""), "subfolder": entry.get("subfolder", ""),
                                            "type": entry.get("type", "temp")})
            return _decode_png(self._conn.fetch(f"/view?{query}"))
        raise ServerError(f"the ComfyUI server at {self.server} finished without sending the picture")

    def _cancel(self, prompt_id: str, wait: bool) -> None:
        """Remove our prompt if it still waits, then interrupt it if it runs: ours only, by its id."""
        try:
            self._conn.post("/queue", {"delete": [prompt_id]})
            self._conn.post("/interrupt", {"prompt_id": prompt_id})
            if wait:
                deadline = time.monotonic() + CANCEL_WAIT
                while self._is_queued(prompt_id) and time.monotonic() < deadline:
                    time.sleep(0.05)
        except SketchpadError:
            pass  # a server that is gone runs nothing of ours

    def _queued_quietly(self, prompt_id: str) -> bool:
        try:
            return self._is_queued(prompt_id)
        except SketchpadError:
            return False

    def _is_queued(self, prompt_id: str) -> bool:
        queue = self._conn.get("/queue") or {}
        entries = (queue.get("queue_running") or []) + (queue.get("queue_pending") or [])
        return any(len(entry) > 1 and entry[1] == prompt_id for entry in entries)


class _SketchGone(Exception):
    """The server no longer has the sketch we uploaded earlier this session."""


class _Job:
    """What one prompt's messages have told us so far."""

    def __init__(self, prompt_id: str, graph: Graph, total: int, decode_previews: bool):
        self.prompt_id = prompt_id
        self.graph = graph
        self.total = total
        self.decode_previews = decode_previews
        self.running = False  # our prompt is the one the server is executing
        self.started_at = 0.0
        self.result: Image.Image | None = None
        self.files: list[dict] = []
        self.error: SketchpadError | None = None
        self.steps_seen = 0
        self.previews_seen = 0
        self.first_preview_at = 0.0
        self.preview_times: list[float] = []
        self.preview_bytes: list[int] = []
        self.server_execution: float | None = None  # seconds, by the server's own timestamps
        self.stale_stopped_at = 0.0
        self.success_at = 0.0
        self.ended_at = 0.0
        self._server_started_ms = None
        # With prompt-tagged frames the preview arrives before its "progress"; untagged after it.
        self._frame: np.ndarray | None = None
        self._have_frame = False
        self._step: int | None = None

    def on_message(self, message: dict, on_step: OnStep) -> bool:
        kind, data = message.get("type"), message.get("data") or {}
        if not isinstance(data, dict):
            return False
        if data.get("prompt_id") != self.prompt_id:
            if kind == "execution_interrupted":
                self.stale_stopped_at = time.perf_counter()  # an earlier prompt of ours, stopped
            if kind in ("execution_start", "executing") and data.get("prompt_id"):
                self.running = False  # another prompt (a stale one of ours, or someone else's) runs now
            return False
        if kind != "progress" or data.get("node") != self.graph.sampler_node:
            self._flush(on_step)
        if kind == "execution_start":
            self.running = True
            self.started_at = time.perf_counter()
            self._server_started_ms = data.get("timestamp")
        elif kind == "execution_success":
            self.success_at = time.perf_counter()
            if isinstance(self._server_started_ms, (int, float)) and isinstance(data.get("timestamp"), (int, float)):
                self.server_execution = (data["timestamp"] - self._server_started_ms) / 1000
        elif kind == "progress" and data.get("node") == self.graph.sampler_node:
            self._progress(int(data.get("value") or 0), on_step)
        elif kind == "executed" and data.get("node") == self.graph.output_node:
            self.files = list(((data.get("output") or {}).get("images")) or [])
        elif kind == "execution_error":
            self.error = failures.execution_failed(data)
        elif kind == "execution_interrupted":
            self.error = SketchpadError("the job was interrupted on the ComfyUI server (someone stopped it there)")
        elif kind == "executing" and data.get("node") is None:
            self.running = False
            self.ended_at = time.perf_counter()
            if self.error is not None:
                raise self.error
            return True
        return False

    def on_frame(self, data: bytes, on_step: OnStep) -> bool:
        """True when the frame was our result picture."""
        frame = parse_frame(data)
        if frame is None:
            return False
        if frame.prompt_id is not None and frame.prompt_id != self.prompt_id:
            return False
        if frame.prompt_id is None and not self.running:
            return False  # an untagged frame while another prompt runs is not ours
        is_result = frame.node_id == self.graph.output_node if frame.node_id is not None else frame.is_png
        if is_result:
            self._flush(on_step)
            self.result = _decode_png(frame.image)
            self.ended_at = self.success_at = time.perf_counter()
            return True
        self.previews_seen += 1
        self.preview_times.append(time.perf_counter())
        self.preview_bytes.append(len(data))
        self.first_preview_at = self.first_preview_at or self.preview_times[-1]
        image = _decode_preview(frame.image) if self.decode_previews else None
        if self._step is not None:  # untagged order: progress came first
            step, self._step = self._step, None
            self._emit(step, image, on_step)
        else:
            self._frame, self._have_frame = image, True
        return False

    def _progress(self, value: int, on_step: OnStep) -> None:
        self._flush(on_step)
        if self._have_frame:
            image, self._frame, self._have_frame = self._frame, None, False
            self._emit(value, image, on_step)
        else:
            self._step = value  # its frame may follow (untagged order), or never come (previews off)

    def _flush(self, on_step: OnStep) -> None:
        if self._step is not None:
            step, self._step = self._step, None
            self._emit(step, None, on_step)

    def _emit(self, step: int, image, on_step: OnStep) -> None:
        self.steps_seen += 1
        on_step(StepPreview(min(max(step, 1), self.total), self.total, image))


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


def _decode_preview(data: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _decode_png(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        raise ServerError("the ComfyUI server sent a picture that cannot be read") from None
