"""Record a real ComfyUI server's traffic into the JSON fixtures the stand-in is checked against.

The fixtures here come from ComfyUI commit a125cd84b054 (version 0.3.64, CPU, a random-weight
SD1.5 checkpoint). Run by hand against a server started with `--preview-method latent2rgb` that has one SD1.5
checkpoint (any weights):

    python tests/comfy_recordings/record.py http://127.0.0.1:8188 CHECKPOINT.safetensors COMMIT

With a LoRA in the server's models/loras (make_server_lora.py makes a random one), record only the
LoRA scenarios:

    python tests/comfy_recordings/record.py http://127.0.0.1:8188 CHECKPOINT.safetensors COMMIT --lora LORA.safetensors

and with a ControlNet in its models/controlnet (make_server_controlnet.py), the ControlNet scenarios:

    python tests/comfy_recordings/record.py http://127.0.0.1:8188 CHECKPOINT.safetensors COMMIT --control CN.safetensors

and with an inpainting checkpoint beside the regular one (make_server_checkpoint.py --inpainting), the
mask scenarios:

    python tests/comfy_recordings/record.py http://127.0.0.1:8188 CHECKPOINT.safetensors COMMIT --masks INPAINTING.safetensors

Why a job waits (first thing after the server started, so that its checkpoint is not loaded yet), and
what a stopped (SIGSTOP, not dead) server does, given its process id:

    python tests/comfy_recordings/record.py http://127.0.0.1:8188 CHECKPOINT.safetensors COMMIT --waiting
    python tests/comfy_recordings/record.py http://127.0.0.1:8188 CHECKPOINT.safetensors COMMIT --stopped PID

It talks raw HTTP and websocket (not Sketchpad's client), so the fixtures say what the server does,
not what the client expects. Binary frames are summarised (header fields, byte count, decoded image
size), never stored whole.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import websocket
from PIL import Image

HERE = Path(__file__).resolve().parent
OUR_NODES = ("CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "VAEEncode", "KSampler",
             "KSamplerAdvanced", "EmptyLatentImage", "VAEDecode", "SaveImageWebsocket", "PreviewImage",
             "LoraLoader")


class Recorder:
    def __init__(self, base: str, ckpt: str, commit: str):
        self.base = base.rstrip("/")
        self.ckpt = ckpt
        self.commit = commit

    # -- HTTP ----------------------------------------------------------------------------------
    def http(self, method: str, path: str, body: dict | bytes | None = None, content_type=None):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type or "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            payload = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = raw.decode(errors="replace")
        return status, payload

    def upload(self, name: str, png: bytes, overwrite: bool | None = None):
        boundary = uuid.uuid4().hex
        parts = [(f'Content-Disposition: form-data; name="image"; filename="{name}"\r\n'
                  "Content-Type: image/png\r\n\r\n").encode() + png]
        if overwrite is not None:
            parts.append(b'Content-Disposition: form-data; name="overwrite"\r\n\r\n'
                         + (b"true" if overwrite else b"false"))
        body = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
        return self.http("POST", "/upload/image", body, f"multipart/form-data; boundary={boundary}")

    # -- websocket -----------------------------------------------------------------------------
    def connect(self, client_id: str, preview_metadata: bool):
        url = self.base.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        ws = websocket.create_connection(url, timeout=120)
        hello = [summarise(*ws.recv_data())]
        if preview_metadata:
            ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            hello.append(summarise(*ws.recv_data()))
        return ws, hello

    def until_done(self, ws, prompt_id: str, limit: float = 300, stamped: bool = False):
        """Every message up to the `executing` with node None for `prompt_id` (sent after errors too);
        `stamped`: each with its arrival time (time.monotonic()) under "_at"."""
        messages, deadline = [], time.monotonic() + limit
        while time.monotonic() < deadline:
            msg = summarise(*ws.recv_data())
            messages.append({**msg, "_at": time.monotonic()})
            data = msg.get("data") or {}
            if msg.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return messages if stamped else [{k: v for k, v in m.items() if k != "_at"} for m in messages]
        raise TimeoutError(f"no end for {prompt_id}")

    # -- graphs --------------------------------------------------------------------------------
    def graph(self, image: str | None, sampler: dict, size=(64, 64), output="SaveImageWebsocket", loras=()):
        g = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": self.ckpt}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
            "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
            "8": {"class_type": output, "inputs": {"images": ["7", 0]}},
        }
        if image is None:
            g["5"] = {"class_type": "EmptyLatentImage", "inputs": {"width": size[0], "height": size[1], "batch_size": 1}}
        else:
            g["4"] = {"class_type": "LoadImage", "inputs": {"image": image}}
            g["5"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["1", 2]}}
        common = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["5", 0],
                  "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal"}
        g["6"] = {"class_type": sampler.pop("class_type", "KSampler"), "inputs": {**common, **sampler}}
        model, clip = ["1", 0], ["1", 1]
        for number, (lora, weight) in enumerate(loras, start=10):  # one LoraLoader per LoRA, chained
            g[str(number)] = {"class_type": "LoraLoader", "inputs": {
                "model": model, "clip": clip, "lora_name": lora, "strength_model": weight, "strength_clip": weight}}
            model, clip = [str(number), 0], [str(number), 1]
        g["2"]["inputs"]["clip"] = g["3"]["inputs"]["clip"] = clip
        g["6"]["inputs"]["model"] = model
        return g

    def post_prompt(self, graph: dict, prompt_id: str, client_id: str):
        body = {"prompt": graph, "prompt_id": prompt_id, "client_id": client_id,
                "extra_data": {"preview_method": "latent2rgb"}}
        return self.http("POST", "/prompt", body)

    def job(self, ws, client_id: str, label: str, graph: dict, sink) -> str:
        """Post one prompt, collect its messages until it is done, and hand the record to sink."""
        pid = str(uuid.uuid4())
        status, response = self.post_prompt(graph, pid, client_id)
        messages = self.until_done(ws, pid) if status == 200 else []
        sink(label, {"comfyui_commit": self.commit, "prompt_id": pid, "client_id": client_id, "graph": graph,
                     "response": {"status": status, "body": response}, "messages": messages})
        return pid


def summarise(opcode: int, data: bytes) -> dict:
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return json.loads(data)
    event = struct.unpack(">I", data[:4])[0]
    out = {"binary": {"event": event, "bytes": len(data)}}
    if event == 1:
        out["binary"]["format"] = struct.unpack(">I", data[4:8])[0]
        image = data[8:]
    elif event == 4:
        length = struct.unpack(">I", data[4:8])[0]
        out["binary"]["metadata"] = json.loads(data[8:8 + length])
        image = data[8 + length:]
    else:
        return out
    with Image.open(io.BytesIO(image)) as decoded:
        out["binary"]["image"] = {"format": decoded.format, "size": list(decoded.size), "mode": decoded.mode}
    return out


def sketch_png(seed: int, size=(64, 64)) -> bytes:
    image = Image.new("RGB", size, (255, 255, 255))
    for x in range(size[0]):
        image.putpixel((x, (x * seed) % size[1]), (0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_fixture(name: str, record: dict) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print("wrote", name)


def record_all(base: str, ckpt: str, commit: str, sink=write_fixture) -> None:
    """Run every scenario against the server at `base`, handing each record to sink(name, record)."""
    r = Recorder(base, ckpt, commit)

    def save(name: str, record: dict, commit: str) -> None:
        sink(name, {"comfyui_commit": commit, **record})

    status, info = r.http("GET", "/object_info")
    trimmed = {name: info[name] for name in OUR_NODES if name in info}
    save("object_info", {"status": status, "nodes": trimmed, "node_count": len(info)}, commit)
    save("features", {"status": r.http("GET", "/features")[1]}, commit)
    save("system_stats", {"body": r.http("GET", "/system_stats")[1]}, commit)

    png = sketch_png(3)
    name = f"sketchpad-{uuid.uuid4().hex[:8]}.png"
    uploads = [r.upload(name, png), r.upload(name, png), r.upload(name, sketch_png(5)),
               r.upload(name, sketch_png(7), overwrite=True)]
    save("upload", {"filename": name, "same_bytes_twice": uploads[:2], "other_bytes_same_name": uploads[2],
                    "other_bytes_overwrite": uploads[3]}, commit)
    name = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", png)[1]["name"]

    client = uuid.uuid4().hex
    ws, hello = r.connect(client, preview_metadata=True)
    legacy_client = uuid.uuid4().hex
    legacy_ws, legacy_hello = r.connect(legacy_client, preview_metadata=False)
    save("hello", {"with_preview_metadata": hello, "without": legacy_hello}, commit)

    def job(label, graph, ws=ws, client=client):
        return r.job(ws, client, label, graph, sink)

    job("img2img_first", r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5}))
    job("img2img_denoise_only", r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.6}))
    job("img2img_legacy_frames", r.graph(name, {"seed": 2, "steps": 3, "denoise": 0.6}), legacy_ws, legacy_client)
    job("txt2img", r.graph(None, {"seed": 1, "steps": 3, "denoise": 1.0}))
    job("advanced_start_at_step", r.graph(name, {
        "class_type": "KSamplerAdvanced", "add_noise": "enable", "noise_seed": 1, "steps": 5, "start_at_step": 3,
        "end_at_step": 10000, "return_with_leftover_noise": "disable"}))
    job("preview_image_output", r.graph(name, {"seed": 3, "steps": 2, "denoise": 0.5}, output="PreviewImage"))

    # errors found while validating: no job is queued
    bad_ckpt = r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5})
    bad_ckpt["1"]["inputs"]["ckpt_name"] = "no-such-model.safetensors"
    job("error_400_missing_checkpoint", bad_ckpt)
    bad_sampler = r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5})
    bad_sampler["6"]["inputs"]["sampler_name"] = "no_such_sampler"
    job("error_400_unknown_sampler", bad_sampler)
    unknown_node = r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5})
    unknown_node["8"]["class_type"] = "NoSuchNode"
    job("error_400_unknown_node", unknown_node)
    missing_image = r.graph("never-uploaded.png", {"seed": 1, "steps": 3, "denoise": 0.5})
    job("error_400_missing_image", missing_image)

    # a failure while running: a latent far too large to allocate
    huge = r.graph(None, {"seed": 1, "steps": 3, "denoise": 1.0}, size=(16384, 16384))
    huge["5"]["inputs"]["batch_size"] = 4096
    job("execution_error_out_of_memory", huge)

    # queue and targeted interrupt: a long job of ours runs, a second waits, the legacy client waits too
    long_graph = r.graph(None, {"seed": 9, "steps": 400, "denoise": 1.0}, size=(256, 256))
    running, pending = str(uuid.uuid4()), str(uuid.uuid4())
    others = str(uuid.uuid4())
    r.post_prompt(long_graph, running, client)
    r.post_prompt(r.graph(None, {"seed": 10, "steps": 2, "denoise": 1.0}), pending, client)
    r.post_prompt(r.graph(None, {"seed": 11, "steps": 2, "denoise": 1.0}), others, legacy_client)
    seen = []
    while not any(m.get("type") == "progress" and (m.get("data") or {}).get("value", 0) >= 2 for m in seen):
        seen.append(summarise(*ws.recv_data()))
    queue_before = r.http("GET", "/queue")
    interrupt_not_running = r.http("POST", "/interrupt", {"prompt_id": pending})
    time.sleep(1.0)
    still_running = r.http("GET", "/queue")
    delete = r.http("POST", "/queue", {"delete": [pending]})
    after_delete = r.http("GET", "/queue")
    interrupt = r.http("POST", "/interrupt", {"prompt_id": running})
    tail = r.until_done(ws, running)
    legacy_messages = []
    legacy_ws.settimeout(120)

    def drain_legacy():
        try:
            legacy_messages.extend(r.until_done(legacy_ws, others))
        except Exception as error:  # noqa: BLE001 - a recording tool: say what happened
            legacy_messages.append({"recorder_error": repr(error)})

    thread = threading.Thread(target=drain_legacy)
    thread.start()
    thread.join(180)
    after = r.http("GET", "/queue")
    save("queue_and_interrupt", {
        "running": running, "pending": pending, "other_clients_job": others, "client_id": client,
        "messages_until_step_2": seen, "queue_before": summarise_queue(queue_before),
        "interrupt_not_running": interrupt_not_running, "queue_after_interrupt_not_running": summarise_queue(still_running),
        "delete_pending": delete, "queue_after_delete": summarise_queue(after_delete),
        "interrupt_running": interrupt, "messages_after_interrupt": tail,
        "other_client_messages": legacy_messages, "queue_at_end": summarise_queue(after),
    }, commit)
    ws.close()
    legacy_ws.close()


def record_lora(base: str, ckpt: str, commit: str, lora: str, sink=write_fixture) -> None:
    """The LoRA scenarios: LoraLoader's /object_info entry, a job through two chained LoraLoaders
    (the same file at two weights), and a LoRA the server lacks."""
    r = Recorder(base, ckpt, commit)
    status, info = r.http("GET", "/object_info/LoraLoader")
    sink("object_info_lora", {"comfyui_commit": commit, "status": status, "body": info})
    name = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", sketch_png(3))[1]["name"]
    client = uuid.uuid4().hex
    ws, _ = r.connect(client, preview_metadata=True)
    for label, loras in (("lora_img2img", [(lora, 0.8), (lora, -0.5)]),
                         ("error_400_missing_lora", [("no-such-lora.safetensors", 1.0)])):
        graph = r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5}, loras=loras)
        r.job(ws, client, label, graph, sink)
    ws.close()


def record_control(base: str, ckpt: str, commit: str, controlnet: str, sink=write_fixture) -> None:
    """The ControlNet scenarios: the loader's and applier's /object_info entries, an img2img job steered
    by ControlNetApplyAdvanced fed with a second uploaded picture, and a ControlNet the server lacks."""
    r = Recorder(base, ckpt, commit)
    nodes = {}
    for node in ("ControlNetLoader", "ControlNetApplyAdvanced"):
        status, info = r.http("GET", f"/object_info/{node}")
        nodes.update(info)
    sink("object_info_control", {"comfyui_commit": commit, "status": status, "body": nodes})
    name = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", sketch_png(3))[1]["name"]
    hint = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", sketch_png(4))[1]["name"]
    client = uuid.uuid4().hex
    ws, _ = r.connect(client, preview_metadata=True)
    for label, model in (("control_img2img", controlnet), ("error_400_missing_controlnet", "no-such-controlnet.safetensors")):
        graph = r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5})
        graph["20"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": model}}
        graph["21"] = {"class_type": "LoadImage", "inputs": {"image": hint}}
        graph["22"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "control_net": ["20", 0], "image": ["21", 0],
            "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}}
        graph["6"]["inputs"]["positive"], graph["6"]["inputs"]["negative"] = ["22", 0], ["22", 1]
        r.job(ws, client, label, graph, sink)
    ws.close()


MASK_NODES = ("LoadImageMask", "SetLatentNoiseMask", "LatentCompositeMasked", "InpaintModelConditioning")


def record_masks(base: str, ckpt: str, commit: str, inpainting: str, sink=write_fixture) -> None:
    """The mask scenarios, in the graphs Sketchpad sends (workflow.py): the mask nodes' /object_info
    entries; on the regular checkpoint a crop redone under a latent-sized mask (LoadImageMask +
    SetLatentNoiseMask) at denoise 0.5, then at denoise 1 (the masked latents blanked with
    LatentCompositeMasked); on the inpainting checkpoint the same through InpaintModelConditioning
    with a pixel-sized mask, at 0.5 and 1 (from an empty latent); and a mask picture the server lacks."""
    r = Recorder(base, ckpt, commit)
    nodes = {}
    for node in MASK_NODES:
        status, info = r.http("GET", f"/object_info/{node}")
        nodes.update(info)
    sink("object_info_masks", {"comfyui_commit": commit, "status": status, "body": nodes})
    crop = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", sketch_png(3))[1]["name"]
    latent_mask = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", mask_png((8, 8), (2, 2, 6, 5)))[1]["name"]
    pixel_mask = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", mask_png((64, 64), (16, 16, 48, 40)))[1]["name"]
    client = uuid.uuid4().hex
    ws, _ = r.connect(client, preview_metadata=True)

    def regular(denoise: float, mask: str) -> dict:
        graph = r.graph(crop, {"seed": 1, "steps": 3, "denoise": denoise})
        graph["30"] = {"class_type": "LoadImageMask", "inputs": {"image": mask, "channel": "red"}}
        latent = ["5", 0]
        if denoise == 1.0:
            graph["33"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
            graph["34"] = {"class_type": "LatentCompositeMasked", "inputs": {
                "destination": latent, "source": ["33", 0], "x": 0, "y": 0, "resize_source": False, "mask": ["30", 0]}}
            latent = ["34", 0]
        graph["31"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": latent, "mask": ["30", 0]}}
        graph["6"]["inputs"]["latent_image"] = ["31", 0]
        return graph

    def inpainting_model(denoise: float) -> dict:
        graph = r.graph(crop if denoise < 1.0 else None, {"seed": 1, "steps": 3, "denoise": denoise})
        graph["1"]["inputs"]["ckpt_name"] = inpainting
        graph["4"] = {"class_type": "LoadImage", "inputs": {"image": crop}}
        if denoise < 1.0:
            del graph["5"]  # the latent comes from InpaintModelConditioning
        graph["30"] = {"class_type": "LoadImageMask", "inputs": {"image": pixel_mask, "channel": "red"}}
        graph["32"] = {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "pixels": ["4", 0], "mask": ["30", 0],
            "noise_mask": False}}
        graph["6"]["inputs"].update(positive=["32", 0], negative=["32", 1],
                                    latent_image=["32", 2] if denoise < 1.0 else ["5", 0])
        return graph

    for label, graph in (("mask_img2img", regular(0.5, latent_mask)), ("mask_txt2img", regular(1.0, latent_mask)),
                         ("inpainting_model_img2img", inpainting_model(0.5)),
                         ("inpainting_model_txt2img", inpainting_model(1.0)),
                         ("error_400_missing_mask", regular(0.5, "never-uploaded-mask.png"))):
        r.job(ws, client, label, graph, sink)
    ws.close()


def mask_png(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    """A mask as Sketchpad uploads it: grey ("L"), 255 where the picture is redone."""
    image = Image.new("L", size, 0)
    image.paste(255, box)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def record_waiting(base: str, ckpt: str, commit: str, sink=write_fixture, other_steps: int = 8) -> None:
    """Why our job shows no step yet. First the model-loading phase of a server that has not loaded the
    checkpoint yet (so run this first after starting it), then our job queued behind another client's.
    Each message carries `t`: its arrival in seconds after our prompt was posted."""
    r = Recorder(base, ckpt, commit)
    name = r.upload(f"sketchpad-{uuid.uuid4().hex[:8]}.png", sketch_png(3))[1]["name"]
    client = uuid.uuid4().hex
    ws, _ = r.connect(client, preview_metadata=True)
    pid = str(uuid.uuid4())
    posted = time.monotonic()
    answer = r.post_prompt(r.graph(name, {"seed": 1, "steps": 3, "denoise": 0.5}), pid, client)
    sink("model_loading", {"comfyui_commit": commit, "client_id": client, "prompt_id": pid,
                           "response": {"status": answer[0], "body": answer[1]},
                           "messages": timed(r.until_done(ws, pid, stamped=True), posted)})

    other = uuid.uuid4().hex
    other_ws, _ = r.connect(other, preview_metadata=True)
    theirs, ours = str(uuid.uuid4()), str(uuid.uuid4())
    their_answer = r.post_prompt(r.graph(None, {"seed": 5, "steps": other_steps, "denoise": 1.0}, size=(192, 192)),
                                 theirs, other)
    time.sleep(0.5)
    posted = time.monotonic()
    our_answer = r.post_prompt(r.graph(name, {"seed": 3, "steps": 3, "denoise": 0.6}), ours, client)
    queue_after_post = r.http("GET", "/queue")
    messages = timed(r.until_done(ws, ours, stamped=True), posted)
    other_ws.close()
    ws.close()
    sink("queue_waiting", {"comfyui_commit": commit, "client_id": client, "other_client": other, "theirs": theirs,
                           "ours": ours, "their_answer": {"status": their_answer[0], "body": their_answer[1]},
                           "our_answer": {"status": our_answer[0], "body": our_answer[1]},
                           "queue_after_post": summarise_queue(queue_after_post), "messages": messages})


def timed(messages, since: float) -> list[dict]:
    """Stamped messages with their arrival as seconds after `since`."""
    return [{**{k: v for k, v in message.items() if k != "_at"}, "t": round(message["_at"] - since, 3)}
            for message in messages]


def record_stopped(base: str, ckpt: str, commit: str, stop, resume, sink=write_fixture, wait: float = 6.0) -> None:
    """A server stopped (its process given SIGSTOP by `stop`: hung, not dead): what an open websocket,
    a new HTTP call and a new websocket get while it is stopped, and what arrives once `resume` lets
    it go on (SIGCONT)."""
    r = Recorder(base, ckpt, commit)
    ws, _ = r.connect(uuid.uuid4().hex, preview_metadata=True)
    stop()
    try:
        ws.ping(b"stopped?")
        ws_outcome = outcome(lambda: frame_or_pong(ws), ws, wait)
        host, port = base.split("//", 1)[1].split(":")
        tcp = outcome(lambda: socket.create_connection((host, int(port)), timeout=wait).close() or "connected",
                      None, wait)
        http_started = time.monotonic()
        request = urllib.request.Request(base + "/queue")
        try:
            with urllib.request.urlopen(request, timeout=wait) as answer:
                http = {"answered": answer.status}
        except (TimeoutError, socket.timeout, urllib.error.URLError) as error:
            http = {"error": type(getattr(error, "reason", error)).__name__}
        http["seconds"] = round(time.monotonic() - http_started, 1)
        new_ws = outcome(lambda: websocket.create_connection(base.replace("http", "ws", 1) + "/ws?clientId=late",
                                                           timeout=wait).close() or "connected", None, wait)
    finally:
        resume()
    after = outcome(lambda: frame_or_pong(ws), ws, wait)
    ws.close()
    sink("stopped_server", {"comfyui_commit": commit, "wait_seconds": wait, "open_websocket_ping": ws_outcome,
                            "tcp_connect": tcp, "http_get_queue": http, "new_websocket": new_ws,
                            "open_websocket_after_sigcont": after})


def frame_or_pong(ws) -> dict:
    opcode, data = ws.recv_data(control_frame=True)
    return {"pong": data.decode()} if opcode == websocket.ABNF.OPCODE_PONG else summarise(opcode, data)


def outcome(action, ws, wait: float) -> dict:
    """What one action got within `wait` seconds: its result, or the kind of error and when."""
    started = time.monotonic()
    if ws is not None:
        ws.settimeout(wait)
    try:
        result = action()
    except Exception as error:  # noqa: BLE001 - a recording tool: say what happened
        return {"error": type(error).__name__, "seconds": round(time.monotonic() - started, 1)}
    return {"result": result if isinstance(result, (str, dict)) else repr(result),
            "seconds": round(time.monotonic() - started, 1)}


def summarise_queue(response):
    """Queue entries as [number, prompt_id, client_id]: the graphs themselves are long and known."""
    status, body = response
    return {"status": status, "body": {key: [[item[0], item[1], item[3].get("client_id"), sorted(item[3])]
                                             for item in items] for key, items in body.items()}}


if __name__ == "__main__":
    if "--waiting" in sys.argv:
        record_waiting(*sys.argv[1:4])
    elif "--stopped" in sys.argv:
        pid = int(sys.argv[sys.argv.index("--stopped") + 1])
        record_stopped(*sys.argv[1:4], stop=lambda: os.kill(pid, signal.SIGSTOP),
                       resume=lambda: os.kill(pid, signal.SIGCONT))
    elif "--control" in sys.argv:
        record_control(*sys.argv[1:4], controlnet=sys.argv[sys.argv.index("--control") + 1])
    elif "--masks" in sys.argv:
        record_masks(*sys.argv[1:4], inpainting=sys.argv[sys.argv.index("--masks") + 1])
    elif "--lora" in sys.argv:
        record_lora(*sys.argv[1:4], lora=sys.argv[sys.argv.index("--lora") + 1])
    else:
        record_all(*sys.argv[1:4])
