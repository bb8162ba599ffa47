"""A quick look at a server's checkpoints, for the window's chooser (no websocket, no job)."""

from __future__ import annotations

import os

from ...core.errors import FailureKind
from ...core.server_address import TOKEN_ENV, parse_server_url
from .client import _choices
from .connection import Connection, ServerError

LOOKUP_TIMEOUT = 5.0  # the window waits for this; a server that answers HTTP at all answers this fast


def list_checkpoints(url: str, token: str | None = None) -> list[str]:
    conn = Connection(parse_server_url(url, token or os.environ.get(TOKEN_ENV) or None), http_timeout=LOOKUP_TIMEOUT)
    info = conn.get("/object_info/CheckpointLoaderSimple")
    if not isinstance(info, dict) or "CheckpointLoaderSimple" not in info:
        raise ServerError(f"{conn.address.base} does not look like a ComfyUI server (no CheckpointLoaderSimple node)",
                          FailureKind.REFUSED)
    return _choices(info, "CheckpointLoaderSimple", "ckpt_name")
