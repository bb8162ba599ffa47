"""Where a model comes from, which device runs it, and loading it without ever unpickling."""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from typing import Callable

import torch

from ...core.errors import FailureKind, ModelError, SketchpadError
from ...core.hub import about, download_failure, known_download_bytes, local_files_only
from ...core.registry import DEVICES
from ...core.sources import DEFAULT_MODEL, MODEL_HUB_FILES, ModelSource, checkpoint_config_source
from ...logs import quiet_library_handlers

log = logging.getLogger(__name__)

# Only what img2img needs: no safety checker, no 4 GB single-file copy, no pickled duplicates.
_HUB_PATTERNS = [*MODEL_HUB_FILES, "scheduler/*.json", "tokenizer/*"]
# torch's CUDA and MPS allocators raise OutOfMemoryError; its CPU allocator raises a plain
# RuntimeError, whose text is the only sign, read here at the source and nowhere else
_CPU_OUT_OF_MEMORY = ("DefaultCPUAllocator: can't allocate memory", "MPS backend out of memory")

Progress = Callable[[str], None]


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES:
        raise SketchpadError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    cuda, mps = torch.cuda.is_available(), _mps_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise SketchpadError(f"device {name!r} is not available on this machine; use --device auto or cpu")
    return torch.device(name)


def dtype_for(device: torch.device) -> torch.dtype:
    # fp16 halves memory and time on CUDA; MPS and CPU stay in fp32, where fp16 is slow or unstable
    return torch.float16 if device.type == "cuda" else torch.float32


def load_pipeline(source: ModelSource, device: torch.device, progress: Progress | None = None):
    """Load an img2img pipeline onto `device`, or raise SketchpadError saying how to fix the cause.

    A single checkpoint file carries weights only; the component configs and the tokenizer come from
    $SKETCHPAD_CHECKPOINT_CONFIG (a diffusers folder or Hub id), by default SD1.5's own Hub repo.
    """
    from diffusers import StableDiffusionImg2ImgPipeline

    from .model_checks import check_checkpoint, check_model_folder

    say = progress or (lambda message: None)
    dtype = dtype_for(device)
    _quiet_libraries()
    common = dict(dtype=dtype, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    config = checkpoint_config_source(os.environ.get("SKETCHPAD_CHECKPOINT_CONFIG") or DEFAULT_MODEL)
    at_fault = source.location
    try:
        with _silent_libraries():
            if source.kind == "file":
                check_checkpoint(source.location)
                local = config.kind != "hub" or local_files_only(config)  # offline: said at once
                say(f"Loading {source.name} (single file) on {device.type}")
                pipe = StableDiffusionImg2ImgPipeline.from_single_file(
                    source.location, config=config.location, local_files_only=local, **common
                )
            else:
                at_fault = folder = _download(source, say) if source.kind == "hub" else source.location
                check_model_folder(folder)
                say(f"Loading {source.name} on {device.type}")
                pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder, use_safetensors=True, **common)
            pipe.set_progress_bar_config(disable=True)
            pipe.to(device)
            # SD1.5's VAE overflows fp16 (black pictures); it is small, so keep it in fp32 always
            pipe.vae.to(torch.float32)
    except SketchpadError:
        raise
    except Exception as error:  # what the checks could not foresee still becomes one or two clear lines
        if out_of_memory(error):
            raise out_of_memory_error(device) from error
        log.warning("loading %s failed", source.location, exc_info=True)
        raise ModelError(_load_failure_message(source, at_fault, config.location, error)) from error
    return pipe


def out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(sign in str(error) for sign in _CPU_OUT_OF_MEMORY)


def out_of_memory_error(device: torch.device) -> SketchpadError:
    other = "; or the CPU device" if device.type != "cpu" else ""
    return SketchpadError(f"out of memory on {device.type}: try a smaller canvas or close other programs{other}",
                          kind=FailureKind.OUT_OF_MEMORY)


def _download(source: ModelSource, say: Progress) -> str:
    from huggingface_hub import snapshot_download

    local = local_files_only(source)  # neither cached nor reachable: said at once, no retries
    if local:
        say(f"Found {source.location} in the Hugging Face cache")
    else:
        size = known_download_bytes(source)
        say(f"Downloading {source.location} once" + (f" ({about(size)})" if size else ""))
    try:
        return snapshot_download(source.location, allow_patterns=_HUB_PATTERNS, local_files_only=local)
    except Exception as error:  # huggingface_hub and httpx raise many types; each becomes one line
        log.warning("getting %s from the Hub failed", source.location, exc_info=True)
        raise download_failure(source, error) from error


def _load_failure_message(source: ModelSource, at_fault: str, config: str, error: Exception) -> str:
    text = " ".join(str(error).split())
    mismatch = re.search(r"(\S+) expected shape torch\.Size\(\[([\d, ]*)\]\), but got torch\.Size\(\[([\d, ]*)\]\)", text)
    if source.kind == "file" and mismatch:
        key, want, got = (mismatch.group(1), *(part.replace(", ", "x") for part in mismatch.groups()[1:]))
        return (
            f"{source.location} does not fit the model configuration from {config} ({key} is {got} in the file, "
            f"{want} by the configuration).\nChoose an SD 1.5 checkpoint, or set SKETCHPAD_CHECKPOINT_CONFIG to "
            "a diffusers folder of its own kind."
        )
    return f"{at_fault} could not be loaded ({text[:200] or type(error).__name__}).\n{_GET_IT_AGAIN}"


_GET_IT_AGAIN = "Copy the model again from where it came from, or choose another one."


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


@contextmanager
def _silent_libraries():
    """While loading, the libraries' own error and warning lines stay off the terminal: every
    problem reaches the person once, as our SketchpadError."""
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers", "huggingface_hub")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _quiet_libraries() -> None:
    # our own progress lines say what is loading; the libraries' per-file bars add only noise
    # (download bars come from huggingface_hub and stay)
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    quiet_library_handlers()  # their terminal handlers exist now: what they say goes to the log
