"""The ComfyUI backend: generate on a ComfyUI server over HTTP and its websocket.

Imports neither torch, diffusers nor Qt (a test checks), so it runs where only a server has them.
"""

from .client import ComfyBackend  # noqa: F401
from .connection import ServerError  # noqa: F401
