"""Turn whatever picture a person hands us into the RGB, multiple-of-8 sketch the model needs.

Any size from 1x1 runs: a side below MIN_SIDE is scaled up to it. Below 32 pixels (4 latent pixels)
a model whose group norms hold one channel per group (the tiny test model) can, in a batch of one (no
classifier-free guidance, as in the Live-fast presets), be left with a single value to normalise
after its first downsampling, which torch refuses; SD1.5 itself would run from 8 pixels.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SketchpadError

MAX_SIDE = 4096  # SD1.5 is trained at 512; far larger inputs only exhaust memory
MAX_PIXELS = MAX_SIDE * MAX_SIDE
LATENT_FACTOR = 8
MIN_SIDE = 4 * LATENT_FACTOR  # the smallest side a sketch is run at; smaller ones are scaled up to it
SD15_LONG_SIDE = 512  # SD1.5 was trained at 512x512
# Beyond this long side a picture is offered to be fitted: larger runs take minutes and SD1.5
# repeats its subject there (the largest canvas preset, 768, stays as it is). Another model's native
# size scales it alike (SDXL's 1024: beyond 1536).
SD15_FIT_ABOVE = 768


def load_sketch(path: str | os.PathLike, keep_size: bool = False) -> Image.Image:
    """Read an image file as a sketch, or raise SketchpadError saying why it cannot be used.
    `keep_size`: at its own size (see `to_rgb_picture`), not rounded to multiples of 8."""
    return load_image(path, to_rgb_picture if keep_size else prepare_sketch)


def load_image(path: str | os.PathLike, convert: Callable[[Image.Image], Image.Image], what: str = "sketch"):
    """Read an image file and `convert` it (e.g. to a sketch or a mask), or raise SketchpadError
    saying why the file cannot be used as the `what`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SketchpadError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise SketchpadError(f"{path} is a folder; give an image file (PNG, JPEG, WebP, ...)")
    try:
        return _read_image(path, path, convert)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise SketchpadError(f"{path} is too large to be a {what} (at most {MAX_SIDE}x{MAX_SIDE} pixels)") from error
    except (OSError, ValueError, SyntaxError) as error:  # UnidentifiedImageError is an OSError
        # A PNG whose text chunks (its settings) are broken still holds a good picture: read that.
        stripped = _png_without_text(path)
        if stripped is not None:
            try:
                return _read_image(io.BytesIO(stripped), path, convert)
            except (OSError, ValueError, SyntaxError):
                pass
        if isinstance(error, UnidentifiedImageError):
            raise SketchpadError(f"{path} is not an image file Sketchpad can read (try PNG or JPEG)") from error
        raise SketchpadError(f"{path} could not be read as an image ({_first_line(error)}); is it truncated?") from error


def _read_image(source, path: str, convert) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source) as image:
            _check_size(image.size, path)
            image.load()
            return convert(image)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}


def _png_without_text(path: str) -> bytes | None:
    """The PNG's bytes without its text chunks and without ancillary chunks whose checksum is wrong;
    None when it is no PNG or nothing would change. Critical chunks are kept as they are."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PIXELS * 4 + 64 * 1024 * 1024)  # bounded: a sketch is never larger
    except OSError:
        return None
    if not data.startswith(_PNG_SIGNATURE):
        return None
    kept, position, dropped = [_PNG_SIGNATURE], len(_PNG_SIGNATURE), False
    while position + 12 <= len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        chunk = data[position:position + 12 + length]
        position += 12 + length
        ancillary = bool(kind[0] & 0x20)  # lower-case first letter: a reader may skip it
        if ancillary and (kind in _TEXT_CHUNKS or not _crc_ok(chunk)):
            dropped = True
            continue
        kept.append(chunk)
        if kind == b"IEND":
            break
    return b"".join(kept) if dropped else None


def _crc_ok(chunk: bytes) -> bool:
    return len(chunk) >= 12 and zlib.crc32(chunk[4:-4]) == struct.unpack(">I", chunk[-4:])[0]


def prepare_sketch(image: Image.Image) -> Image.Image:
    """Any PIL image -> opaque RGB whose sides are multiples of 8 and at least MIN_SIDE (resized to the
    nearest such sides)."""
    _check_size(image.size, "the sketch")
    rgb = to_rgb_picture(image)
    size = sketch_size(*rgb.size)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return rgb


def to_rgb_picture(image: Image.Image) -> Image.Image:
    """Any PIL image -> opaque RGB at its own size: a picture whose pixels a mask must leave as they are."""
    _check_size(image.size, "the sketch")
    return _to_rgb(ImageOps.exif_transpose(image) if image.format == "JPEG" else image)


def fit_for_sd15(size: tuple[int, int], native: int = SD15_LONG_SIDE) -> tuple[int, int]:
    """The size the model handles for a picture of `size`: its native size (SD1.5's 512, SDXL's 1024)
    on the long side, the aspect kept as closely as multiples of 8 allow (never below MIN_SIDE)."""
    return fit_long_side(size, native)


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """`size` scaled to `long_side` on its long side, the aspect kept as closely as multiples of 8
    allow (never below MIN_SIDE)."""
    width, height = size
    if width < 1 or height < 1:
        raise SketchpadError(f"a picture of {width}x{height} pixels cannot be fitted")
    scale = long_side / max(width, height)
    # straight from the exact scaled side to the nearest multiple of 8 (rounding twice can miss it)
    return tuple(max(MIN_SIDE, round(side * scale / LATENT_FACTOR) * LATENT_FACTOR) for side in (width, height))


def needs_fit_for_sd15(size: tuple[int, int], native: int = SD15_LONG_SIDE) -> bool:
    return max(size) > native * SD15_FIT_ABOVE // SD15_LONG_SIDE


def fit_sketch_for_sd15(image: Image.Image, native: int = SD15_LONG_SIDE) -> Image.Image:
    """The picture scaled (smoothly, aspect kept) to fit_for_sd15 of its size."""
    return image.resize(fit_for_sd15(image.size, native), Image.Resampling.LANCZOS)


def sketch_size(width: int, height: int) -> tuple[int, int]:
    """The nearest multiple-of-8 size (never below MIN_SIDE)."""
    return (_nearest_multiple(width), _nearest_multiple(height))


def _nearest_multiple(value: int) -> int:
    return max(MIN_SIDE, int(round(value / LATENT_FACTOR)) * LATENT_FACTOR)


def _check_size(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise SketchpadError(f"{name} is empty (0 pixels)")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise SketchpadError(
            f"{name} is {width}x{height}; the largest sketch is {MAX_SIDE}x{MAX_SIDE} pixels (scale it down first)"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _wide_grey_to_rgb(image)
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("LA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode == "CMYK" or mode == "YCbCr" or mode == "LAB" or mode == "HSV" or mode == "1":
        return image.convert("RGB")
    if image.mode == "RGBA":
        # transparent areas are paper, not black
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    # PIL's own convert clips 16-bit and float greys to 255 instead of scaling them
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    if image.mode == "F" and values.max(initial=0) <= 1.0:
        top = 1.0
    grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def scribble_image(sketch: Image.Image) -> Image.Image:
    """The sketch as scribble ControlNets expect it: white lines on black, three channels."""
    return ImageOps.invert(sketch.convert("L")).convert("RGB")
