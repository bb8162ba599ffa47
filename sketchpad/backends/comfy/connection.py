"""HTTP and websocket to one ComfyUI server, with timeouts, credentials and plain-worded failures.

Every failure is a ServerError with its kind: UNREACHABLE (nobody listens there), NOT_ANSWERING (the
server was reached but says nothing: stopped, hung), REFUSED (credentials, an answer that is not
ComfyUI's). Credentials go into request headers only (core.server_address).
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import urllib.error
import urllib.request
import uuid

import websocket

from ...core.errors import FailureKind, SketchpadError
from ...core.server_address import TOKEN_ENV, ServerAddress

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 10.0  # seconds for one HTTP call; a busy server still answers HTTP at once
PING_AFTER = 2.0  # websocket silence after which we ping (the server's event loop answers while it computes)
CONNECT_TIMEOUT = 5.0  # for opening the websocket: a reconnect (and a quit waiting on it) never hangs longer
ANSWER_TIMEOUT = 10.0  # no frame at all, not even a pong, for this long: the server stopped answering


class ServerError(SketchpadError):
    """The server could not be reached, stopped answering, refused us or failed; `kind` says which.
    `reason`: for an unreachable server, what the network said (e.g. "Connection refused")."""

    def __init__(self, message: str, kind: FailureKind | None = None, reason: str = ""):
        super().__init__(message, kind)
        self.reason = reason


class Connection:
    """One server: JSON calls, uploads and the websocket of one client id."""

    def __init__(self, address: ServerAddress, http_timeout: float = HTTP_TIMEOUT,
                 answer_timeout: float = ANSWER_TIMEOUT):
        self.address = address
        self.http_timeout = http_timeout
        self.answer_timeout = answer_timeout
        self.client_id = uuid.uuid4().hex
        self._ws: websocket.WebSocket | None = None
        self._last_frame = 0.0
        self._pinged = False

    # -- HTTP -----------------------------------------------------------------------------------
    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None,
             content_type: str = "application/json", accept_statuses=(200,)):
        """Returns (status, decoded JSON or None). Statuses outside accept_statuses raise."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.address.base + path, data=data, method=method)
        for key, value in self.address.headers:
            request.add_header(key, value)
        if data is not None:
            request.add_header("Content-Type", content_type)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error, time.monotonic() - started) from error
        if status in (401, 403):
            raise self._refused(status)
        decoded = _json_or_none(payload)
        if status not in accept_statuses:
            raise ServerError(f"the ComfyUI server at {self.address.base} answered {method} {path} with HTTP {status}",
                              FailureKind.REFUSED if status < 500 else FailureKind.SERVER_FAILED)
        return status, decoded

    def get(self, path: str):
        return self.call("GET", path)[1]

    def post(self, path: str, body) -> None:
        self.call("POST", path, body)

    def upload_png(self, name: str, png: bytes) -> str:
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            "Content-Type: image/png\r\n\r\n"
        ).encode() + png + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n--{boundary}--\r\n"
        ).encode()
        _, answer = self.call("POST", "/upload/image", raw=body, content_type=f"multipart/form-data; boundary={boundary}")
        if not isinstance(answer, dict) or "name" not in answer:
            raise ServerError(f"the ComfyUI server at {self.address.base} did not accept the sketch upload",
                              FailureKind.REFUSED)
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else answer["name"]

    def fetch(self, path: str) -> bytes:
        request = urllib.request.Request(self.address.base + path)
        for key, value in self.address.headers:
            request.add_header(key, value)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:
                return response.read()
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error, time.monotonic() - started) from error

    # -- websocket ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def silent_for(self) -> float:
        """Seconds since the server last sent anything on the websocket."""
        return time.monotonic() - self._last_frame

    def open_socket(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect the websocket under our client id and ask for prompt-tagged preview frames."""
        self.close_socket()
        url = f"{self.address.websocket_base}/ws?clientId={self.client_id}"
        started = time.monotonic()
        try:
            ws = websocket.create_connection(
                url, timeout=min(self.http_timeout, timeout), header=[f"{k}: {v}" for k, v in self.address.headers],
                enable_multithread=True,
            )
            ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        except websocket.WebSocketBadStatusException as error:
            if error.status_code in (401, 403):
                raise self._refused(error.status_code) from error
            raise ServerError(f"the ComfyUI server at {self.address.base} refused the websocket "
                              f"(HTTP {error.status_code})", FailureKind.REFUSED) from error
        except (websocket.WebSocketException, OSError) as error:
            raise self._unreachable(error, time.monotonic() - started) from error
        log.debug("websocket open to %s as %s", self.address.base, self.client_id)
        self._ws = ws
        self._last_frame = time.monotonic()
        self._pinged = False

    def receive(self, wait: float):
        """The next message within `wait` seconds: ("json", dict), ("binary", bytes) or None.

        Silence past PING_AFTER sends a ping; no frame at all for answer_timeout raises ServerError.
        A closed or broken socket raises ConnectionLost.
        """
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        ws.settimeout(max(wait, 0.001))
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError):
            return self._silence()
        except (websocket.WebSocketException, OSError, struct.error) as error:
            self.close_socket()
            raise ConnectionLost(str(error) or type(error).__name__) from error
        self._last_frame = time.monotonic()
        self._pinged = False
        if opcode == websocket.ABNF.OPCODE_TEXT:
            message = _json_or_none(data)
            return ("json", message) if isinstance(message, dict) else None
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return "binary", bytes(data)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_socket()
            raise ConnectionLost("the server closed the connection")
        return None  # pong or ping (websocket-client answers pings itself)

    def _silence(self):
        quiet = self.silent_for
        if quiet > self.answer_timeout:
            self.close_socket()
            raise ServerError(f"the ComfyUI server at {self.address.base} stopped answering "
                              f"(nothing for {quiet:.0f} s, not even to a ping)", FailureKind.NOT_ANSWERING)
        if quiet > PING_AFTER and not self._pinged:
            try:
                self._ws.ping()
            except (websocket.WebSocketException, OSError) as error:
                self.close_socket()
                raise ConnectionLost(str(error)) from error
            self._pinged = True
        return None

    def close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=0.2)
            except (websocket.WebSocketException, OSError) as error:
                log.debug("closing the websocket to %s: %s", self.address.base, error)

    def _refused(self, status: int) -> ServerError:
        if not self.address.headers:  # e.g. a remembered address: its credentials are never saved
            return ServerError(f"the ComfyUI server at {self.address.base} asks for credentials (HTTP {status}): put "
                               f"user:password@ in the address or a token in {TOKEN_ENV}", FailureKind.REFUSED)
        return ServerError(f"the ComfyUI server at {self.address.base} refused the credentials (HTTP {status}); "
                           "check the token or the user:password in the address", FailureKind.REFUSED)

    def _unreachable(self, error: BaseException, waited: float) -> ServerError:
        """Nobody listening (UNREACHABLE), or a server that took the connection and then said nothing
        (NOT_ANSWERING: stopped or hung), with the time we really waited."""
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, (socket.timeout, TimeoutError, websocket.WebSocketTimeoutException)):
            return ServerError(f"the ComfyUI server at {self.address.base} did not answer for {waited:.0f} s",
                               FailureKind.NOT_ANSWERING)
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return ServerError(f"cannot reach the ComfyUI server at {self.address.base} ({text}); is it running?",
                           FailureKind.UNREACHABLE, reason=text)


class ConnectionLost(Exception):
    """The websocket dropped; the client decides whether to reconnect."""


def _json_or_none(payload: bytes):
    if not payload:
        return None
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
