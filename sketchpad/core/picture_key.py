"""When two requests make the same picture: compared by the steps they run, not by the dial's value.

With 4 steps, denoise 0.75 and 0.80 both run the last 4 steps of a 5-step schedule, so they give the
same picture pixel for pixel, on this computer and on a server alike. A key holds everything that
decides the pixels (the plan instead of the knob, the seed, prompts, sketch, model, add-ons) and
nothing that does not (the preview method, the preset's label). A fully decoded picture also
covers a Live draft (TAESD decode) of the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import RANDOM_SEED, GenerationParams
from .schedule import StepPlan, plan_steps


@dataclass(frozen=True)
class PictureKey:
    plan: StepPlan
    params: GenerationParams  # with the knob, preview method and preset blanked out
    sketch_digest: str  # "" when nothing reads the sketch (text-to-image without "Keep my lines" or a mask)
    model: str  # the backend and model that paint it
    draft: bool = False  # decoded by TAESD

    def covers(self, other: PictureKey) -> bool:
        """Having this picture, the other one need not run: the same, or its draft."""
        same = (self.plan, self.params, self.sketch_digest, self.model) == (
            other.plan, other.params, other.sketch_digest, other.model)
        return same and (other.draft or not self.draft)


def picture_key(params: GenerationParams, sketch_digest: str, model: str) -> PictureKey | None:
    """None for a random seed: two random-seed requests never make the same picture."""
    if params.seed == RANDOM_SEED:
        return None
    plan = plan_steps(params)
    if plan.run_steps == 0:  # the sketch itself, whatever the rest says
        return PictureKey(plan, GenerationParams(prompt="", seed=0, strength=0.0), sketch_digest, "")
    blanked = params.replace(strength=None, start_at_step=None, preview_method="none", preset=None, draft=False)
    # from pure noise, only "Keep my lines" and a mask (outside it the picture is the sketch) read the sketch
    sketch_read = not plan.from_pure_noise or params.control is not None or params.mask is not None
    return PictureKey(plan, blanked, sketch_digest if sketch_read else "", model, params.draft)
