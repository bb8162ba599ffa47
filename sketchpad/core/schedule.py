"""Pure math: which part of which noise schedule a request runs (ComfyUI KSampler semantics).

denoise d: a schedule of int(steps / d) steps is built and its last `steps` run, so a low denoise
still spends every step on the small amount of noise it adds (unlike diffusers' img2img, which runs
int(steps * d) steps of a `steps`-long schedule and nothing at all at d = 0).
start_at_step k: a schedule of `steps` steps, of which `steps - k` run, starting at index k.

Every step that runs does real work, at its own noise level below the previous step's. A schedule
is therefore never longer than the longest one whose last `steps` steps are still distinct for the
chosen scheduler (`max_schedule`): the model's 1000 training timesteps, 999 for DPM++ 2M, whose
spacing folds 1000 steps onto one timestep. Below d = steps / max_schedule a request runs as at that
lowest reachable denoise: 20 steps at d = 0.01 run like d = 0.02 (on the lowest 20 timesteps), not
20 times at the same level. (ComfyUI's continuous sigma table has no such floor; a model with 1000 discrete
timesteps offers no finer levels.) Which timesteps the UNet sees is the backend's business: the
local engine's rules for Karras schedules are in backends/local/samplers.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import GenerationParams


@dataclass(frozen=True)
class StepPlan:
    schedule_steps: int  # length of the schedule the scheduler builds
    first_step: int  # index of the first step that runs
    run_steps: int  # how many steps run
    # Only denoise 1 / start step 0 ignore the sketch; a near-1 denoise that also starts at index 0
    # still noises the sketch, whose traces survive SD1.5's non-zero terminal SNR.
    from_pure_noise: bool = False


def plan_steps(params: GenerationParams, max_schedule: int = 1000) -> StepPlan:
    """The plan for a validated request; run_steps == 0 means 'return the sketch unchanged'."""
    if params.start_at_step is not None:
        return plan_start_at_step(params.steps, params.start_at_step)
    return plan_denoise(params.steps, params.strength, max_schedule)


def plan_denoise(steps: int, denoise: float, max_schedule: int = 1000) -> StepPlan:
    if denoise <= 0.0:
        return StepPlan(schedule_steps=steps, first_step=steps, run_steps=0)
    if denoise >= 1.0:
        return StepPlan(schedule_steps=steps, first_step=0, run_steps=steps, from_pure_noise=True)
    # never longer than the longest schedule with distinct steps (see the module docstring)
    total = max(steps, min(int(steps / denoise), max_schedule))
    run = min(steps, total)
    return StepPlan(schedule_steps=total, first_step=total - run, run_steps=run)


def plan_start_at_step(steps: int, start: int) -> StepPlan:
    start = min(max(start, 0), steps)
    return StepPlan(schedule_steps=steps, first_step=start, run_steps=steps - start, from_pure_noise=start == 0)


def effective_denoise(plan: StepPlan) -> float:
    """The fraction of the schedule that runs: what 'Denoising strength' means to other tools."""
    return plan.run_steps / plan.schedule_steps if plan.schedule_steps else 0.0
