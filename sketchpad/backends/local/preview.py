"""Per-step previews: turn the predicted final latents into a small RGB picture, cheaply."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...core.families import SD15

Previewer = Callable[[torch.Tensor], np.ndarray]


def predicted_original(scheduler, step_output, sample: torch.Tensor, model_output: torch.Tensor, timestep):
    """The scheduler's guess of the finished latents (x0), or the current sample if it has none."""
    for field in ("pred_original_sample", "denoised"):
        x0 = getattr(step_output, field, None)
        if x0 is not None:
            return x0
    alphas = getattr(scheduler, "alphas_cumprod", None)
    # PNDM and DPM-Solver keep unscaled (variance-preserving) samples, so x0 follows from the noise guess
    if alphas is not None and float(getattr(scheduler, "init_noise_sigma", 1.0)) == 1.0:
        alpha = alphas[int(round(float(timestep)))].to(device=sample.device, dtype=sample.dtype)
        kind = scheduler.config.prediction_type
        if kind == "epsilon":
            return (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
        if kind == "v_prediction":
            return alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
    return step_output.prev_sample


def latent2rgb(latents: torch.Tensor, factors=SD15.latent_rgb_factors, bias=SD15.latent_rgb_bias) -> np.ndarray:
    """(1, 4, h, w) latents -> (h, w, 3) uint8: a 4x3 linear map and a bias (the family's, from
    ComfyUI: rows are latent channels, columns R, G, B), nearly free."""
    as_tensor = dict(dtype=latents.dtype, device=latents.device)
    rgb = torch.einsum("chw,cr->hwr", latents[0], torch.tensor(factors, **as_tensor)) + torch.tensor(bias, **as_tensor)
    return _to_uint8((rgb + 1) / 2)


def decoder_previewer(decode: Callable[[torch.Tensor], torch.Tensor]) -> Previewer:
    """Previews through an image decoder (full VAE or TAESD) returning [-1, 1] images."""

    def preview(latents: torch.Tensor) -> np.ndarray:
        image = decode(latents)[0]
        return _to_uint8((image.permute(1, 2, 0) + 1) / 2)

    return preview


def _to_uint8(unit: torch.Tensor) -> np.ndarray:
    return (unit.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
