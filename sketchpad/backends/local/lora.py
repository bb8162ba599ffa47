"""LoRAs on the local engine: find the file, read it once, fuse it, and take it out without a trace.

Formats: whatever diffusers' `load_lora_weights` reads (kohya/AUTOMATIC1111 `lora_unet_…`/`lora_te_…`
keys, SDXL's `lora_te1_…`/`lora_te2_…`, and diffusers/peft `unet.…lora_A` keys), from .safetensors
only. A LoRA made for another family (its UNet's cross-attention of another width) is refused in one
line naming both families before anything changes. The LoRAs in use are fused into
the UNet and text encoder weights, so a step costs what it costs without them. Fusing and unfusing
in floating point does not give back the original weights bit for bit, so the original values of
every layer a LoRA touches are kept aside while any LoRA is fused and copied back when unfusing.
Where transformers cannot take a text-encoder LoRA through the installed peft, that part is merged by
hand (`lora_text_encoder`), kept aside and restored the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ...core.errors import ModelError, SketchpadError
from ...core.families import Family, lora_width, mismatch
from ...core.hashes import lora_short_hash as short_hash
from ...core.hub import download_file
from ...core.params import LoraSpec
from ...core.sources import resolve_lora_source
from .lora_text_encoder import fuse_text_encoder_pairs, text_encoder_pairs

log = logging.getLogger(__name__)
_TEXT_ENCODERS = ("text_encoder", "text_encoder_2")  # SDXL has the second


def resolve_lora_file(text: str) -> Path:
    """The local .safetensors file `text` names: a path, or a Hugging Face id taken from the cache or
    downloaded once (see core.hub: offline, it says so at once). Raises SketchpadError in one line."""
    source = resolve_lora_source(text)
    return Path(source.location) if source.kind == "file" else download_file(source)


def read_lora(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a LoRA file (never unpickled: safetensors only)."""
    try:
        state = load_file(str(path))
    except Exception as error:  # safetensors raises its own types, OSError and more for a bad file
        log.warning("reading the LoRA %s failed", path, exc_info=True)
        raise ModelError(f"LoRA {path.name} is not a readable .safetensors file ({error})") from error
    if not state or not all("lora" in key or key.endswith(".alpha") for key in state):
        raise ModelError(f"{path.name} is not a LoRA (its tensors are not named like LoRA weights)")
    return state


def _text_encoder_loras_unsupported() -> str | None:
    """Why transformers cannot take a LoRA into the text encoder here, or None when it can."""
    import importlib.metadata

    from packaging.version import Version

    try:
        from transformers.integrations.peft import MIN_PEFT_VERSION
    except ImportError:
        return None
    installed = importlib.metadata.version("peft")
    if Version(installed) < Version(MIN_PEFT_VERSION):
        return f"transformers needs peft >= {MIN_PEFT_VERSION}, this has {installed}"
    return None


@dataclass
class _Loaded:
    adapter: str | None  # the peft adapter, None when the LoRA has only a hand-merged text-encoder part
    short_hash: str
    text_encoder_pairs: list = dataclasses.field(default_factory=list)  # merged by hand at fuse time


class LoraStack:
    """The LoRAs loaded into one pipeline. Not thread-safe, like the engine that owns it."""

    def __init__(self, pipe, family: Family, notify=None):
        self.pipe = pipe
        self.family = family
        self.notify = notify or (lambda message: None)
        self._text_encoders = {name: getattr(pipe, name) for name in _TEXT_ENCODERS if getattr(pipe, name, None)}
        self._components = ["unet", *self._text_encoders]
        self._files: dict[str, Path] = {}  # source text -> resolved file
        self._loaded: dict[Path, _Loaded] = {}
        self._fused: tuple[tuple[Path, float], ...] = ()
        self._originals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(param) -> (param, original)
        self._counter = 0

    @property
    def state(self) -> tuple[tuple[str, float], ...]:
        """What is fused now; part of every cache key that depends on the weights."""
        return tuple((str(path), weight) for path, weight in self._fused)

    def apply(self, specs: tuple[LoraSpec, ...]) -> tuple[LoraSpec, ...]:
        """Make exactly `specs` active. Unchanged LoRAs cost nothing; a weight change re-fuses without
        reading the file; a LoRA with weight 0 is not fused at all. Returns the specs with their hashes."""
        files = [self._file(spec.source) for spec in specs]
        wanted = tuple((path, float(spec.weight)) for spec, path in zip(specs, files) if spec.weight != 0)
        # read new files before changing anything, so a bad file leaves the pipeline as it was
        fresh = {path: (read_lora(path), short_hash(path)) for path, _ in wanted if path not in self._loaded}
        for path, (state, _) in fresh.items():
            width = lora_width({key: tuple(tensor.shape) for key, tensor in state.items()})
            if error := mismatch("LoRA", path.name, width, self.family, self.pipe.unet.config.cross_attention_dim):
                raise error
        stale = [path for path in self._loaded if path not in files]
        if wanted != self._fused or fresh or stale:
            self._rebuild(wanted, fresh, stale)
        return tuple(
            dataclasses.replace(spec, short_hash=self._loaded[path].short_hash) if path in self._loaded else spec
            for spec, path in zip(specs, files)
        )

    def _file(self, source: str) -> Path:
        if source not in self._files:
            self._files[source] = resolve_lora_file(source)
        return self._files[source]

    def _rebuild(self, wanted, fresh, stale) -> None:
        pipe = self.pipe
        self._unfuse()
        if self._peft_adapters():
            pipe.disable_lora()  # until the new set is fused: if loading fails, the plain weights run
        if stale:
            gone = [self._loaded.pop(path).adapter for path in stale]
            if any(gone):
                pipe.delete_adapters([adapter for adapter in gone if adapter])
        for path, (state, digest) in fresh.items():
            self._counter += 1
            try:
                with warnings.catch_warnings():  # peft warns that a second adapter joins the first: intended
                    warnings.simplefilter("ignore")
                    self._loaded[path] = self._load(path, state, f"lora{self._counter}", digest)
            except SketchpadError:
                raise
            except Exception as error:  # diffusers and peft raise many types for keys that fit nothing
                log.warning("loading the LoRA %s into the model failed", path, exc_info=True)
                raise ModelError(f"{path.name} does not fit this model ({' '.join(str(error).split())[:160]})") from error
        if not self._loaded:
            pipe.unload_lora_weights()  # back to the plain modules
            self._originals.clear()
            return
        if not wanted:
            return  # loaded (weight 0 for now), but disabled: out of every forward pass
        peft_wanted = [(self._loaded[path].adapter, weight) for path, weight in wanted if self._loaded[path].adapter]
        if peft_wanted:
            pipe.enable_lora()
            names = [name for name, _ in peft_wanted]
            pipe.set_adapters(names, [weight for _, weight in peft_wanted])
            self._keep_originals()
            pipe.fuse_lora(components=self._components, adapter_names=names)
        pairs = [(weight, pair) for path, weight in wanted for pair in self._loaded[path].text_encoder_pairs]
        fuse_text_encoder_pairs(pairs, self._originals)
        self._fused = wanted

    def _peft_adapters(self) -> list[str]:
        return [loaded.adapter for loaded in self._loaded.values() if loaded.adapter]

    def _load(self, path: Path, state: dict, adapter: str, digest: str) -> _Loaded:
        pipe = self.pipe
        if _text_encoder_loras_unsupported() is None:
            pipe.load_lora_weights(state, adapter_name=adapter)
            return _Loaded(adapter, digest)
        # transformers loads text-encoder LoRAs only with a newer peft than may be installed: then
        # peft takes the UNet part and the text-encoder part is merged by hand at fuse time
        converted, alphas, metadata = pipe.lora_state_dict(dict(state), return_lora_metadata=True)
        pairs, left_out = text_encoder_pairs(self._text_encoders, converted, alphas, path.name)  # before any change
        unet_part = {key: value for key, value in converted.items() if not key.startswith("text_encoder")}
        if not unet_part and not pairs:
            raise ModelError(f"LoRA {path.name} changes no layer of this model")
        if left_out:
            named = ", ".join(left_out[:2]) + (", …" if len(left_out) > 2 else "")
            self.notify(f"LoRA {path.name}: left out {len(left_out)} text-encoder layer(s) that name nothing in this model ({named})")
        if not unet_part:
            return _Loaded(None, digest, pairs)
        alphas = {key: value for key, value in (alphas or {}).items() if not key.startswith("text_encoder")}
        pipe.load_lora_into_unet(
            unet_part, alphas or None, pipe.unet, adapter_name=adapter, _pipeline=pipe, metadata=metadata
        )
        return _Loaded(adapter, digest, pairs)

    def _unfuse(self) -> None:
        if not self._fused:
            return
        if self._peft_adapters():
            self.pipe.unfuse_lora(components=self._components)
        with torch.no_grad():
            for param, original in self._originals.values():
                param.copy_(original)  # subtracting the delta again is off by rounding; copying is exact
        self._fused = ()

    def _keep_originals(self) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for component in self._components:
            model = getattr(self.pipe, component)
            for module in model.modules():
                if isinstance(module, BaseTunerLayer):
                    for param in module.get_base_layer().parameters(recurse=False):
                        if id(param) not in self._originals:
                            self._originals[id(param)] = (param, param.detach().clone())
