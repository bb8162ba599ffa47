"""AUTOMATIC1111's LoRA hash, torch-free, so both backends record LoRAs the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path


def lora_short_hash(path: Path) -> str:
    """AUTOMATIC1111's LoRA hash: SHA-256 of a safetensors file after its header, first 12 digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        file.seek(8 + header_length)
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]
