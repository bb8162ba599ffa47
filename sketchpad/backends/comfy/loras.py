"""A request's LoRAs on a ComfyUI server: nothing is uploaded; each must be a file in the server's
models/loras, found by name (core.server_files). Saved pictures carry AUTOMATIC1111's LoRA hash only
for a LoRA given as a file on this computer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ...core.hashes import lora_short_hash
from ...core.params import LoraSpec


def with_local_hash(spec: LoraSpec) -> LoraSpec:
    """The spec with AUTOMATIC1111's hash when its source is a file on this computer (the server's
    copy cannot be read from here; the same name is taken to be the same file)."""
    path = Path(spec.source).expanduser()
    if spec.short_hash or not path.is_file():
        return spec
    try:
        return dataclasses.replace(spec, short_hash=lora_short_hash(path))
    except OSError:
        return spec
