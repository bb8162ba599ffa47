"""The Hugging Face Hub as Sketchpad sees it: what is downloaded, whether the Hub can be reached now,
and one clear error for weights that are neither here nor downloadable.

Torch- and Qt-free: the window asks it whether a preset is ready (a cache lookup, never the network),
and every loader asks it before calling the libraries, so that without a network nothing sits through
huggingface_hub's retries: one quick probe (at most PROBE_SECONDS), remembered for a while, decides.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import FailureKind, ModelError, SketchpadError
from .presets import preset_download_bytes, preset_for
from .sources import DOWNLOAD_BYTES, ModelSource, resolve_lora_source

log = logging.getLogger(__name__)

PROBE_SECONDS = 3.0  # the longest a person waits to learn that the Hub cannot be reached
REMEMBER_SECONDS = 30.0  # long enough for one request's LoRA, ControlNet and TAESD; short enough to retry
_ALTERNATIVES = {
    "model": "choose a model folder or .safetensors file on this computer",
    "LoRA": "use a LoRA .safetensors file on this computer",
    "ControlNet": "use a ControlNet folder or .safetensors file on this computer",
}
_CONFIGURATION = "use a diffusers model folder instead of a single checkpoint file"  # the role "<family> configuration"
_probes: dict[str, tuple[float, bool]] = {}  # endpoint -> (when, reachable)
_probe_lock = threading.Lock()


def hub_offline() -> bool:
    """The person said so: HF_HUB_OFFLINE, with huggingface_hub's own idea of a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def cached_file(repo: str, filename: str) -> Path | None:
    """The file from the local Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def is_downloaded(source: ModelSource) -> bool:
    """True for a local source, or a Hub source whose files are all in the cache."""
    return source.kind != "hub" or all(cached_file(source.location, name) for name in source.files)


def hub_reachable() -> bool:
    """Whether the Hub answers at all (any HTTP answer counts), found out in at most PROBE_SECONDS and
    remembered for REMEMBER_SECONDS. A refused connection says so at once; a silent one costs the wait."""
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    with _probe_lock:
        when, reachable = _probes.get(endpoint, (float("-inf"), False))
        if time.monotonic() - when > REMEMBER_SECONDS:
            reachable = _probe(endpoint)
            _probes[endpoint] = (time.monotonic(), reachable)
            log.info("the Hugging Face Hub at %s %s", endpoint, "answers" if reachable else "cannot be reached")
        return reachable


def _probe(endpoint: str) -> bool:
    answer: list[bool] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_SECONDS).close()
        except urllib.error.HTTPError:
            answer.append(True)  # an error status is still an answer
        except (OSError, ValueError) as error:  # refused, no route, no name, timed out, a malformed endpoint
            log.info("probing %s: %s", endpoint, error)
            answer.append(False)
        else:
            answer.append(True)

    # a thread, because a name lookup has no timeout of its own: the wait is bounded whatever hangs
    asking = threading.Thread(target=ask, name="sketchpad-hub-probe", daemon=True)
    asking.start()
    asking.join(PROBE_SECONDS)
    return bool(answer and answer[0])


def local_files_only(source: ModelSource) -> bool:
    """What a loader passes as `local_files_only`: True when everything is downloaded (no network
    needed), False when the Hub can be reached to download it. Raises the NEEDS_DOWNLOAD error when
    neither holds, before any library starts retrying."""
    if is_downloaded(source):
        return True
    if can_download():
        return False
    raise missing_weights(source)


def can_download() -> bool:
    return not hub_offline() and hub_reachable()


def missing_weights(source: ModelSource) -> SketchpadError:
    """One line: which weights are missing, why they cannot be fetched now, and how to get them."""
    size = known_download_bytes(source)
    what = f"the {source.role} {source.text or source.location}" + (f" ({about(size)})" if size else "")
    why = "Sketchpad is offline (HF_HUB_OFFLINE is set)" if hub_offline() else "the Hugging Face Hub cannot be reached"
    how = "connect to the internet once to download it"
    alternative = _CONFIGURATION if source.role.endswith(" configuration") else _ALTERNATIVES.get(source.role)
    if alternative:
        how += f", or {alternative}"
    return SketchpadError(f"{what} is not in the Hugging Face cache and {why}: {how}",
                          kind=FailureKind.NEEDS_DOWNLOAD)


def download_failure(source: ModelSource, error: Exception) -> SketchpadError:
    """A download that was tried and failed: a name the Hub does not know is a MODEL problem (a typo),
    anything else (the line dropped, a proxy, a full disk) means the weights still need downloading."""
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    what = f"{source.role} {source.text or source.location}"
    if isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError)):
        return ModelError(f"the Hugging Face Hub has no {what} (or it needs a login): check the name")
    if isinstance(error, RemoteEntryNotFoundError):
        return ModelError(f"the Hugging Face repository {source.location} has no {', '.join(source.files)}")
    reason = " ".join(str(error).split())[:160] or type(error).__name__
    return SketchpadError(f"downloading the {what} failed ({reason}); try again, or connect once more",
                          kind=FailureKind.NEEDS_DOWNLOAD)


def download_file(source: ModelSource) -> Path:
    """The one file of a single-file Hub source (a LoRA), from the cache or downloaded once now."""
    (filename,) = source.files
    found = cached_file(source.location, filename)
    if found is not None:
        return found
    local_files_only(source)  # not cached: raises at once unless the Hub can be reached
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(source.location, filename))
    except Exception as error:  # huggingface_hub and httpx raise many types; each becomes one line
        log.warning("downloading %s/%s failed", source.location, filename, exc_info=True)
        raise download_failure(source, error) from error


def known_download_bytes(source: ModelSource) -> int | None:
    return DOWNLOAD_BYTES.get((source.role, source.location)) or preset_download_bytes(source)


def readiness(source: ModelSource) -> str:
    """"ready", or "needs a download: about 135 MB": for the window, from the cache alone."""
    if is_downloaded(source):
        return "ready"
    size = known_download_bytes(source)
    return f"needs a download: {about(size)}" if size else "needs a download"


def preset_readiness(name: str | None, family: str = "sd15", turbo: bool = False) -> str:
    """What a preset's LoRA for a model of `family` needs before its first use ("" for a preset
    without one); a family without a LoRA for it gets the one line a run would say."""
    try:
        lora = preset_for(name, family, turbo).lora if name else None
    except SketchpadError as error:
        return str(error)
    try:
        return readiness(resolve_lora_source(lora.source)) if lora is not None else ""
    except ModelError:  # a folder here shadows the id: the run will say so
        return ""


def about(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"about {value:.1f} {unit}" if value < 10 else f"about {value:.0f} {unit}"
    return f"about {size} bytes"
