"""Schedulers by name, and how to make one run exactly the part of a schedule a StepPlan asks for."""

from __future__ import annotations

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
)

from ...core.schedule import StepPlan

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
}


def make_scheduler(name: str, model_config) -> object:
    """A fresh scheduler `name` built on the model's own noise schedule (betas, offsets)."""
    cls, overrides = _SCHEDULERS[name]
    return cls.from_config(model_config, **overrides)


def scheduler_name(scheduler) -> str:
    """Our name for a scheduler instance (the model's own one included)."""
    if type(scheduler) is DDIMScheduler:
        return "ddim_trailing" if scheduler.config.timestep_spacing == "trailing" else "ddim"
    karras = bool(getattr(scheduler.config, "use_karras_sigmas", False))
    for name, (cls, overrides) in _SCHEDULERS.items():
        if type(scheduler) is cls and overrides.get("use_karras_sigmas", False) == karras:
            return name
    return type(scheduler).__name__


def max_schedule_steps(scheduler) -> int:
    return int(scheduler.config.num_train_timesteps)


def prepare_timesteps(scheduler, plan: StepPlan, device) -> torch.Tensor:
    """Set the scheduler up for `plan` and return the timesteps to run, in order."""
    extra = {}
    if isinstance(scheduler, LCMScheduler):
        # LCM picks its steps from a coarse grid of `original_inference_steps` points
        extra["original_inference_steps"] = max(plan.schedule_steps, scheduler.config.original_inference_steps)
    scheduler.set_timesteps(plan.schedule_steps, device=device, **extra)
    if plan.first_step == 0:
        # exactly what diffusers' text-to-image pipeline does, so d = 1 matches it bit for bit
        return scheduler.timesteps
    if isinstance(scheduler, PNDMScheduler):
        return _pndm_tail(scheduler, plan.first_step, device)
    start = plan.first_step * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def _pndm_tail(scheduler: PNDMScheduler, first: int, device) -> torch.Tensor:
    # PLMS warms up by repeating its second timestep (see PNDMScheduler.set_timesteps); slicing the
    # full list, as diffusers' img2img does, puts that repeat in the wrong place and mislabels every
    # later sample. Rebuild the list for the tail instead: [t_f, t_f+1, t_f+1, t_f+2, ...].
    distinct = scheduler._timesteps[::-1][first:].tolist()
    tail = distinct[:2] + distinct[1:] if len(distinct) > 1 else distinct
    scheduler.timesteps = torch.tensor(tail, dtype=torch.long, device=device)
    return scheduler.timesteps
