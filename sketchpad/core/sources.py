"""What a model, LoRA, ControlNet or TAESD text names, decided without torch and without the network.

One rule for what is a Hugging Face id, one list of pickle suffixes: every loader and the window ask
here, so a text means the same everywhere. Whether a Hub source is downloaded is `core.hub`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TAESD_HUB_ID = "madebyollin/taesd"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
LORA_HUB_FILE = "pytorch_lora_weights.safetensors"  # what diffusers' LoRA repositories call the weights
# The files of a diffusers model on the Hub that img2img needs (no safety checker, no single-file copy);
# the loader fetches the tokenizer and scheduler folders whole, these are enough to tell "downloaded".
MODEL_CONFIG_FILES = (
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "tokenizer/vocab.json",
    "tokenizer/merges.txt", "unet/config.json", "vae/config.json",
)  # fmt: skip
SDXL_CONFIG_FILES = ("text_encoder_2/config.json", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt")
MODEL_HUB_FILES = MODEL_CONFIG_FILES + (
    "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
)  # fmt: skip
PART_HUB_FILES = ("config.json", "diffusion_pytorch_model.safetensors")  # a ControlNet's, TAESD's
# Download sizes of the Hub weights Sketchpad names itself (the presets' LoRAs are in core/presets.py)
TAESDXL_HUB_ID = "madebyollin/taesdxl"  # TAESD for SDXL's latents (core/families.py)
DOWNLOAD_BYTES = {("model", DEFAULT_MODEL): 4_265_000_000, ("TAESD", TAESD_HUB_ID): 9_793_292,
                  ("TAESD", TAESDXL_HUB_ID): 9_793_292}

_HUB_PART = re.compile(r"^[A-Za-z0-9][\w.\-]*$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "hub", "folder" or "file"
    location: str  # a Hub repository id, or an absolute path
    role: str = "model"  # what a person calls it: "model", "LoRA", "ControlNet", "TAESD", ...
    files: tuple[str, ...] = ()  # a Hub source: the repository's files it needs
    text: str = field(default="", compare=False)  # as the person gave it, for messages

    @property
    def name(self) -> str:
        """A short display name, also written into saved pictures' metadata."""
        if self.kind == "hub":
            return self.location.split("/")[-1]
        return Path(self.location).stem if self.kind == "file" else Path(self.location).name


def hub_reference(text: str) -> tuple[str, str | None] | None:
    """(repository, file in it or None) when `text` names a Hugging Face repository (`owner/name`) or
    a .safetensors file in one (`owner/name/sub/file.safetensors`); None for anything that is, or
    could only be, a path on this computer."""
    text = text.strip()
    parts = text.split("/")
    if len(parts) < 2 or "\\" in text or text.startswith((".", "~")) or Path(text).is_absolute():
        return None
    if not all(_HUB_PART.match(part) for part in parts) or Path(parts[0]).is_dir():
        return None  # a relative path into a folder here, not an owner on the Hub
    repo, inside = "/".join(parts[:2]), "/".join(parts[2:])
    safetensors = parts[-1].lower().endswith(".safetensors")
    if not inside:
        return None if safetensors else (repo, None)  # "folder/file.safetensors" is a path
    return (repo, inside) if safetensors else None


def is_pickle(text: str) -> bool:
    return text.strip().lower().endswith(PICKLE_SUFFIXES)


def refuse_pickle(text: str, role: str) -> None:
    """Raise for a pickled file, whether it exists or not: unpickling can run code."""
    if is_pickle(text):
        raise ModelError(
            f"the {role} {text} is pickled, which can run code when loaded; Sketchpad never opens pickles: "
            "use its .safetensors version (or convert it, e.g. with diffusers' conversion scripts)"
        )


def resolve_model_source(text: str | None) -> ModelSource:
    """What `--model` names: an existing diffusers folder or .safetensors checkpoint, else a Hub id."""
    text = (text or DEFAULT_MODEL).strip()
    refuse_pickle(text, "model")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"{text} is not a diffusers model folder (it has no model_index.json)")
        return ModelSource("folder", str(path.resolve()), text=text)
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelError(f"{text} is not a model Sketchpad can load: give a .safetensors file or a folder")
        return ModelSource("file", str(path.resolve()), text=text)
    hub = hub_reference(text)
    if hub is not None and hub[1] is None:
        return ModelSource("hub", hub[0], "model", MODEL_HUB_FILES, text)
    raise ModelError(f"model not found: {text} (give a folder, a .safetensors file or a Hugging Face id)")


def checkpoint_config_source(text: str, family_label: str = "SD 1.5", two_text_encoders: bool = False) -> ModelSource:
    """Where a single-file checkpoint's component configs and tokenizer come from: a diffusers folder
    or a Hub repository, of which only the small configuration files are needed."""
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSource("folder", str(path.resolve()), "model configuration", text=text)
    files = MODEL_CONFIG_FILES + (SDXL_CONFIG_FILES if two_text_encoders else ())
    return ModelSource("hub", text.strip(), f"{family_label} configuration", files, text)


def resolve_lora_source(text: str) -> ModelSource:
    """A LoRA: a local .safetensors file, a Hub repository's `pytorch_lora_weights.safetensors`, or a
    named .safetensors file in a Hub repository."""
    refuse_pickle(text, "LoRA")
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelError(f"LoRA {text} is not a .safetensors file")
        return ModelSource("file", str(path.resolve()), "LoRA", text=text)
    if path.is_dir():
        raise ModelError(f"LoRA {text} is a folder; give its .safetensors file")
    hub = hub_reference(text)
    if hub is not None:
        return ModelSource("hub", hub[0], "LoRA", (hub[1] or LORA_HUB_FILE,), text.strip())
    raise ModelError(f"LoRA not found: {text} (give a .safetensors file or a Hugging Face id)")


def resolve_control_source(text: str) -> ModelSource:
    """What `--control` names: a diffusers folder, a single .safetensors file or a Hugging Face id."""
    refuse_pickle(text, "ControlNet")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{text} is not a diffusers ControlNet folder (it has no config.json)")
        return ModelSource("folder", str(path.resolve()), "ControlNet", text=text)
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelError(f"ControlNet {text} is not a .safetensors file or a diffusers folder")
        return ModelSource("file", str(path.resolve()), "ControlNet", text=text)
    hub = hub_reference(text)
    if hub is not None and hub[1] is None:
        return ModelSource("hub", hub[0], "ControlNet", PART_HUB_FILES, text.strip())
    raise ModelError(f"ControlNet not found: {text} (give a folder, a .safetensors file or a Hugging Face id)")


def taesd_source(text: str) -> ModelSource:
    """TAESD weights: a diffusers folder, or a Hub repository in diffusers layout."""
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSource("folder", str(path.resolve()), "TAESD", text=text)
    hub = hub_reference(text)
    if hub is not None and hub[1] is None:
        return ModelSource("hub", hub[0], "TAESD", PART_HUB_FILES, text.strip())
    raise ModelError(f"TAESD not found: {text} (give a diffusers folder or a Hugging Face id)")
