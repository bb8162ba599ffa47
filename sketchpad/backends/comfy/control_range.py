"""Our ControlNet start/end range as ComfyUI's start_percent/end_percent, step for step.

Ours counts the steps that run: the ControlNet steers executed step i of n unless i/n < start or
(i+1)/n > end (ControlSpec.steers). ComfyUI's counts noise levels instead: it steers a model call
whose sigma lies within [percent_to_sigma(end), percent_to_sigma(start)], where percent_to_sigma(p) is
SD1.5's sigma at timestep (1 - p) * 999. With a denoise below 1 only the low end of the schedule runs,
so the same numbers would steer other steps. So we work out the sigma every executed step runs at on
the server (its scheduler and sampler node, as ComfyUI computes them) and send percents that fall
halfway between the last step left out and the first one steered (in timestep space), far from any
step, so float rounding on the server can never flip one.

Pure numpy, like the rest of the client; tests/comfy_recordings/record_control_masks.py checks it
against ComfyUI's own functions.
"""

from __future__ import annotations

import numpy as np

from ...core.params import ControlSpec

TIMESTEPS = 1000


def _sd15_sigmas() -> np.ndarray:
    """ModelSamplingDiscrete for SD1.5: 'linear' betas (squares of a linspace of square roots), 1000 steps."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, TIMESTEPS, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


SIGMAS = _sd15_sigmas()  # SIGMAS[t]: the noise level of timestep t, rising with t
LOG_SIGMAS = np.log(SIGMAS)


def sigma_at(timesteps) -> np.ndarray:
    """ModelSamplingDiscrete.sigma: log-linear between the integer timesteps."""
    t = np.clip(np.asarray(timesteps, dtype=np.float64), 0, TIMESTEPS - 1)
    return np.exp(np.interp(t, np.arange(TIMESTEPS), LOG_SIGMAS))


def timestep_of(sigmas) -> np.ndarray:
    """The (fractional) timestep whose sigma_at() is `sigmas`: the inverse of sigma_at."""
    return np.interp(np.log(np.asarray(sigmas, dtype=np.float64)), LOG_SIGMAS, np.arange(TIMESTEPS))


def schedule(scheduler: str, steps: int) -> np.ndarray:
    """ComfyUI's calculate_sigmas for SD1.5: falling noise levels, ending in 0."""
    if scheduler == "normal":
        levels = sigma_at(np.linspace(TIMESTEPS - 1, 0, steps))
    elif scheduler == "sgm_uniform":
        levels = sigma_at(np.linspace(TIMESTEPS - 1, 0, steps + 1)[:-1])
    elif scheduler == "karras":
        rho = 7.0
        low, high = SIGMAS[0] ** (1 / rho), SIGMAS[-1] ** (1 / rho)
        levels = (high + np.linspace(0, 1, steps) * (low - high)) ** rho
    elif scheduler == "ddim_uniform":
        # every (1000 // steps)-th timestep from 1 up: one step more than asked when 1000 is no multiple
        levels = SIGMAS[1::max(TIMESTEPS // steps, 1)][::-1]
    else:
        raise ValueError(f"no sigma schedule for the ComfyUI scheduler {scheduler!r}")
    return np.append(levels, 0.0)


def runs_whole_schedule(denoise: float) -> bool:
    """ComfyUI's KSampler.set_steps treats a denoise above 0.9999 as full: the whole schedule runs."""
    return denoise > 0.9999


def ksampler_schedule_length(steps: int, denoise: float) -> int:
    """The schedule KSampler builds: below full denoise a longer one, of which the last `steps` run."""
    return steps if runs_whole_schedule(denoise) else int(steps / denoise)


def executed_sigmas(sampler: dict) -> np.ndarray:
    """The sigma of each step a KSampler / KSamplerAdvanced node (as workflow builds them) runs."""
    inputs = sampler["inputs"]
    steps = int(inputs["steps"])
    if sampler["class_type"] == "KSampler":
        denoise = float(inputs["denoise"])
        sigmas = schedule(inputs["scheduler"], ksampler_schedule_length(steps, denoise))
        if not runs_whole_schedule(denoise):  # of the longer schedule, the last `steps` steps run
            sigmas = sigmas[-(steps + 1):]
    elif sampler["class_type"] == "KSamplerAdvanced":
        sigmas = schedule(inputs["scheduler"], steps)[int(inputs["start_at_step"]):]
    else:
        raise ValueError(f"no sigma schedule for a {sampler['class_type']} node")
    return sigmas[:-1]  # each step calls the model at its own sigma; the last one is only the target


def control_percents(spec: ControlSpec, sigmas: np.ndarray) -> tuple[float, float] | None:
    """(start_percent, end_percent) that steer exactly the executed steps (run at `sigmas`) our range
    steers; None when it steers none of them (then the graph goes without the ControlNet)."""
    total = len(sigmas)
    steered = [index for index in range(total) if spec.steers(index, total)]
    if not steered:
        return None
    first, last = steered[0], steered[-1]
    times = timestep_of(sigmas)
    start = 0.0 if first == 0 else _percent_between(times[first - 1], times[first])
    end = 1.0 if last == total - 1 else _percent_between(times[last], times[last + 1])
    return start, end


def _percent_between(higher: float, lower: float) -> float:
    """The percent whose percent_to_sigma lies halfway (in timesteps) between two steps' timesteps."""
    return float(1.0 - (higher + lower) / 2 / (TIMESTEPS - 1))
