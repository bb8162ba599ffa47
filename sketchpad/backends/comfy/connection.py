"""HTTP and websocket to one ComfyUI server, with timeouts, credentials and plain-worded failures.

Credentials (a bearer token, or user:password@ in the URL) go into request headers only: `address`
is the URL without them, and it is the only form that reaches messages, logs or PNG metadata.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

import websocket

from ...core.errors import SketchpadError

TOKEN_ENV = "SKETCHPAD_SERVER_TOKEN"  # a bearer token for a server behind a proxy (kept off the command line)
HTTP_TIMEOUT = 15.0  # seconds for one HTTP call; a busy server still answers HTTP at once
PING_AFTER = 2.0  # websocket silence after which we ping (the server's event loop answers while it computes)
CONNECT_TIMEOUT = 5.0  # for opening the websocket: a reconnect (and a quit waiting on it) never hangs longer
ANSWER_TIMEOUT = 10.0  # no frame at all, not even a pong, for this long: the server stopped answering


class ServerError(SketchpadError):
    """The server could not be reached, stopped answering, or refused us."""


@dataclass(frozen=True)
class ServerAddress:
    base: str  # http(s)://host:port[/prefix], no credentials
    headers: tuple[tuple[str, str], ...]

    @property
    def websocket_base(self) -> str:
        return "ws" + self.base[len("http"):]


def parse_server_url(url: str, token: str | None = None) -> ServerAddress:
    """http/https URL (ws/wss accepted too), with optional user:password@ or a bearer token."""
    text = (url or "").strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    scheme = {"http": "http", "https": "https", "ws": "http", "wss": "https"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise SketchpadError(f"--server needs an http:// or https:// address such as http://127.0.0.1:8188 (got {_safe(url)!r})")
    try:
        port = parts.port
    except ValueError:
        raise SketchpadError(f"the server address has a bad port: {_safe(url)!r}") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port else "")
    base = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    headers = []
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
    if token:
        headers.append(("Authorization", f"Bearer {token}"))
    return ServerAddress(base, tuple(headers[-1:]))  # a token given explicitly wins over the URL's


def display_address(url: str) -> str:
    """The address as shown to the person: without credentials, and never an exception."""
    try:
        return parse_server_url(url).base
    except SketchpadError:
        return _safe(url)


def _safe(url: str) -> str:
    """The URL with any user:password removed, for messages."""
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        netloc = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "(unreadable address)"


class Connection:
    """One server: JSON calls, uploads and the websocket of one client id."""

    def __init__(self, address: ServerAddress, http_timeout: float = HTTP_TIMEOUT,
                 answer_timeout: float = ANSWER_TIMEOUT):
        self.address = address
        self.http_timeout = http_timeout
        self.answer_timeout = answer_timeout
        self.client_id = uuid.uuid4().hex
        self.preview_metadata = False  # the server agreed to tag preview frames with their prompt
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
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error) from None
        if status in (401, 403):
            raise self._refused(status)
        decoded = _json_or_none(payload)
        if status not in accept_statuses:
            raise ServerError(f"the ComfyUI server at {self.address.base} answered {method} {path} with HTTP {status}")
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
            raise ServerError(f"the ComfyUI server at {self.address.base} did not accept the sketch upload")
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else answer["name"]

    def fetch(self, path: str) -> bytes:
        request = urllib.request.Request(self.address.base + path)
        for key, value in self.address.headers:
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:
                return response.read()
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error) from None

    # -- websocket ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None

    def open_socket(self) -> None:
        """Connect the websocket under our client id and ask for prompt-tagged preview frames."""
        self.close_socket()
        url = f"{self.address.websocket_base}/ws?clientId={self.client_id}"
        try:
            ws = websocket.create_connection(
                url, timeout=min(self.http_timeout, CONNECT_TIMEOUT), header=[f"{k}: {v}" for k, v in self.address.headers],
                enable_multithread=True,
            )
            ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        except websocket.WebSocketBadStatusException as error:
            if error.status_code in (401, 403):
                raise self._refused(error.status_code) from None
            raise ServerError(f"the ComfyUI server at {self.address.base} refused the websocket (HTTP {error.status_code})") from None
        except (websocket.WebSocketException, OSError) as error:
            raise self._unreachable(error) from None
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
            raise ConnectionLost(str(error) or type(error).__name__) from None
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
        quiet = time.monotonic() - self._last_frame
        if quiet > self.answer_timeout:
            self.close_socket()
            raise ServerError(f"the ComfyUI server at {self.address.base} stopped answering "
                              f"(nothing for {quiet:.0f} s, not even to a ping)")
        if quiet > PING_AFTER and not self._pinged:
            try:
                self._ws.ping()
            except (websocket.WebSocketException, OSError) as error:
                self.close_socket()
                raise ConnectionLost(str(error)) from None
            self._pinged = True
        return None

    def close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=0.2)
            except (websocket.WebSocketException, OSError):
                pass

    def _refused(self, status: int) -> ServerError:
        if not self.address.headers:  # e.g. a remembered address: its credentials are never saved
            return ServerError(f"the ComfyUI server at {self.address.base} asks for credentials (HTTP {status}): put "
                               f"user:password@ in the address or a token in {TOKEN_ENV}")
        return ServerError(f"the ComfyUI server at {self.address.base} refused the credentials (HTTP {status}); "
                           "check the token or the user:password in the address")

    def _unreachable(self, error: BaseException) -> ServerError:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
            return ServerError(f"the ComfyUI server at {self.address.base} did not answer within {self.http_timeout:.0f} s")
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return ServerError(f"cannot reach the ComfyUI server at {self.address.base} ({text}); is it running?")


class ConnectionLost(Exception):
    """The websocket dropped; the client decides whether to reconnect."""


def _json_or_none(payload: bytes):
    if not payload:
        return None
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
