"""One generation request: a frozen, validated value shared by the GUI, the CLI and the engine.

Deliberately free of torch so the widgets and the storage code can import it cheaply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
from PIL import Image

from .errors import SketchpadError
from .images import MAX_SIDE
from .registry import SCHEDULERS
from .sources import refuse_pickle

PREVIEW_METHODS = ("latent2rgb", "taesd", "vae", "none")
MAX_STEPS = 500
MAX_SEED = 2**32 - 1  # the range other Stable Diffusion tools use, so seeds travel between them
RANDOM_SEED = -1
PRESETS = ("quality", "lcm", "hyper", "lightning", "turbo")  # defined in presets.py; named here for validation
MAX_LORA_WEIGHT = 10.0
MAX_CONTROL_STRENGTH = 2.0  # AUTOMATIC1111's ControlNet weight range
MASK_AREAS = ("auto", "whole", "masked")  # auto: only the masked area when it is small (see core/masks.py)
DEFAULT_MASK_BLUR = 4  # AUTOMATIC1111's "Mask blur"
DEFAULT_MASK_PADDING = 32  # AUTOMATIC1111's "Only masked padding, pixels"
MAX_MASK_BLUR = 64  # AUTOMATIC1111's ranges
MAX_MASK_PADDING = 256


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA and its weight. `source`: a .safetensors path, a Hugging Face id (`owner/name`, its
    `pytorch_lora_weights.safetensors`) or a file in a Hugging Face repository (`owner/name/file.safetensors`)."""

    source: str
    weight: float = 1.0
    short_hash: str | None = field(default=None, compare=False)  # AUTOMATIC1111's 12-hex-digit hash, once read

    @property
    def name(self) -> str:
        """The name AUTOMATIC1111 gives it in `<lora:name:weight>`: the file name without extension."""
        last = PurePath(self.source.replace("\\", "/")).name
        return last[: -len(".safetensors")] if last.lower().endswith(".safetensors") else last

    def validated(self) -> LoraSpec:
        if not isinstance(self.source, str) or not self.source.strip():
            raise SketchpadError("a LoRA needs a file or a Hugging Face id")
        refuse_pickle(self.source, "LoRA")
        if not _is_number(self.weight) or not -MAX_LORA_WEIGHT <= self.weight <= MAX_LORA_WEIGHT:
            raise SketchpadError(
                f"LoRA weight must be a number from {-MAX_LORA_WEIGHT:g} to {MAX_LORA_WEIGHT:g} (got {self.weight!r})"
            )
        return self


@dataclass(frozen=True)
class ControlSpec:
    """"Keep my lines": a scribble/line-art ControlNet fed with the (inverted) sketch.

    `start` and `end` are fractions of the executed steps during which it steers (AUTOMATIC1111's
    guidance start/end); strength 0 leaves the ControlNet out entirely."""

    model: str  # Hugging Face id, diffusers folder or single .safetensors file
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0

    def validated(self) -> ControlSpec:
        if not isinstance(self.model, str) or not self.model.strip():
            raise SketchpadError("the ControlNet needs a model: a Hugging Face id, a folder or a .safetensors file")
        refuse_pickle(self.model, "ControlNet")
        if not _is_number(self.strength) or not 0.0 <= self.strength <= MAX_CONTROL_STRENGTH:
            raise SketchpadError(
                f"ControlNet strength must be a number from 0 to {MAX_CONTROL_STRENGTH:g} (got {self.strength!r})"
            )
        for value in (self.start, self.end):
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise SketchpadError(f"the ControlNet range must lie within 0 to 1 (got {self.start!r}:{self.end!r})")
        if not self.start < self.end:
            raise SketchpadError(f"the ControlNet range must start before it ends (got {self.start!r}:{self.end!r})")
        return self

    @property
    def applies(self) -> bool:
        """False at strength 0: then a request is exactly the one without a ControlNet, on every backend."""
        return self.strength != 0

    def steers(self, index: int, total: int) -> bool:
        """Whether the ControlNet steers executed step `index` (0-based) of `total`: never at strength
        0, else where its range covers the step (diffusers' and AUTOMATIC1111's guidance start/end rule,
        the one every backend follows)."""
        return self.applies and not (index / total < self.start or (index + 1) / total > self.end)


@dataclass(frozen=True)
class MaskSpec:
    """Which part of the picture is redone, and how (see core/masks.py for what each value does).

    `pixels`: the mask, one byte per pixel row by row, `size` = (width, height) of the picture:
    0 keeps the picture, 255 redoes it, values between blend. `blur`: the feather, a Gaussian radius
    in pixels. `area`: "whole" picture, only the "masked" area at the model's native size, or "auto".
    `padding`: pixels of context around the masked area when only that is worked on.

    A request is compared and hashed often (it is a dict key), so the pixels themselves are neither:
    `digest`, a hash of pixels and size made when the spec is, stands for them."""

    pixels: bytes = field(repr=False, compare=False)
    size: tuple[int, int]
    blur: int = DEFAULT_MASK_BLUR
    area: str = "auto"
    padding: int = DEFAULT_MASK_PADDING
    digest: str = field(init=False, default="")

    def __post_init__(self):
        if isinstance(self.pixels, bytes):  # anything else is refused by validated()
            key = hashlib.blake2b(self.pixels, digest_size=16, person=b"sketchpad-mask")
            key.update(repr(self.size).encode())
            object.__setattr__(self, "digest", key.hexdigest())

    @staticmethod
    def from_image(image: Image.Image, blur: int = DEFAULT_MASK_BLUR, area: str = "auto",
                   padding: int = DEFAULT_MASK_PADDING) -> MaskSpec:
        """A spec from a PIL image whose grey level is the mask (converted to "L" if it is not)."""
        grey = image if image.mode == "L" else image.convert("L")
        return MaskSpec(grey.tobytes(), grey.size, blur, area, padding)

    def image(self) -> Image.Image:
        """The mask as a PIL "L" image."""
        return Image.frombytes("L", self.size, self.pixels)

    def replace(self, **changes) -> MaskSpec:
        return dataclasses.replace(self, **changes)

    def validated(self) -> MaskSpec:
        size = self.size
        if not (isinstance(size, tuple) and len(size) == 2 and all(_is_int(side) for side in size)
                and all(1 <= side <= MAX_SIDE for side in size)):
            raise SketchpadError(f"the mask size must be two whole numbers from 1 to {MAX_SIDE} (got {size!r})")
        if not isinstance(self.pixels, bytes) or len(self.pixels) != size[0] * size[1]:
            raise SketchpadError(f"the mask must hold one byte per pixel of its {size[0]}x{size[1]} pixels")
        if not np.frombuffer(self.pixels, np.uint8).any():
            raise SketchpadError("the mask is empty (all black): paint the part to redo in white")
        if not _is_int(self.blur) or not 0 <= self.blur <= MAX_MASK_BLUR:
            raise SketchpadError(
                f"mask blur must be a whole number from 0 to {MAX_MASK_BLUR} pixels (got {self.blur!r})"
            )
        if self.area not in MASK_AREAS:
            raise SketchpadError(f"unknown inpaint area {self.area!r}; choose one of: {', '.join(MASK_AREAS)}")
        if not _is_int(self.padding) or not 0 <= self.padding <= MAX_MASK_PADDING:
            raise SketchpadError(
                f"masked area padding must be a whole number from 0 to {MAX_MASK_PADDING} pixels (got {self.padding!r})"
            )
        return self


@dataclass(frozen=True)
class GenerationParams:
    """What to generate. Exactly one of `strength` (denoise) and `start_at_step` is set."""

    prompt: str
    negative_prompt: str = ""
    strength: float | None = 0.75
    start_at_step: int | None = None
    steps: int = 20
    cfg: float = 7.5
    seed: int = RANDOM_SEED
    scheduler: str | None = None  # None: the model's own
    preview_method: str = "latent2rgb"
    loras: tuple[LoraSpec, ...] = ()
    preset: str | None = None  # the preset that set sampler, steps, CFG and its LoRA; saved with the result
    control: ControlSpec | None = None
    draft: bool = False  # decode the final picture with the tiny autoencoder (TAESD), e.g. while a dial moves
    mask: MaskSpec | None = None  # redo only part of the picture (inpainting); the sketch is then the picture as it is

    def replace(self, **changes) -> GenerationParams:
        return dataclasses.replace(self, **changes)

    def validated(self) -> GenerationParams:
        """Return self if every field is usable, else raise SketchpadError naming the field."""
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise SketchpadError("the prompt and negative prompt must be text")
        if not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS:
            raise SketchpadError(f"steps must be a whole number from 1 to {MAX_STEPS} (got {self.steps!r})")
        if self.strength is not None and self.start_at_step is not None:
            raise SketchpadError("give either a denoise strength or a start step, not both")
        if self.strength is None and self.start_at_step is None:
            raise SketchpadError("give a denoise strength (0 to 1) or a start step")
        if self.strength is not None:
            if not _is_number(self.strength) or not 0.0 <= self.strength <= 1.0:
                raise SketchpadError(f"denoise strength must be a number from 0 to 1 (got {self.strength!r})")
        if self.start_at_step is not None:
            if not _is_int(self.start_at_step) or not 0 <= self.start_at_step <= self.steps:
                raise SketchpadError(
                    f"start step must be a whole number from 0 to steps ({self.steps}) (got {self.start_at_step!r})"
                )
        if not _is_number(self.cfg) or not 0.0 <= self.cfg <= 100.0:
            raise SketchpadError(f"CFG scale must be a number from 0 to 100 (got {self.cfg!r})")
        if not _is_int(self.seed) or not (self.seed == RANDOM_SEED or 0 <= self.seed <= MAX_SEED):
            raise SketchpadError(f"seed must be -1 (random) or a whole number from 0 to {MAX_SEED} (got {self.seed!r})")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise SketchpadError(f"unknown scheduler {self.scheduler!r}; choose one of: {', '.join(SCHEDULERS)}")
        if self.preview_method not in PREVIEW_METHODS:
            raise SketchpadError(
                f"unknown preview method {self.preview_method!r}; choose one of: {', '.join(PREVIEW_METHODS)}"
            )
        if not isinstance(self.loras, tuple) or not all(isinstance(lora, LoraSpec) for lora in self.loras):
            raise SketchpadError("LoRAs must be given as a tuple of LoraSpec")
        for lora in self.loras:
            lora.validated()
        names = [lora.name.lower() for lora in self.loras]
        if len(set(names)) != len(names):
            raise SketchpadError("the same LoRA is given twice; give each LoRA once with one weight")
        if self.preset is not None and self.preset not in PRESETS:
            raise SketchpadError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.control is not None:
            if not isinstance(self.control, ControlSpec):
                raise SketchpadError("the ControlNet settings must be a ControlSpec")
            self.control.validated()
        if not isinstance(self.draft, bool):
            raise SketchpadError(f"draft must be true or false (got {self.draft!r})")
        if self.mask is not None:
            if not isinstance(self.mask, MaskSpec):
                raise SketchpadError("the mask settings must be a MaskSpec")
            self.mask.validated()
        return self

    def with_concrete_seed(self) -> GenerationParams:
        """Replace a random seed (-1) by a drawn one, so the result can be reproduced and reported."""
        if self.seed != RANDOM_SEED:
            return self
        return self.replace(seed=random.SystemRandom().randint(0, MAX_SEED))

    @property
    def keeps_sketch(self) -> bool:
        """True when nothing is denoised: the result is the sketch itself."""
        return self.strength == 0.0 or self.start_at_step == self.steps

    @property
    def ignores_sketch(self) -> bool:
        """True when the whole schedule runs from pure noise: plain text-to-image."""
        return self.strength == 1.0 or self.start_at_step == 0


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
