"""Read a .safetensors file's table of contents (names, dtypes, shapes) without torch, and a small
tensor from it with numpy: enough to tell what a model, LoRA or ControlNet is before loading it.

The format is an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

log = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors' name: "F32", "F16", "BF16", ...
    shape: tuple[int, ...]
    offsets: tuple[int, int]  # byte range within the data part


def read_safetensors_header(file: str | os.PathLike) -> dict[str, TensorInfo]:
    """Every tensor's name, dtype and shape; ModelError (one or two lines) for a damaged file."""
    file = Path(file)
    try:
        with open(file, "rb") as stream:
            (length,) = struct.unpack("<Q", _read_exactly(stream, 8))
            if not 2 <= length <= _MAX_HEADER_BYTES:
                raise ValueError(f"a header of {length} bytes")
            header = json.loads(_read_exactly(stream, length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a table")
        header.pop("__metadata__", None)
        tensors = {key: TensorInfo(str(entry["dtype"]), tuple(int(side) for side in entry["shape"]),
                                   (int(entry["data_offsets"][0]), int(entry["data_offsets"][1])))
                   for key, entry in header.items()}
        data_bytes = file.stat().st_size - 8 - length
        if any(end > data_bytes or begin > end for begin, end in (info.offsets for info in tensors.values())):
            raise ValueError("the file is shorter than its header says (truncated?)")
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as error:
        log.warning("reading the header of %s failed", file, exc_info=True)
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise ModelError(f"{file} is damaged or not a safetensors file ({reason}).\nCopy or download it again.") from error
    return tensors


def read_small_tensor(file: str | os.PathLike, key: str, info: TensorInfo) -> np.ndarray:
    """One tensor's values as float32 (meant for a few thousand numbers, e.g. a layer's bias)."""
    begin, end = info.offsets
    with open(file, "rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        stream.seek(8 + length + begin)
        raw = stream.read(end - begin)
    if info.dtype == "BF16":  # the upper half of a float32
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(info.shape)
    if info.dtype not in _NUMPY_DTYPES:
        raise ModelError(f"{file}: {key} is stored as {info.dtype}, which Sketchpad cannot read here")
    return np.frombuffer(raw, _NUMPY_DTYPES[info.dtype]).astype(np.float32).reshape(info.shape)


def _read_exactly(stream, count: int) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise ValueError("the file ends inside its header (truncated?)")
    return data
