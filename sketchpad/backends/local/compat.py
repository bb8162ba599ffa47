"""What the engine relies on in diffusers beyond its documented calls, checked by name.

The engine drives the denoising loop itself, so it reads and sets scheduler attributes that
diffusers' pipelines use but do not document (sigmas, begin_index, a writable timesteps list, ...).
They exist in the diffusers release the project pins and tests (see pyproject.toml). A release that
drops or renames one must fail loudly, naming it, rather than run the wrong schedule quietly.
"""

from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    TCDScheduler,
)

from ...core.errors import ModelError

TESTED_DIFFUSERS = "diffusers>=0.42,<0.43"

_EVERY_SCHEDULER = ("timesteps", "init_noise_sigma", "order", "alphas_cumprod", "scale_model_input", "add_noise")
_SIGMA_SCHEDULER = ("sigmas", "step_index", "begin_index", "set_begin_index")
SCHEDULER_ATTRIBUTES = {
    PNDMScheduler: _EVERY_SCHEDULER,
    DDIMScheduler: _EVERY_SCHEDULER,
    EulerDiscreteScheduler: _EVERY_SCHEDULER + _SIGMA_SCHEDULER,
    EulerAncestralDiscreteScheduler: _EVERY_SCHEDULER + _SIGMA_SCHEDULER,
    DPMSolverMultistepScheduler: _EVERY_SCHEDULER + _SIGMA_SCHEDULER,
    LCMScheduler: _EVERY_SCHEDULER + ("step_index", "begin_index", "set_begin_index"),
    TCDScheduler: _EVERY_SCHEDULER + ("step_index", "begin_index", "set_begin_index"),
}
PIPELINE_ATTRIBUTES = (
    "encode_prompt", "prepare_extra_step_kwargs", "image_processor", "vae_scale_factor",
    "get_guidance_scale_embedding", "unet", "vae", "text_encoder", "tokenizer", "scheduler",
)
SDXL_PIPELINE_ATTRIBUTES = ("text_encoder_2", "tokenizer_2")


def check_scheduler(scheduler) -> None:
    """Raise ModelError naming the first attribute the engine needs that `scheduler` lacks."""
    cls = next((known for known in SCHEDULER_ATTRIBUTES if isinstance(scheduler, known)), None)
    if cls is None:
        return  # a model's own exotic scheduler: only the documented calls are used on it
    _require(scheduler, type(scheduler).__name__, SCHEDULER_ATTRIBUTES[cls])


def check_pipeline(pipe) -> None:
    _require(pipe, type(pipe).__name__, PIPELINE_ATTRIBUTES)
    if hasattr(pipe, "text_encoder_2"):
        _require(pipe, type(pipe).__name__, SDXL_PIPELINE_ATTRIBUTES)


def _require(thing, name: str, attributes) -> None:
    for attribute in attributes:
        if not hasattr(thing, attribute):
            import diffusers

            raise ModelError(
                f"diffusers {diffusers.__version__} has changed: {name} has no `{attribute}`, which Sketchpad relies on.\n"
                f"Install the tested version: pip install '{TESTED_DIFFUSERS}'"
            )
