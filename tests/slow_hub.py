"""A stand-in for the Hugging Face Hub on 127.0.0.1 whose big file downloads at a trickle.

It answers the requests huggingface_hub 2.x makes for `snapshot_download` (recorded from a real
run: repo info, file tree, HEAD then GET per file), so the app's real download code runs against
it; the UNet weights come at ~80 KB/s, as a first start on a slow line that would take many hours.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time

REVISION = "a" * 40
BIG_FILE = "unet/diffusion_pytorch_model.safetensors"
FILES = {"model_index.json": b'{"_class_name": "StableDiffusionPipeline"}', BIG_FILE: 3_438_167_536}


class SlowHub:
    def __init__(self):
        self.big_download_started = threading.Event()
        self._stop = threading.Event()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._answer(self, body=False)

            def do_GET(self):
                hub._answer(self, body=True)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler, body: bool) -> None:
        path = handler.path
        if path.startswith("/api/models/") and "/tree/" in path:
            return _json(handler, [{"type": "file", "path": name, "size": _size(name), "oid": _oid(name)}
                                   for name in FILES])
        if path.startswith("/api/models/"):
            return _json(handler, {"id": "someone/sd15", "sha": REVISION, "siblings": [{"rfilename": n} for n in FILES]})
        name = path.split("/resolve/", 1)[1].split("/", 1)[1] if "/resolve/" in path else None
        if name not in FILES:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(_size(name)))
        handler.send_header("ETag", f'"{_oid(name)}"')
        handler.send_header("X-Repo-Commit", REVISION)
        handler.end_headers()
        if not body:
            return
        content = FILES[name]
        try:
            if isinstance(content, bytes):
                handler.wfile.write(content)
                return
            self.big_download_started.set()
            while not self._stop.is_set():  # never finishes within a test
                handler.wfile.write(b"\0" * 4096)
                handler.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client went away (the app quit)
            pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that quits mid-download resets its connection: expected here


def _size(name: str) -> int:
    content = FILES[name]
    return len(content) if isinstance(content, bytes) else content


def _oid(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def _json(handler, value) -> None:
    body = json.dumps(value).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
