"""Where a model comes from, which device runs it, and loading it (of any family) without ever unpickling."""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from typing import Callable

import torch

from ...core.errors import FailureKind, ModelError, SketchpadError
from ...core.families import SDXL, Family, ModelKind, detect_folder
from ...core.hub import about, download_failure, known_download_bytes, local_files_only
from ...core.registry import DEVICES
from ...core.sources import MODEL_HUB_FILES, ModelSource, checkpoint_config_source
from ...logs import quiet_library_handlers
from .precision import Precision, choose_precision

log = logging.getLogger(__name__)

# Only what img2img needs: no safety checker, no 4 GB single-file copy, no pickled duplicates
# (SDXL's second text encoder and tokenizer included; other families have none to match).
_HUB_PATTERNS = [*MODEL_HUB_FILES, "scheduler/*.json", "tokenizer/*", "text_encoder_2/config.json",
                 "text_encoder_2/model.safetensors", "tokenizer_2/*"]
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


def load_pipeline(source: ModelSource, device: torch.device, progress: Progress | None = None,
                  dtype: str | None = None):
    """Load an img2img pipeline of the model's family onto `device`, or raise SketchpadError saying
    how to fix the cause. `dtype`: "auto", "fp32", "bf16" or "fp16" (see precision.py; by default
    $SKETCHPAD_DTYPE, else auto).

    A single checkpoint file carries weights only; the component configs and the tokenizers come from
    $SKETCHPAD_CHECKPOINT_CONFIG (a diffusers folder or Hub id of the same family), by default the
    family's own Hub repository (SD 1.5's, SD 2.1's, SDXL base's).
    """
    import diffusers

    from .model_checks import check_checkpoint, check_model_folder

    say = progress or (lambda message: None)
    precision = choose_precision(device, dtype)
    _quiet_libraries()
    config, at_fault = None, source.location
    try:
        with _silent_libraries():
            if source.kind == "file":
                kind = check_checkpoint(source.location)
                config = _checkpoint_config(source, kind.family)
                local = config.kind != "hub" or local_files_only(config)  # offline: said at once
                say(f"Loading {source.name} ({kind.family.label}, single file) on {device.type}, {precision.name}")
                cls = getattr(diffusers, kind.family.pipeline)
                pipe = cls.from_single_file(source.location, config=config.location, local_files_only=local,
                                            **_pipeline_options(kind.family, precision))
                _follow_the_file(pipe, kind)
            else:
                at_fault = folder = _download(source, say) if source.kind == "hub" else source.location
                kind = detect_folder(folder, source.location)
                check_model_folder(folder, kind.family)
                say(f"Loading {source.name} ({kind.family.label}) on {device.type}, {precision.name}")
                cls = getattr(diffusers, kind.family.pipeline)
                pipe = cls.from_pretrained(folder, use_safetensors=True, **_pipeline_options(kind.family, precision))
            pipe.set_progress_bar_config(disable=True)
            pipe.to(device)
            # SD's and SDXL's VAEs overflow fp16 (black pictures); the VAE is small, so it stays in fp32
            pipe.vae.to(torch.float32)
            pipe.unet.to(precision.unet)
    except SketchpadError:
        raise
    except Exception as error:  # what the checks could not foresee still becomes one or two clear lines
        if out_of_memory(error):
            raise out_of_memory_error(device) from error
        log.warning("loading %s failed", source.location, exc_info=True)
        raise ModelError(_load_failure_message(source, at_fault, config, error)) from error
    return pipe


def _pipeline_options(family: Family, precision: Precision) -> dict:
    options = dict(dtype=precision.loop)  # the UNet is cast once loaded (precision.py)
    if family is not SDXL:  # SDXL's pipelines have no safety checker to leave out
        options.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return options


def _checkpoint_config(source: ModelSource, family: Family) -> ModelSource:
    """Where a single file's configs come from; a local folder of another family is said at once."""
    config = checkpoint_config_source(os.environ.get("SKETCHPAD_CHECKPOINT_CONFIG") or family.config_hub_id,
                                      family.label, family is SDXL)
    if config.kind == "folder":
        other = detect_folder(config.location).family
        if other is not family:
            raise ModelError(
                f"{source.location} is an {family.label} checkpoint, but SKETCHPAD_CHECKPOINT_CONFIG "
                f"({config.location}) is an {other.label} model: point it at an {family.label} diffusers folder, "
                "or unset it."
            )
    return config


def _follow_the_file(pipe, kind: ModelKind) -> None:
    """What a single file says about itself beyond its family's configs: v-prediction, zero terminal SNR."""
    scheduler = pipe.scheduler
    changes = {}
    if kind.prediction and kind.prediction != scheduler.config.prediction_type:
        changes["prediction_type"] = kind.prediction
    if kind.zero_snr:
        changes.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    if changes:
        pipe.scheduler = type(scheduler).from_config(scheduler.config, **changes)


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


def _load_failure_message(source: ModelSource, at_fault: str, config: ModelSource | None, error: Exception) -> str:
    text = " ".join(str(error).split())
    mismatch = re.search(r"(\S+) expected shape torch\.Size\(\[([\d, ]*)\]\), but got torch\.Size\(\[([\d, ]*)\]\)", text)
    if source.kind == "file" and mismatch and config is not None:
        key, want, got = (mismatch.group(1), *(part.replace(", ", "x") for part in mismatch.groups()[1:]))
        return (
            f"{source.location} does not fit the model configuration from {config.location} ({key} is {got} in the "
            f"file, {want} by the configuration).\nChoose an SD 1.5, SD 2.x or SDXL checkpoint, or set "
            "SKETCHPAD_CHECKPOINT_CONFIG to a diffusers folder of its own kind."
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
