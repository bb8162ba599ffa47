"""Schedulers by name, and how to make one run exactly the part of a schedule a StepPlan asks for.

Every step that runs does real work: it runs at its own noise level, strictly below the previous
step's, whatever the scheduler and the denoise. Two things in diffusers' schedules would break that
at low denoise, and are handled here:

- A long schedule can fold onto few timesteps (DPM++ 2M's "leading" spacing computes its step as
  1000 // (N + 1), which is 0 for N = 1000, so all steps ran at t = 1). `longest_schedule` finds the
  longest schedule whose last `steps` steps are still distinct; a lower denoise runs as that one.
- Karras schedules put their noise levels between the training timesteps, and diffusers rounds each
  to the nearest whole timestep for the UNet, so at low noise several steps got the same timestep
  ([4, 4, 3, 2, 2, 1, 1, 1, 0, 0] at 10 steps, denoise 0.1). Where rounding would repeat one, the
  UNet is given each level's exact, fractional timestep instead, as ComfyUI does. Where it would not
  (every schedule under 45 steps at denoise 1), the rounded ones stay: denoise 1 equals diffusers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    TCDScheduler,
)

from ...core.schedule import StepPlan
from .compat import check_scheduler

_SCHEDULERS = {
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "lcm": (LCMScheduler, {}),
    # what Hyper-SD's authors specify for their SD1.5 few-step LoRAs
    "ddim_trailing": (DDIMScheduler, {"timestep_spacing": "trailing"}),
    # what ByteDance specifies for SDXL-Lightning
    "euler_trailing": (EulerDiscreteScheduler, {"timestep_spacing": "trailing"}),
    # Trajectory Consistency Distillation: what Hyper-SD's 1-step LoRAs run with
    "tcd": (TCDScheduler, {}),
}
_TRAILING = {DDIMScheduler: "ddim_trailing", EulerDiscreteScheduler: "euler_trailing"}


def make_scheduler(name: str, model_config) -> object:
    """A fresh scheduler `name` built on the model's own noise schedule (betas, offsets)."""
    cls, overrides = _SCHEDULERS[name]
    scheduler = cls.from_config(model_config, **overrides)
    check_scheduler(scheduler)
    return scheduler


def scheduler_name(scheduler) -> str:
    """Our name for a scheduler instance (the model's own one included)."""
    if type(scheduler) in _TRAILING and scheduler.config.timestep_spacing == "trailing":
        return _TRAILING[type(scheduler)]
    karras = bool(getattr(scheduler.config, "use_karras_sigmas", False))
    for name, (cls, overrides) in _SCHEDULERS.items():
        if type(scheduler) is cls and overrides.get("use_karras_sigmas", False) == karras:
            return name
    return type(scheduler).__name__


def longest_schedule(scheduler, steps: int) -> int:
    """The longest schedule (at most the model's training timesteps) whose last `steps` steps all run
    at distinct, strictly decreasing noise levels with this scheduler. Found once per scheduler
    configuration and step count (a few schedule builds), then remembered."""
    key = (type(scheduler), repr(sorted(dict(scheduler.config).items())), steps)
    if key not in _longest:
        if len(_longest) >= 256:
            _longest.clear()
        _longest[key] = _search_longest(copy.deepcopy(scheduler), steps)  # never disturb the real one
    return _longest[key]


_longest: dict[tuple, int] = {}


def _search_longest(probe, steps: int) -> int:
    cap = int(probe.config.num_train_timesteps)

    def distinct(length: int) -> bool:
        plan = StepPlan(schedule_steps=length, first_step=length - steps, run_steps=steps)
        return runs_distinct_levels(probe, prepare_timesteps(probe, plan, "cpu"))

    if steps >= cap or distinct(cap):
        return cap
    good, bad = steps, cap  # a schedule of exactly `steps` steps is diffusers' own full schedule
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if distinct(middle) else (good, middle)
    return good


def runs_distinct_levels(scheduler, timesteps: torch.Tensor) -> bool:
    """Whether the prepared `timesteps` (and, for sigma schedules, their sigmas) strictly decrease,
    PLMS's one deliberate warm-up repeat aside."""
    levels = _without_plms_warm_up(scheduler, timesteps.tolist())
    if any(later >= earlier for earlier, later in zip(levels, levels[1:])):
        return False
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is None:
        return True  # alpha-indexed schedulers: a distinct timestep is a distinct noise level
    start = scheduler.begin_index or 0
    running = sigmas[start : start + len(timesteps)].tolist()
    return all(later < earlier for earlier, later in zip(running, running[1:]))


def _without_plms_warm_up(scheduler, timesteps: list) -> list:
    if isinstance(scheduler, PNDMScheduler) and len(timesteps) > 2 and timesteps[1] == timesteps[2]:
        return timesteps[:2] + timesteps[3:]
    return timesteps


def prepare_timesteps(scheduler, plan: StepPlan, device) -> torch.Tensor:
    """Set the scheduler up for `plan` and return the timesteps to run, in order."""
    extra = {}
    if isinstance(scheduler, LCMScheduler):
        # LCM picks its steps from a coarse grid of `original_inference_steps` points
        extra["original_inference_steps"] = max(plan.schedule_steps, scheduler.config.original_inference_steps)
    elif isinstance(scheduler, TCDScheduler) and plan.schedule_steps > scheduler.config.original_inference_steps:
        # TCD too, but naming the grid's size switches it to every timestep: only where its own is too coarse
        extra["original_inference_steps"] = plan.schedule_steps
    scheduler.set_timesteps(plan.schedule_steps, device=device, **extra)
    start = plan.first_step * scheduler.order
    if _karras(scheduler) and _repeats(scheduler.timesteps[start:]):
        scheduler.timesteps = _exact_timesteps(scheduler).to(device)
        scheduler.set_begin_index(start)
    if plan.first_step == 0:
        # exactly what diffusers' text-to-image pipeline does, so d = 1 matches it bit for bit
        return scheduler.timesteps
    if isinstance(scheduler, PNDMScheduler):
        return _pndm_tail(scheduler, plan.first_step, device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def _karras(scheduler) -> bool:
    return bool(getattr(scheduler.config, "use_karras_sigmas", False)) and getattr(scheduler, "sigmas", None) is not None


def _repeats(timesteps: torch.Tensor) -> bool:
    return len(torch.unique(timesteps)) < len(timesteps)


def _exact_timesteps(scheduler) -> torch.Tensor:
    """Each step's sigma as a fractional training timestep: the value diffusers rounds (its
    `_sigma_to_t`, linear in log sigma between neighbouring timesteps), left unrounded."""
    alphas = scheduler.alphas_cumprod.detach().cpu().double().numpy()
    table = np.log(((1 - alphas) / alphas) ** 0.5)  # log sigma of timesteps 0..999, increasing
    sigmas = scheduler.sigmas[: len(scheduler.timesteps)].detach().cpu().double().numpy()
    exact = np.interp(np.log(np.maximum(sigmas, 1e-10)), table, np.arange(len(table)))
    return torch.from_numpy(exact).to(torch.float32)


def _pndm_tail(scheduler: PNDMScheduler, first: int, device) -> torch.Tensor:
    # PLMS warms up by repeating its second timestep (see PNDMScheduler.set_timesteps); slicing the
    # full list, as diffusers' img2img does, puts that repeat in the wrong place and mislabels every
    # later sample. Rebuild the list for the tail instead: [t_f, t_f+1, t_f+1, t_f+2, ...].
    distinct = torch.unique_consecutive(scheduler.timesteps).tolist()[first:]
    tail = distinct[:2] + distinct[1:] if len(distinct) > 1 else distinct
    scheduler.timesteps = torch.tensor(tail, dtype=torch.long, device=device)
    return scheduler.timesteps
