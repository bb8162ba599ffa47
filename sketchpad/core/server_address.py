"""A server's address as the person types it, and as it is shown: plain text work, no network.

Credentials (user:password@ in the URL, or a bearer token) go into request headers only: `base` is
the address without them, and it is the only form that reaches messages, logs, settings or PNG
metadata. The window uses these without loading the ComfyUI client.
"""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass

from .errors import SketchpadError

TOKEN_ENV = "SKETCHPAD_SERVER_TOKEN"  # a bearer token for a server behind a proxy (kept off the command line)


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
    except ValueError as error:
        raise SketchpadError(f"the server address has a bad port: {_safe(url)!r}") from error
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
