"""A stand-in ComfyUI server for CI: real HTTP and websocket on 127.0.0.1, replaying what a real
server does (tests/comfy_recordings/, recorded from ComfyUI; tests/test_comfy_standin.py checks
the two agree message for message).

It reproduces: the endpoints Sketchpad uses (/object_info[/node], /system_stats, /features,
/upload/image, /prompt, /queue, /interrupt, /view, /ws), the JSON message order of a job, the
binary frame layout (event 1 + format, or event 4 + JSON metadata after the client announces
supports_preview_metadata), routing by client id, the node cache (an unchanged node is not re-run),
queue deletion and targeted interrupts, and the error answers. Pictures are not generated: a result
is the sketch mixed with seeded noise, so tests can tell seeds and inputs apart. Under a noise mask
(SetLatentNoiseMask) only the masked latents' pixels are mixed; the others come back as a VAE gives
them back, a little off (the lowest bit of each colour flipped), so only a client that pastes the
picture back keeps them exact. An InpaintModelConditioning's mask and picture change the noise, as
they steer a real inpainting model; without its noise mask every pixel is mixed.

Faults for tests: kill() (the process dies: every socket closes), restart(), hang() (stops
answering HTTP and websocket pings, as a process stopped with SIGSTOP), drop_sockets(),
fail_next_job(message, type). Slow parts: step_seconds per sampler step, load_seconds for the
checkpoint loader (the first job's model-loading phase).

Run alone (e.g. to stop it with SIGSTOP): python tests/comfy_standin.py --port 18190 [--step-seconds 0.2]
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

RECORDINGS = Path(__file__).resolve().parent / "comfy_recordings"
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# the order a real server ran our graph's nodes in (recorded); a node not in the graph is skipped.
# The chained LoraLoaders (nodes 10, 11, ...) ran between the latent and the prompts (lora_img2img);
# the ControlNet's picture (21) and loader (20) after the latent, its applier (22) before the sampler
# (control_img2img, recorded with nodes 1-3 cached, so where 2 and 3 fall among 20-22 is not known).
# The mask's picture (30) ran before the sketch's, its latent nodes (33, 34, 31) before the prompts
# and the inpainting conditioning (32) after them (mask_img2img, mask_txt2img, inpainting_model_*).
EXECUTION_ORDER = ("1", "30", "4", "5", "LORAS", "21", "20", "33", "34", "31", "3", "2", "22", "32", "6", "7", "8")
IMAGE_LOADERS = {"LoadImage", "LoadImageMask"}  # their file must be an upload
STEERING = {"ControlNetApplyAdvanced", "InpaintModelConditioning"}  # conditioning nodes that change the picture
NEVER_CACHED = {"SaveImageWebsocket"}  # its IS_CHANGED returns the time
SAMPLERS = {"KSampler", "KSamplerAdvanced"}
MAX_LISTED_CHOICES = 20  # past this a real server says "(list of length N)"


def _recorded(name: str) -> dict:
    return json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))


class StandIn:
    def __init__(self, checkpoints=("standin-sd15.safetensors",), *, loras=(), controlnets=(), step_seconds=0.01,
                 load_seconds=0.0, previews=True,
                 preview_size=64, websocket_output=True, preview_metadata=True, auth: str | None = None,
                 port: int = 0):
        self.checkpoints = list(checkpoints)
        self.step_seconds = step_seconds
        self.load_seconds = load_seconds  # CheckpointLoaderSimple reading its file (when not cached)
        self.previews = previews
        self.preview_size = preview_size
        self.auth = auth  # the exact Authorization header required, or None
        self.preview_metadata = preview_metadata  # False: an older server, untagged frames only
        self.port = port
        nodes = json.loads(json.dumps(_recorded("object_info")["nodes"]))
        nodes["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = self.checkpoints
        nodes.update(json.loads(json.dumps(_recorded("object_info_lora")["body"])))
        self.loras = nodes["LoraLoader"]["input"]["required"]["lora_name"][0] = list(loras)  # models/loras
        nodes.update(json.loads(json.dumps(_recorded("object_info_control")["body"])))
        self.controlnets = nodes["ControlNetLoader"]["input"]["required"]["control_net_name"][0] = list(controlnets)
        nodes.update(json.loads(json.dumps(_recorded("object_info_masks")["body"])))
        if not websocket_output:
            nodes.pop("SaveImageWebsocket")
        self.nodes = nodes
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.answering = threading.Event()
        self.answering.set()
        self.sockets: dict[str, _Socket] = {}
        self.pending: list[tuple] = []  # (number, prompt_id, graph, extra_data, outputs)
        self.running: tuple | None = None
        self.number = 0
        self.uploads: dict[str, bytes] = {}
        self.upload_requests = 0
        self.temp_files: dict[str, bytes] = {}
        self.prompts: list[dict] = []  # every accepted POST /prompt body
        self.interrupts: list[str | None] = []  # prompt ids of targeted interrupts, None for global
        self.deleted: list[str] = []
        self.finished: list[tuple[str, str]] = []  # (prompt_id, "success" | "error" | "interrupted")
        self._interrupt = False
        self._fail_next: tuple[str, str] | None = None
        self._cache: dict[str, object] = {}
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._executor: threading.Thread | None = None
        self._stopping = False
        self.last_node: str | None = None
        self.memory_limit = 64 * 2**30
        self.release_end = threading.Event()
        self.release_end.set()

    # -- life ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StandIn":
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._stopping = False
        self._executor = threading.Thread(target=self._execute_forever, daemon=True)
        self._executor.start()
        return self

    def stop(self) -> None:
        self.kill()

    def kill(self) -> None:
        """Like a killed server process: stop listening, cut every connection, forget the queue."""
        self.answering.set()
        self.release_end.set()
        with self.lock:
            self._stopping = True
            self._interrupt = True
            self.pending.clear()
            self.wake.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self._connections):
            _shutdown(conn)
        self._connections.clear()
        self.sockets.clear()
        if self._executor is not None:
            self._executor.join(5)
            self._executor = None
        self.running = None

    def restart(self) -> None:
        """A fresh server process on the same port (an empty cache, as after a real restart)."""
        self.kill()
        self._cache.clear()
        self._interrupt = False
        self.start()

    def hang(self) -> None:
        self.answering.clear()

    def unhang(self) -> None:
        self.answering.set()

    def drop_sockets(self) -> None:
        for ws in list(self.sockets.values()):
            _shutdown(ws.conn)

    def fail_next_job(self, message: str, exception_type: str = "RuntimeError") -> None:
        self._fail_next = (message, exception_type)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def queue_ids(self) -> list[str]:
        with self.lock:
            return ([self.running[1]] if self.running else []) + [item[1] for item in self.pending]

    # -- HTTP API ------------------------------------------------------------------------------
    def queue_info(self) -> dict:
        with self.lock:
            return {"exec_info": {"queue_remaining": len(self.pending) + (1 if self.running else 0)}}

    def broadcast_status(self) -> None:
        self.send_json("status", {"status": self.queue_info()}, None)

    def post_prompt(self, body: dict):
        graph = body.get("prompt")
        if not isinstance(graph, dict):
            return 400, {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                                   "extra_info": {}}, "node_errors": {}}
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        for node_id, node in graph.items():
            class_type = node.get("class_type")
            if class_type not in self.nodes:
                return 400, {"error": {"type": "invalid_prompt",
                                       "message": f"Cannot execute because node {class_type} does not exist.",
                                       "details": f"Node ID '#{node_id}'", "extra_info": {}}, "node_errors": {}}
        node_errors = {}
        for node_id, node in graph.items():
            errors = self._validate(node)
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": _outputs(graph, self.nodes),
                                        "class_type": node["class_type"]}
        if node_errors:
            return 400, {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                                   "details": "", "extra_info": {}}, "node_errors": node_errors}
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        with self.lock:
            number = self.number
            self.number += 1
            self.prompts.append(body)
            self.pending.append((number, prompt_id, graph, extra, _outputs(graph, self.nodes)))
            self.wake.notify_all()
        self.broadcast_status()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": {}}

    def _validate(self, node: dict) -> list[dict]:
        spec = self.nodes[node["class_type"]]["input"].get("required", {})
        inputs = node.get("inputs") or {}
        errors = []
        for name, config in spec.items():
            value = inputs.get(name)
            if node["class_type"] in IMAGE_LOADERS and name == "image":
                if value not in self.uploads:
                    errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                   "details": f"image - Invalid image file: {value}", "extra_info": {"input_name": "image"}})
                continue
            if isinstance(config[0], list) and value not in config[0]:
                choices = config[0]
                shown = repr(choices) if len(choices) <= MAX_LISTED_CHOICES else f"(list of length {len(choices)})"
                errors.append({"type": "value_not_in_list", "message": "Value not in list",
                               "details": f"{name}: '{value}' not in {shown}",
                               "extra_info": {"input_name": name,
                                              # a real server pads a bare [choices] with {} here
                                              "input_config": ([choices, config[1] if len(config) > 1 else {}]
                                                               if len(choices) <= MAX_LISTED_CHOICES else None),
                                              "received_value": value}})
        return errors

    def post_queue(self, body: dict) -> None:
        with self.lock:
            if body.get("clear"):
                self.pending.clear()
            for prompt_id in body.get("delete") or []:
                before = len(self.pending)
                self.pending = [item for item in self.pending if item[1] != prompt_id]
                if len(self.pending) != before:
                    self.deleted.append(prompt_id)
        self.broadcast_status()

    def post_interrupt(self, body: dict) -> None:
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        with self.lock:
            self.interrupts.append(prompt_id)
            # as the real server: a targeted interrupt only acts when that prompt is the one running
            if prompt_id is None or (self.running is not None and self.running[1] == prompt_id):
                self._interrupt = True

    def get_queue(self) -> dict:
        with self.lock:
            running = [list(self.running)] if self.running else []
            return {"queue_running": running, "queue_pending": [list(item) for item in self.pending]}

    def upload(self, fields: dict) -> tuple[int, dict | None]:
        self.upload_requests += 1
        image = fields.get("image")
        if not image or not image[0]:
            return 400, None
        filename, data = image
        overwrite = (fields.get("overwrite") or (None, b""))[1] in (b"true", b"1")
        name = filename
        if not overwrite:
            stem, dot, suffix = filename.rpartition(".")
            i = 1
            while name in self.uploads and self.uploads[name] != data:
                name = f"{stem} ({i}){dot}{suffix}"
                i += 1
        self.uploads[name] = data
        return 200, {"name": name, "subfolder": "", "type": "input"}

    def system_stats(self) -> dict:
        stats = json.loads(json.dumps(_recorded("system_stats")["body"]))
        stats["devices"][0]["name"] = "standin"
        return stats

    # -- websocket -----------------------------------------------------------------------------
    def send_json(self, kind: str, data: dict, sid: str | None) -> None:
        self._send(sid, _Socket.TEXT, json.dumps({"type": kind, "data": data}).encode())

    def _send(self, sid: str | None, opcode: int, payload: bytes) -> None:
        targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        for ws in targets:
            ws.send(opcode, payload)

    def _wants_metadata(self, sid: str | None) -> bool:
        ws = self.sockets.get(sid) if sid else None
        return bool(ws and ws.flags.get("supports_preview_metadata"))

    def _send_image(self, sid, image: Image.Image, png: bool, meta: dict) -> None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if png else "JPEG", quality=95, compress_level=1)
        data = buffer.getvalue()
        if self._wants_metadata(sid):
            meta = {**meta, "image_type": "image/png" if png else "image/jpeg"}
            blob = json.dumps(meta).encode()
            frame = struct.pack(">II", 4, len(blob)) + blob + data
        else:
            frame = struct.pack(">II", 1, 2 if png else 1) + data
        self._send(sid, _Socket.BINARY, frame)

    # -- the executor --------------------------------------------------------------------------
    def _execute_forever(self) -> None:
        while True:
            with self.lock:
                while not self.pending and not self._stopping:
                    self.wake.wait(0.1)
                if self._stopping:
                    return
                item = self.pending.pop(0)
                self.running = item
                self._interrupt = False
            self.broadcast_status()
            outcome = self._execute(item)
            with self.lock:
                if self._stopping:
                    return
                self.running = None
                self.finished.append((item[1], outcome))
            self.broadcast_status()
            self.send_json("executing", {"node": None, "prompt_id": item[1]}, item[3].get("client_id"))

    def _execute(self, item) -> str:
        _, prompt_id, graph, extra, _ = item
        sid = extra.get("client_id")
        now = lambda: int(time.time() * 1000)  # noqa: E731
        self.send_json("execution_start", {"prompt_id": prompt_id, "timestamp": now()}, sid)
        signatures = {node_id: _signature(graph, node_id) for node_id in graph}
        cached = [node_id for node_id in graph if graph[node_id]["class_type"] not in NEVER_CACHED
                  and self._cache.get(node_id) == signatures[node_id]]
        self.send_json("execution_cached", {"nodes": cached, "prompt_id": prompt_id, "timestamp": now()}, sid)
        states: dict[str, dict] = {}
        values: dict[str, object] = {}
        executed: list[str] = []
        order = [n for n in _execution_order(graph) if n in graph] + [n for n in graph if n not in _execution_order(graph)]
        for node_id in order:
            if node_id in cached:
                continue
            node = graph[node_id]
            self._state(sid, prompt_id, states, node_id, "running", 0.0, 1.0)
            self.last_node = node_id
            self.send_json("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, sid)
            try:
                if node["class_type"] in SAMPLERS and self._fail_next:
                    message, kind = self._fail_next
                    self._fail_next = None
                    raise _NodeFailed(message, kind)
                values[node_id] = self._run_node(sid, prompt_id, graph, node_id, states)
            except _Interrupted:
                self._forget_uncached(graph, signatures, executed, cached)
                self.send_json("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                         "node_type": node["class_type"], "executed": executed,
                                                         "timestamp": now()}, sid)
                return "interrupted"
            except _NodeFailed as error:
                self._forget_uncached(graph, signatures, executed, cached)
                self.send_json("execution_error", {
                    "prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"], "executed": executed,
                    "exception_message": error.message, "exception_type": error.kind,
                    "traceback": ["Traceback (stand-in)\n"], "current_inputs": {}, "current_outputs": list(graph),
                    "timestamp": now()}, sid)
                return "error"
            executed.append(node_id)
            finished = states[node_id]["max"]
            self._state(sid, prompt_id, states, node_id, "finished", finished, finished)
        self._cache = {node_id: signatures[node_id] for node_id in graph}
        self.release_end.wait(60)  # a test may hold the last messages back (as a real server's GC can)
        self.send_json("execution_success", {"prompt_id": prompt_id, "timestamp": now()}, sid)
        return "success"

    def _forget_uncached(self, graph, signatures, executed, cached) -> None:
        self._cache = {node_id: signatures[node_id] for node_id in list(executed) + list(cached)}

    def _state(self, sid, prompt_id, states, node_id, state, value, maximum) -> None:
        states[node_id] = {"value": value, "max": maximum, "state": state, "node_id": node_id, "prompt_id": prompt_id,
                           "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id}
        self.send_json("progress_state", {"prompt_id": prompt_id, "nodes": dict(states)}, sid)

    def _run_node(self, sid, prompt_id, graph, node_id, states):
        node = graph[node_id]
        inputs = node["inputs"]
        kind = node["class_type"]
        if kind in SAMPLERS:
            return self._sample(sid, prompt_id, graph, node_id, states)
        if kind == "CheckpointLoaderSimple":
            time.sleep(self.load_seconds)
            self.answering.wait(30)
            return None
        if kind == "EmptyLatentImage":
            size = 4 * 4 * int(inputs["batch_size"]) * (int(inputs["width"]) // 8) * (int(inputs["height"]) // 8)
            if size > self.memory_limit:  # what a real CPU server said when it could not allocate a latent
                raise _NodeFailed(f"[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                                  f"memory: you tried to allocate {size} bytes. Error code 12 (Cannot allocate memory)\n",
                                  "RuntimeError")
            return None
        if kind == "SaveImageWebsocket":
            image = self._value(graph, inputs["images"])
            self._progress(sid, prompt_id, node_id, states, 0, 1, image, png=True)
            return None
        if kind == "PreviewImage":
            name = f"ComfyUI_temp_standin_{len(self.temp_files) + 1:05d}_.png"
            buffer = io.BytesIO()
            self._value(graph, inputs["images"]).save(buffer, format="PNG")
            self.temp_files[name] = buffer.getvalue()
            self.send_json("executed", {"node": node_id, "display_node": node_id, "output": {
                "images": [{"filename": name, "subfolder": "", "type": "temp"}]}, "prompt_id": prompt_id}, sid)
            return None
        return None

    def _sample(self, sid, prompt_id, graph, node_id, states):
        inputs = graph[node_id]["inputs"]
        steps = int(inputs["steps"])
        if inputs.get("scheduler") == "ddim_uniform":
            # ComfyUI's ddim_uniform takes every (1000 // steps)-th level from 1 until it runs out:
            # one more step than asked when steps does not divide 1000 (test_comfy_real checks this)
            steps = len(range(1, 1000, max(1000 // steps, 1))) if steps else 0
        if graph[node_id]["class_type"] == "KSampler":
            denoise = float(inputs.get("denoise", 1.0))
            run = 0 if denoise <= 0 else steps if denoise > 0.9999 else int(inputs["steps"])
        else:
            run = max(0, min(int(inputs["end_at_step"]), steps) - int(inputs["start_at_step"]))
        preview = Image.new("RGB", (self.preview_size, self.preview_size), (90, 120, 150))
        for step in range(1, run + 1):
            time.sleep(self.step_seconds)
            self.answering.wait(30)
            if self._interrupt:
                raise _Interrupted()
            self._progress(sid, prompt_id, node_id, states, step, run, preview if self.previews else None, png=False)
        return None

    def _progress(self, sid, prompt_id, node_id, states, value, maximum, image, png) -> None:
        self._state(sid, prompt_id, states, node_id, "running", value, maximum)
        meta = {"node_id": node_id, "prompt_id": prompt_id, "display_node_id": node_id, "parent_node_id": None,
                "real_node_id": node_id}
        progress = {"value": value, "max": maximum, "prompt_id": prompt_id, "node": node_id}
        if image is not None and self._wants_metadata(sid):
            self._send_image(sid, image, png, meta)  # tagged frames come before their progress message
            self.send_json("progress", progress, sid)
        else:
            self.send_json("progress", progress, sid)
            if image is not None:
                self._send_image(sid, image, png, meta)

    def _steering(self, graph, link) -> list[int]:
        """What steers the sampler beside its prompts, as numbers: a ControlNet (model, strength, range
        and its picture), an inpainting model's conditioning (its mask and picture), in any order."""
        numbers = []
        while graph[link[0]]["class_type"] in STEERING:
            node = graph[link[0]]
            inputs = node["inputs"]
            if node["class_type"] == "ControlNetApplyAdvanced":
                data = self._upload_of(graph, inputs["image"])
                model = graph[inputs["control_net"][0]]["inputs"]["control_net_name"]
                key = f"{model}:{float(inputs['strength'])!r}:{inputs['start_percent']!r}:{inputs['end_percent']!r}"
            else:
                data = self._upload_of(graph, inputs["mask"]) + self._upload_of(graph, inputs["pixels"])
                key = "inpainting"
            numbers.append(int.from_bytes(hashlib.sha256(key.encode() + data).digest()[:4], "big"))
            link = inputs["positive"]
        return numbers

    def _upload_of(self, graph, link) -> bytes:
        return self.uploads[graph[link[0]]["inputs"]["image"]]

    def _picture(self, graph, link) -> np.ndarray:
        """A LoadImage's picture (float RGB)."""
        with Image.open(io.BytesIO(self._upload_of(graph, link))) as picture:
            return np.asarray(picture.convert("RGB"), dtype=np.float32)

    def _mask(self, graph, link, size: tuple[int, int]) -> np.ndarray:
        """A LoadImageMask's mask (0 to 1) at `size`, each of its pixels a block (a latent-sized mask
        covers whole latents, as ComfyUI scales it)."""
        channel = graph[link[0]]["inputs"]["channel"]
        with Image.open(io.BytesIO(self._upload_of(graph, link))) as image:
            rgba = image.convert("RGBA")
        mask = rgba.getchannel(channel[0].upper()).resize(size, Image.Resampling.NEAREST)
        values = np.asarray(mask, dtype=np.float32) / 255
        return 1 - values if channel == "alpha" else values

    def _latent(self, graph, link) -> tuple[np.ndarray | None, tuple[int, int], np.ndarray | None]:
        """A sampler's latent as pixels (None: empty), their size, and its noise mask (None: all redone)."""
        node = graph[link[0]]
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "EmptyLatentImage":
            return None, (int(inputs["width"]), int(inputs["height"])), None
        if kind == "VAEEncode":
            pixels = self._picture(graph, inputs["pixels"])
            return pixels, (pixels.shape[1], pixels.shape[0]), None
        if kind == "InpaintModelConditioning":
            pixels = self._picture(graph, inputs["pixels"])
            size = (pixels.shape[1], pixels.shape[0])
            return pixels, size, self._mask(graph, inputs["mask"], size).round() if inputs["noise_mask"] else None
        pixels, size, redo = self._latent(graph, inputs["samples" if kind == "SetLatentNoiseMask" else "destination"])
        mask = self._mask(graph, inputs["mask"], size)
        if kind == "SetLatentNoiseMask":
            return pixels, size, mask
        # LatentCompositeMasked with an empty latent as its source: blanked under the mask
        return pixels * (1 - mask[..., None]), size, redo

    def _value(self, graph, link) -> Image.Image:
        """The decoded picture a VAEDecode link stands for: the sketch mixed with seeded noise (with a
        noise mask, only where it redoes; elsewhere the sketch a little off, as from a VAE)."""
        decode = graph[link[0]]
        sampler = graph[decode["inputs"]["samples"][0]]
        inputs = sampler["inputs"]
        seed = int(inputs.get("seed", inputs.get("noise_seed", 0)))
        noise_rng = np.random.default_rng([seed, *_lora_chain(graph, inputs["model"]),
                                           *self._steering(graph, inputs["positive"])])
        pixels, size, redo = self._latent(graph, inputs["latent_image"])
        if pixels is None:  # an empty latent mixes to the noise alone, as a blanked one does
            pixels = np.zeros((size[1], size[0], 3), np.float32)
        if sampler["class_type"] == "KSampler":
            amount = float(inputs["denoise"])
        else:
            amount = (int(inputs["steps"]) - int(inputs["start_at_step"])) / int(inputs["steps"])
        noise = noise_rng.integers(0, 256, pixels.shape).astype(np.float32)
        mixed = np.clip(pixels * (1 - amount) + noise * amount, 0, 255).astype(np.uint8)
        if redo is not None:
            mixed = np.where(redo[..., None] > 0, mixed, pixels.astype(np.uint8) ^ 1)
        return Image.fromarray(mixed)


def _execution_order(graph: dict) -> list[str]:
    loras = sorted((n for n in graph if graph[n]["class_type"] == "LoraLoader"), key=int)
    return [n for step in EXECUTION_ORDER for n in (loras if step == "LORAS" else [step])]


def _lora_chain(graph: dict, model_link) -> list[int]:
    """The LoRAs (name and weight) the sampler's model went through, as numbers to seed the noise:
    a LoRA changes the stand-in's picture as it would a real one."""
    chain = []
    while graph[model_link[0]]["class_type"] == "LoraLoader":
        inputs = graph[model_link[0]]["inputs"]
        key = f"{inputs['lora_name']}:{float(inputs['strength_model'])!r}:{float(inputs['strength_clip'])!r}"
        chain.append(int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big"))
        model_link = inputs["model"]
    return chain


class _Interrupted(Exception):
    pass


class _NodeFailed(Exception):
    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.message, self.kind = message, kind


def _signature(graph: dict, node_id: str):
    node = graph[node_id]
    parts = []
    for name, value in sorted(node["inputs"].items()):
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in graph:
            value = ("link", _signature(graph, value[0]), value[1])
        parts.append((name, json.dumps(value, sort_keys=True, default=str)))
    return (node["class_type"], tuple(parts))


def _outputs(graph: dict, nodes: dict) -> list[str]:
    return [node_id for node_id, node in graph.items() if nodes.get(node["class_type"], {}).get("output_node")]


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass


class _Socket:
    TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10

    def __init__(self, conn: socket.socket, reader):
        self.conn = conn
        self.reader = reader
        self.flags: dict = {}
        self._lock = threading.Lock()

    def send(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = struct.pack(">BB", 0x80 | opcode, length)
        elif length < 65536:
            header = struct.pack(">BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack(">BBQ", 0x80 | opcode, 127, length)
        try:
            with self._lock:
                self.conn.sendall(header + payload)
        except OSError:
            pass  # as the real server: a send to a dead socket is dropped

    def read(self):
        head = self._exact(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._exact(8))[0]
        mask = self._exact(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._exact(length)))
        return opcode, data

    def _exact(self, n: int) -> bytes:
        data = self.reader.read(n) if n else b""
        if len(data) < n:
            raise ConnectionError("closed")
        return data


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet tests
        pass

    def setup(self):
        super().setup()
        self.standin._connections.add(self.connection)

    def finish(self):
        self.standin._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _authorised(self) -> bool:
        if self.standin.auth and self.headers.get("Authorization") != self.standin.auth:
            self._reply(401, {"error": "unauthorised"})
            return False
        return True

    def _reply(self, status: int, body=None, raw: bytes | None = None, content_type="application/json") -> None:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", content_type if data else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        s = self.standin
        if not s.answering.wait(30) or not self._authorised():
            return
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/ws":
            return self._websocket(query.get("clientId") or uuid.uuid4().hex)
        if url.path == "/object_info":
            return self._reply(200, s.nodes)
        if url.path.startswith("/object_info/"):
            name = url.path.rpartition("/")[2]
            return self._reply(200, {name: s.nodes[name]} if name in s.nodes else {})
        if url.path == "/system_stats":
            return self._reply(200, s.system_stats())
        if url.path == "/features":
            return self._reply(200, _recorded("features")["status"])
        if url.path == "/queue":
            return self._reply(200, s.get_queue())
        if url.path == "/prompt":
            return self._reply(200, s.queue_info())
        if url.path == "/view":
            data = s.temp_files.get(query.get("filename", "")) if query.get("type") == "temp" else None
            return self._reply(200, raw=data, content_type="image/png") if data else self._reply(404)
        self._reply(404)

    def do_POST(self):
        s = self.standin
        if not s.answering.wait(30) or not self._authorised():
            return
        path = urllib.parse.urlsplit(self.path).path
        raw = self._body()
        if path == "/upload/image":
            status, body = s.upload(_multipart(raw, self.headers.get("Content-Type", "")))
            return self._reply(status, body)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if path == "/prompt":
            return self._reply(*s.post_prompt(body))
        if path == "/queue":
            s.post_queue(body)
            return self._reply(200)
        if path == "/interrupt":
            s.post_interrupt(body)
            return self._reply(200)
        self._reply(404)

    def _websocket(self, sid: str) -> None:
        s = self.standin
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        self.wfile.flush()
        ws = _Socket(self.connection, self.rfile)
        s.sockets[sid] = ws
        s.send_json("status", {"status": s.queue_info(), "sid": sid}, sid)
        running = s.running
        if running is not None and running[3].get("client_id") == sid:
            s.send_json("executing", {"node": s.last_node}, sid)  # as the real server on a reconnect mid-job
        first = True
        try:
            while True:
                opcode, data = ws.read()
                s.answering.wait(30)  # a hung server answers nothing, not even pings
                if opcode == _Socket.CLOSE:
                    ws.send(_Socket.CLOSE, data[:2])
                    break
                if opcode == _Socket.PING:
                    ws.send(_Socket.PONG, data)
                elif opcode == _Socket.TEXT:
                    try:
                        message = json.loads(data)
                    except ValueError:
                        message = None
                    if (first and s.preview_metadata and isinstance(message, dict)
                            and message.get("type") == "feature_flags"):
                        ws.flags = dict(message.get("data") or {})
                        s.send_json("feature_flags", _recorded("features")["status"], sid)
                    first = False
        except (ConnectionError, OSError):
            pass
        finally:
            if s.sockets.get(sid) is ws:
                del s.sockets[sid]
            self.close_connection = True


def _multipart(body: bytes, content_type: str) -> dict:
    """name -> (filename or None, bytes) for a multipart/form-data body."""
    boundary = content_type.partition("boundary=")[2].strip('"')
    fields = {}
    if not boundary:
        return fields
    for part in body.split(b"--" + boundary.encode()):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = head.decode(errors="replace")
        name = _header_param(disposition, "name")
        if name:
            fields[name] = (_header_param(disposition, "filename"), data[:-2] if data.endswith(b"\r\n") else data)
    return fields


def _header_param(header: str, key: str) -> str | None:
    marker = f' {key}="'
    start = header.find(marker)
    if start < 0:
        marker = f';{key}="'
        start = header.find(marker)
        if start < 0:
            return None
    start += len(marker)
    return header[start:header.find('"', start)]


if __name__ == "__main__":
    def option(name: str, default: str) -> str:
        return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default

    server = StandIn(port=int(option("--port", "8188")), step_seconds=float(option("--step-seconds", "0.2"))).start()
    print(f"stand-in ComfyUI on {server.url}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.stop()
