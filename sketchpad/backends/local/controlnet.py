""""Keep my lines": a scribble / line-art ControlNet steering the UNet with the sketch's own lines.

The sketch (dark lines on light paper) is inverted into what scribble models were trained on: white
lines on black. Its tensor is cached per sketch content, like the sketch latents, so a dial turn
prepares nothing again; the loaded ControlNet stays until another one is asked for. A ControlNet made
for another family (e.g. an SD 1.5 scribble model under SDXL) is refused in one line naming both,
from its config or its file's header before its weights are read where they are here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from PIL import Image

from ...core.errors import ModelError, SketchpadError
from ...core.families import Family, mismatch
from ...core.hub import cached_file, can_download, local_files_only
from ...core.images import scribble_image
from ...core.params import ControlSpec
from ...core.safetensors_header import read_safetensors_header
from ...core.sources import ModelSource, resolve_control_source

log = logging.getLogger(__name__)


def load_controlnet(source: ModelSource, device, dtype):
    """The ControlNet on `device`, or SketchpadError in one line. Safetensors only, never a pickle.

    A single file takes its configuration from a config.json beside it, else from
    $SKETCHPAD_CONTROLNET_CONFIG, else diffusers infers it (fetching the config from the Hub once)."""
    from diffusers import ControlNetModel

    try:
        if source.kind == "file":
            beside = Path(source.location).with_name("config.json")
            config = str(beside.parent) if beside.is_file() else os.environ.get("SKETCHPAD_CONTROLNET_CONFIG")
            extra = {"config": config} if config else {}
            # without a config here, diffusers fetches one from the Hub, which may not be reachable
            local = bool(config) or not can_download()
            model = ControlNetModel.from_single_file(source.location, torch_dtype=dtype, local_files_only=local,
                                                     **extra)
        else:
            local = source.kind != "hub" or local_files_only(source)  # offline: says so at once
            model = ControlNetModel.from_pretrained(
                source.location, torch_dtype=dtype, use_safetensors=True, local_files_only=local
            )
    except SketchpadError:
        raise
    except Exception as error:  # any library error at this boundary becomes one clear line
        log.warning("loading the ControlNet %s failed", source.location, exc_info=True)
        text = " ".join(str(error).split())[:200] or type(error).__name__
        raise ModelError(f"could not load the ControlNet {source.location}: {text}") from error
    return model.to(device).eval()


def _width_before_loading(source: ModelSource) -> int | None:
    """The cross-attention width a ControlNet is made for, from its config.json (a folder, or the Hub
    cache) or its single file's attn2.to_k shapes; None where neither is here yet."""
    if source.kind == "file":
        for key, info in read_safetensors_header(source.location).items():
            if key.endswith("attn2.to_k.weight") and len(info.shape) == 2:
                return info.shape[1]
        return None
    if source.kind == "folder":
        config = Path(source.location) / "config.json"
    else:
        config = cached_file(source.location, "config.json")
    try:
        width = json.loads(config.read_text(encoding="utf-8")).get("cross_attention_dim") if config else None
    except (OSError, ValueError):
        return None  # the loader says what is wrong with it
    return width if isinstance(width, int) else None


class ControlNetSlot:
    """The loaded ControlNet (one at a time) and the prepared control images of recent sketches."""

    def __init__(self, pipe, device, dtype, on_load=None):
        self.pipe = pipe
        self.device, self.dtype = device, dtype
        self._on_load = on_load or (lambda model: None)
        self._location: str | None = None
        self.model = None
        self._images: dict[str, torch.Tensor] = {}
        self._order: list[str] = []

    def get(self, spec: ControlSpec, family: Family, model_width: int):
        """The ControlNet `spec` names, loaded once; ModelError if it is made for another family."""
        source = resolve_control_source(spec.model)
        if source.location != self._location:
            self.model = None  # free the old one before loading the next
            name = Path(source.location).name if source.kind != "hub" else source.location
            if error := mismatch("ControlNet", name, _width_before_loading(source), family, model_width):
                raise error
            model = load_controlnet(source, self.device, self.dtype)
            if error := mismatch("ControlNet", name, model.config.cross_attention_dim, family, model_width):
                raise error
            self.model, self._location = model, source.location
            self._on_load(self.model)
        return self.model

    def control_image(self, sketch: Image.Image) -> torch.Tensor:
        """(1, 3, h, w) in [0, 1], prepared once per sketch content and size."""
        key = hashlib.blake2b(sketch.tobytes(), digest_size=16, person=b"sketchpad-cn").hexdigest() + str(sketch.size)
        if key not in self._images:
            self._images[key] = self._prepare(sketch)
            self._order.append(key)
            if len(self._order) > 4:
                self._images.pop(self._order.pop(0))
        return self._images[key]

    def _prepare(self, sketch: Image.Image) -> torch.Tensor:
        from diffusers.image_processor import VaeImageProcessor

        # diffusers' ControlNet pipelines prepare the condition this way: RGB in [0, 1], not normalised
        processor = VaeImageProcessor(vae_scale_factor=self.pipe.vae_scale_factor, do_convert_rgb=True,
                                      do_normalize=False)
        width, height = sketch.size
        return processor.preprocess(scribble_image(sketch), height=height, width=width).to(self.device, self.dtype)

