"""ComfyUI's binary websocket frames: a big-endian u32 event type, then the payload.

1 = image: u32 format (1 JPEG preview, 2 PNG result), then the image bytes.
4 = image with metadata (only once the client announced supports_preview_metadata): u32 length,
    that many bytes of JSON ({"node_id", "prompt_id", "image_type", ...}), then the image bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
FORMAT_JPEG = 1
FORMAT_PNG = 2


@dataclass(frozen=True)
class ImageFrame:
    image: bytes
    is_png: bool
    prompt_id: str | None  # None for untagged (event 1) frames
    node_id: str | None


def parse_frame(data: bytes) -> ImageFrame | None:
    """The image a frame carries, or None for frame kinds we do not use (or a malformed one)."""
    if len(data) < 8:
        return None
    event, word = struct.unpack(">II", data[:8])
    if event == PREVIEW_IMAGE:
        return ImageFrame(data[8:], word == FORMAT_PNG, None, None)
    if event == PREVIEW_IMAGE_WITH_METADATA:
        try:
            meta = json.loads(data[8:8 + word])
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        return ImageFrame(data[8 + word:], meta.get("image_type") == "image/png",
                          _text(meta.get("prompt_id")), _text(meta.get("node_id")))
    return None


def encode_image_frame(image: bytes, is_png: bool) -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, FORMAT_PNG if is_png else FORMAT_JPEG) + image


def encode_metadata_frame(image: bytes, metadata: dict) -> bytes:
    meta = json.dumps(metadata).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + image


def _text(value) -> str | None:
    return None if value is None else str(value)
