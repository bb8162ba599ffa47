"""Saving results as PNG with an AUTOMATIC1111-style "parameters" text chunk, and reading it back.

PIL and the standard library only (no torch, no Qt): both the GUI and the CLI use this module.
The text is what AUTOMATIC1111 writes (see DESIGN.md "Saving"), so other tools read our files and we
read theirs. Choices that make format -> parse an exact round trip:
- Floats are written with repr() (shortest text that reads back to the same float: 7.5, 7.0, 0.52, 0.333).
- Values are JSON-quoted as AUTOMATIC1111's quote() does (when they hold `,` `:` or a newline), and
  also when they hold `\\r`, start with `"` or have surrounding spaces, which would otherwise not read back.
- A prompt with a line starting "Negative prompt:", or that itself looks like a JSON string, is written
  JSON-quoted on one line; any other prompt is written as it is.
- LoRAs are written as AUTOMATIC1111 does: `<lora:name:weight>` at the end of the prompt and a
  `Lora hashes` field; our own `Lora sources` field (JSON) says where each one came from, so opening
  the PNG restores them. Tags in another tool's prompt are read too (their source is then the name).
- A mask is written as AUTOMATIC1111 writes one (`Mask blur`, `Inpaint area`, `Masked area
  padding`), and its pixels, which AUTOMATIC1111 does not keep, are carried inside (below), so
  opening the picture brings the mask back with its settings.
- Not kept: a request with scheduler=None reads back with the scheduler that actually ran, and a
  mask's area "auto" with the area it chose.

A result also carries what it was made from, so it can be made again: its sketch (unless asked not
to) and its mask, each a lossless PNG in a private chunk of its own (`spIn`, after the pixels: other
tools skip it, and nothing reading the settings has to pass over it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from .. import __version__
from .errors import FailureKind, SketchpadError
from .images import MAX_SIDE
from .masks import resolve_area
from .params import ControlSpec, GenerationParams, LoraSpec, MaskSpec
from .registry import SCHEDULER_LABELS
from .backend import GenerationResult


@dataclass(frozen=True)
class ResultInfo:
    """What produced a saved picture."""

    params: GenerationParams  # seed is concrete (not -1)
    width: int
    height: int
    model_name: str  # e.g. "stable-diffusion-v1-5" or a folder/file stem
    sampler: str  # one of SCHEDULERS; for another tool's sampler we do not know, its own display name

    @staticmethod
    def of(result: GenerationResult, model_name: str) -> ResultInfo:
        """What a backend's result is saved with: the one place a result becomes a ResultInfo."""
        return ResultInfo(result.params, result.image.width, result.image.height, model_name, result.sampler)


SAMPLER_NAMES = SCHEDULER_LABELS  # the names A1111 writes, e.g. "Euler a"
_SAMPLERS_BY_NAME = {name.lower(): ours for ours, name in SAMPLER_NAMES.items()}
_NEGATIVE = "Negative prompt:"
# AUTOMATIC1111's own pattern for "Key: value, Key: "quoted, value", ..."
_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_DEFAULTS = GenerationParams(prompt="")
# <lora:name:weight> or AUTOMATIC1111's <lora:name:text-encoder weight:unet weight>; we read the first weight
_LORA_TAG = re.compile(r"(?:^|\s)<lora:([^:<>]+):([^:<>]+)(?::[^<>]*)?>")
_DRAFT_VAE = "TAESD"
_CONTROL_MODULE = "invert (from white bg & black line)"  # sd-webui-controlnet's name for what we feed
_AREA_NAMES = {"whole": "Whole picture", "masked": "Only masked"}  # AUTOMATIC1111's "Inpaint area" values


def _current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; published pictures get the usual mode instead.
_FILE_MODE = 0o666 & ~_current_umask()


def _looks_quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] == '"'


def _quote(value: str) -> str:
    if any(c in value for c in ",:\n\r") or value.startswith('"') or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def _unquote(value: str) -> str:
    if _looks_quoted(value):
        with contextlib.suppress(ValueError):
            loaded = json.loads(value)
            if isinstance(loaded, str):
                return loaded
    return value


def _is_negative_line(line: str) -> bool:
    return line.lstrip().startswith(_NEGATIVE)


def format_parameters(info: ResultInfo) -> str:
    p = info.params
    prompt = p.prompt + "".join(f" <lora:{lora.name}:{float(lora.weight)!r}>" for lora in p.loras)
    if _looks_quoted(prompt) or any(_is_negative_line(line) for line in prompt.split("\n")):
        prompt = json.dumps(prompt, ensure_ascii=False)  # else it would not read back as the same prompt
    lines = [prompt]
    if p.negative_prompt:
        lines.append(f"{_NEGATIVE} {p.negative_prompt}")
    strength = p.strength if p.start_at_step is None else (p.steps - p.start_at_step) / p.steps
    fields = {
        "Steps": p.steps,
        "Sampler": SAMPLER_NAMES.get(info.sampler, info.sampler),
        "CFG scale": repr(float(p.cfg)),
        "Seed": p.seed,
        "Size": f"{info.width}x{info.height}",
        "Model": info.model_name,
        "Denoising strength": repr(float(strength)),
    }
    if p.start_at_step is not None:
        fields["Start at step"] = p.start_at_step
    fields.update(_extra_fields(p))
    fields["Version"] = f"sketchpad {__version__}"
    lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in fields.items()))
    return "\n".join(lines)


def _extra_fields(p: GenerationParams) -> dict[str, str]:
    fields = {}
    if p.loras:
        hashes = [f"{lora.name}: {lora.short_hash}" for lora in p.loras if lora.short_hash]
        if hashes:
            fields["Lora hashes"] = ", ".join(hashes)
        fields["Lora sources"] = json.dumps({lora.name: lora.source for lora in p.loras}, ensure_ascii=False)
    if p.control is not None:
        c = p.control
        fields["ControlNet 0"] = (
            f"Module: {_CONTROL_MODULE}, Model: {_quote(c.model)}, Weight: {float(c.strength)!r}, "
            f"Guidance Start: {float(c.start)!r}, Guidance End: {float(c.end)!r}"
        )
    if p.preset is not None:
        fields["Preset"] = p.preset
    if p.draft:
        fields["VAE"] = _DRAFT_VAE
    if p.mask is not None:
        fields["Mask blur"] = p.mask.blur
        fields["Inpaint area"] = _AREA_NAMES[resolve_area(p.mask)]
        fields["Masked area padding"] = p.mask.padding
    return fields


def _split_loras(prompt: str, fields: dict[str, str]) -> tuple[str, tuple[LoraSpec, ...]]:
    """The prompt without its <lora:…> tags, and the LoRAs they name."""
    hashes = {}
    for item in fields.get("Lora hashes", "").split(","):
        name, colon, digest = item.partition(":")
        if colon:
            hashes[name.strip()] = digest.strip()
    try:
        sources = json.loads(fields.get("Lora sources", "{}"))
    except ValueError:
        sources = {}
    sources = sources if isinstance(sources, dict) else {}
    loras = []
    for match in _LORA_TAG.finditer(prompt):
        name = match[1].strip()
        try:
            weight = float(match[2])
        except ValueError as error:
            raise SketchpadError(f"the settings have an unreadable LoRA weight: {match[0].strip()!r}") from error
        loras.append(LoraSpec(str(sources.get(name, name)), weight, hashes.get(name)))
    return _LORA_TAG.sub("", prompt), tuple(loras)


def _parse_control(text: str | None) -> ControlSpec | None:
    if text is None:
        return None
    parts = {key.strip(): _unquote(value) for key, value in _PARAM_RE.findall(text)}
    try:
        return ControlSpec(
            parts["Model"], float(parts.get("Weight", 1.0)),
            float(parts.get("Guidance Start", 0.0)), float(parts.get("Guidance End", 1.0)),
        )
    except (KeyError, ValueError) as error:
        raise SketchpadError(f"the settings have an unreadable ControlNet 0: {text!r}") from error


def _parse_mask(fields: dict[str, str], mask: Image.Image | None, number) -> MaskSpec | None:
    """The mask spec, when the text has mask settings and the picture its mask (AUTOMATIC1111 keeps none)."""
    if mask is None or "Mask blur" not in fields:
        return None
    area = next((ours for ours, name in _AREA_NAMES.items() if name == fields.get("Inpaint area")), "whole")
    return MaskSpec.from_image(mask, number("Mask blur", int, 0), area, number("Masked area padding", int, 0))


def parse_parameters(text: str, mask: Image.Image | None = None) -> ResultInfo:
    """The settings in `text`; `mask`: the picture's mask (from its mask chunk), if it has one."""
    body, newline, last = text.rstrip().rpartition("\n")
    fields = {key.strip(): _unquote(value) for key, value in _PARAM_RE.findall(last)}
    if len(fields) < 3:  # AUTOMATIC1111's own test for "this is the settings line"
        raise SketchpadError("the text is not AUTOMATIC1111-style settings: it has no 'Steps: …, Sampler: …' line")
    lines = body.split("\n") if newline else []
    split = next((i for i, line in enumerate(lines) if _is_negative_line(line)), len(lines))
    prompt, loras = _split_loras(_unquote("\n".join(lines[:split])), fields)
    negative = ""
    if split < len(lines):
        first = lines[split].lstrip()[len(_NEGATIVE) :]
        negative = "\n".join([first[1:] if first.startswith(" ") else first, *lines[split + 1 :]])

    def number(key, kind, default):
        try:
            return kind(fields[key]) if key in fields else default
        except ValueError as error:
            raise SketchpadError(f"the settings have an unreadable {key}: {fields[key]!r}") from error

    size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", fields.get("Size", "512x512"))
    if size is None:
        raise SketchpadError(f"the settings have an unreadable Size: {fields['Size']!r}")
    sampler = fields.get("Sampler", "").strip()
    schedule = fields.get("Schedule type", "").strip()  # newer AUTOMATIC1111: "DPM++ 2M" + "Karras"
    ours = _SAMPLERS_BY_NAME.get(f"{sampler} {schedule}".lower()) or _SAMPLERS_BY_NAME.get(sampler.lower())
    start = number("Start at step", int, None)
    params = GenerationParams(
        prompt=prompt,
        negative_prompt=negative,
        strength=number("Denoising strength", float, _DEFAULTS.strength) if start is None else None,
        start_at_step=start,
        steps=number("Steps", int, _DEFAULTS.steps),
        cfg=number("CFG scale", float, _DEFAULTS.cfg),
        seed=number("Seed", int, _DEFAULTS.seed),
        scheduler=ours,  # an unknown sampler: None, the model's default
        loras=loras,
        preset=fields.get("Preset") or None,
        control=_parse_control(fields.get("ControlNet 0")),
        draft=fields.get("VAE", "") == _DRAFT_VAE,
        mask=_parse_mask(fields, mask, number),
    ).validated()
    return ResultInfo(params, int(size[1]), int(size[2]), fields.get("Model", ""), ours or sampler)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


# Our temporary files: hidden, named after the writing process, so a later start can tell its own
# leftovers (from a crash or kill mid-save) from anything else in the folder and from a save in progress.
TEMP_PREFIX = ".sketchpad-"
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(rf"{re.escape(TEMP_PREFIX)}(\d+)-[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")
# Names earlier versions used (tempfile's ".XXXXXXXX.tmp"): removed only when the content proves them ours.
_LEGACY_TEMP_NAME = re.compile(r"\.[a-z0-9_]{8}\.tmp")
# A temp file untouched for this long is abandoned whoever wrote it: even a huge PNG is written in seconds.
STALE_TEMP_SECONDS = 300.0


def make_temp_file(folder) -> tuple[int, str]:
    """An open descriptor and the path of a new temporary file of ours in `folder` (raises OSError)."""
    return tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=TEMP_SUFFIX)


def clean_leftovers(folder, stale_seconds: float = STALE_TEMP_SECONDS) -> int:
    """Remove our abandoned temporary files from `folder`; return how many went.

    One is abandoned when its writing process is gone, or when it has not changed for
    `stale_seconds` (a writer with that process id may be a new, unrelated process). A temp file that
    a live process (another window, this one) is writing now is kept, and nothing else is touched.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing or unreadable: nothing of ours to clean
        return 0
    now = time.time()
    for entry in entries:
        ours = _TEMP_NAME.fullmatch(entry.name)
        legacy = ours is None and _LEGACY_TEMP_NAME.fullmatch(entry.name) is not None
        if not (ours or legacy):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if ours:
                abandoned = age > stale_seconds or not _process_alive(int(ours[1]))
            else:
                abandoned = age > stale_seconds and _is_our_legacy_temp(entry.path)
            if abandoned:
                os.unlink(entry.path)
                removed += 1
        except OSError:  # vanished meanwhile (its save finished), or not ours to delete
            continue
    return removed


def _process_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill would terminate it there; rely on the age alone
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, as another user's process
        return True
    return True


def _is_our_legacy_temp(path: str) -> bool:
    """An old-style temp file is ours when it is the start of a PNG carrying our parameters chunk."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return False
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"parameters" in head and b"Version: sketchpad " in head


def save_png(image: Image.Image, path, text: dict[str, str], overwrite: bool = False,
             embed: Mapping[str, Image.Image] | None = None) -> Path:
    """Write image as a PNG with text chunks, atomically: a failure leaves neither a partial nor a temp file.
    `embed`: pictures it carries beside its own, by name ("sketch"), read back by read_embedded."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise SketchpadError(f"{path} is a folder; choose a file name")
    if not overwrite and os.path.lexists(path):
        raise SketchpadError(f"{path} already exists; choose another name or allow overwriting")
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)  # tEXt when the text fits Latin-1, else iTXt (AUTOMATIC1111 readers take both)
    for name, picture in (embed or {}).items():
        info.add(EMBED_CHUNK, _embedded_chunk(name, picture), after_idat=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = make_temp_file(folder)
    except OSError as e:
        raise SketchpadError(f"cannot save in {folder}: {_reason(e)}; choose another folder",
                             kind=FailureKind.STORAGE) from e
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", pnginfo=info)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        _publish(tmp, path, overwrite)
    except OSError as e:
        raise SketchpadError(f"cannot save {path}: {_reason(e)}", kind=FailureKind.STORAGE) from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # still there unless os.replace moved it
    with contextlib.suppress(OSError):  # makes the new name itself survive a crash; not possible everywhere
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and fails rather than replace a file that appeared meanwhile
    except FileExistsError as error:
        raise SketchpadError(f"{path} already exists; choose another name or allow overwriting") from error
    except OSError as error:  # no hard links here (FAT, some network shares): check, then rename
        if os.path.lexists(path):
            raise SketchpadError(f"{path} already exists; choose another name or allow overwriting") from error
        os.replace(tmp, path)


def save_result(image: Image.Image, info: ResultInfo, path, overwrite: bool = False,
                sketch: Image.Image | None = None) -> Path:
    """`sketch`: the sketch it was made from, carried inside so that the result can be made again; a
    request's mask is always carried (it is part of the settings)."""
    embed = {SKETCH: sketch} if sketch is not None else {}
    if info.params.mask is not None:
        embed[MASK] = info.params.mask.image()
    return save_png(image, path, {"parameters": format_parameters(info)}, overwrite=overwrite, embed=embed)


def next_free_path(folder, stem: str = "sketchpad", suffix: str = ".png") -> Path:
    """folder/stem-0001.suffix, or one past the highest number there, so deleted numbers are not reused."""
    folder = Path(folder)
    pattern = re.compile(rf"{re.escape(stem)}-(\d+){re.escape(suffix)}")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        names = []
    except OSError as e:
        raise SketchpadError(f"cannot look into {folder}: {_reason(e)}; choose another folder", kind=FailureKind.STORAGE) from e
    number = max((int(m[1]) for m in map(pattern.fullmatch, names) if m), default=0) + 1
    while (candidate := folder / f"{stem}-{number:04d}{suffix}").exists():
        number += 1  # e.g. a case-insensitive file system
    return candidate


def read_png_parameters(path) -> ResultInfo | None:
    """The settings stored in a PNG (with its mask, if it keeps one), or None when it has none.
    Never decodes the pixels."""
    path = Path(path)
    text = read_png_text(path).get("parameters")
    if text is None:
        return None
    try:
        return parse_parameters(str(text), _carried_mask(path))
    except SketchpadError as e:
        raise SketchpadError(f"{path.name} has settings Sketchpad cannot read: {e}") from e


def _carried_mask(path: Path) -> Image.Image | None:
    """The mask a result carries, checked against the picture it belongs to."""
    mask = read_embedded(path).get(MASK)
    if mask is None:
        return None
    with Image.open(path, formats=["PNG"]) as picture:
        size = picture.size
    if mask.mode != "L" or mask.size != size:
        raise SketchpadError(f"its mask is {mask.mode} {mask.size[0]}x{mask.size[1]}, not L {size[0]}x{size[1]}")
    return mask


def read_png_text(path) -> dict[str, str]:
    """A PNG's text chunks by key, after checking the whole file. Never decodes the pixels."""
    path = Path(path)
    try:
        with Image.open(path, formats=["PNG"]) as image:
            # the text chunks before the pixel data, read by open() (image.text would decode the pixels)
            text = {key: value for key, value in image.info.items() if isinstance(value, str)}
            image.verify()  # checksums the rest without decompressing it: catches truncated files
    except FileNotFoundError as e:
        raise SketchpadError(f"{path} does not exist") from e
    except Image.UnidentifiedImageError as e:
        raise SketchpadError(f"{path} is not a PNG image, or is damaged") from e
    except Image.DecompressionBombError as e:
        raise SketchpadError(f"{path} is too large an image to open safely") from e
    except OSError as e:
        if e.errno is not None:  # permission, a folder, ...: the system's words say it
            raise SketchpadError(f"cannot read {path}: {e.strerror}", kind=FailureKind.STORAGE) from e
        raise SketchpadError(f"cannot read {path}: {e}; the file may be damaged") from e
    except (SyntaxError, ValueError, EOFError, struct.error) as e:  # what PIL raises for broken chunks
        raise SketchpadError(f"cannot read {path}: {e}; the file may be damaged") from e
    return text


# ---- what a result was made from -----------------------------------------------------------------
# An ancillary (lower-case 1st letter), private (2nd), safe-to-copy (4th) chunk type: "sketchpad input".
# Its data: the picture's name (ASCII), a NUL byte, the picture as a PNG file.
EMBED_CHUNK = b"spIn"
SKETCH, MASK = "sketch", "mask"
MAX_EMBED_BYTES = 64 * 2**20  # a 4096x4096 sketch of pure noise still fits
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _embedded_chunk(name: str, picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = name.encode("ascii") + b"\0" + buffer.getvalue()
    if len(data) > MAX_EMBED_BYTES:
        raise SketchpadError(f"the {name} is too large to keep inside the picture; save without it")
    return data


def read_embedded(path) -> dict[str, Image.Image]:
    """The pictures a saved PNG carries beside its own, by name ("sketch", "mask");
    {} when it carries none. Their chunks are checksummed and bounded, and only PNG pixels are
    decoded: nothing in a file is ever run. A damaged one raises SketchpadError in one line."""
    path = Path(path)
    found: dict[str, Image.Image] = {}
    try:
        with open(path, "rb") as file:
            if file.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
                raise SketchpadError(f"{path} is not a PNG image")
            while len(header := file.read(8)) == 8:
                length, kind = struct.unpack(">I4s", header)
                if kind == b"IEND":
                    break
                if kind != EMBED_CHUNK:
                    file.seek(length + 4, os.SEEK_CUR)
                    continue
                if length > MAX_EMBED_BYTES:
                    raise _damaged(path, "picture", f"{length} bytes, more than any sketch needs")
                data, checksum = file.read(length), file.read(4)
                name = data.partition(b"\0")[0].decode("ascii", "replace")
                if len(checksum) < 4 or zlib.crc32(kind + data) != struct.unpack(">I", checksum)[0]:
                    raise _damaged(path, name, "its checksum does not match")
                found[name] = _decode_embedded(path, name, data.partition(b"\0")[2])
    except FileNotFoundError as e:
        raise SketchpadError(f"{path} does not exist") from e
    except OSError as e:
        raise SketchpadError(f"cannot read {path}: {_reason(e)}", kind=FailureKind.STORAGE) from e
    return found


def read_embedded_sketch(path) -> Image.Image | None:
    """The sketch a saved result was made from, or None when it carries none."""
    return read_embedded(path).get(SKETCH)


def _decode_embedded(path: Path, name: str, png: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(png), formats=["PNG"]) as picture:
                if max(picture.size) > MAX_SIDE:
                    raise _damaged(path, name, f"{picture.width}x{picture.height} pixels, larger than any sketch")
                picture.load()
                return picture
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise _damaged(path, name, "it is not a readable PNG") from e


def _damaged(path: Path, name: str, why: str) -> SketchpadError:
    return SketchpadError(f"the {name} inside {path.name} is damaged ({why}); open the picture itself instead")
