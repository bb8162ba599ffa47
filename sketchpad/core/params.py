"""One generation request: a frozen, validated value shared by the GUI, the CLI and the engine.

Deliberately free of torch so the widgets and the storage code can import it cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

from .errors import SketchpadError

SCHEDULERS = ("pndm", "ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm")
PREVIEW_METHODS = ("latent2rgb", "taesd", "vae", "none")
MAX_STEPS = 500
MAX_SEED = 2**32 - 1  # the range other Stable Diffusion tools use, so seeds travel between them
RANDOM_SEED = -1


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
