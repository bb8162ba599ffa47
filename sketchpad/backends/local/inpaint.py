"""What a mask adds to the engine's one denoising loop, at the work size (core/masks.py crops,
feathers and pastes around it).

A regular UNet (4 input channels) denoises the whole work picture; after every step the latents
outside the mask are put back to the input's, noised to the next step's level (clean after the
last step), as diffusers' StableDiffusionInpaintPipeline and AUTOMATIC1111 do with a regular
checkpoint. An inpainting UNet (9 input channels: the latents, the mask, the latents of the picture
with the masked part blanked out) is told at every step what to keep instead, and nothing is put
back. Without a mask it is given an all-redo mask and a blank picture, as AUTOMATIC1111 does, so
such a checkpoint also turns sketches into pictures.
"""

from __future__ import annotations

import numpy as np
import torch

INPAINTING_CHANNELS = 9  # 4 latent + 1 mask + 4 masked-picture latent channels


def is_inpainting_unet(unet) -> bool:
    """Inpainting checkpoints are told apart by their UNet alone."""
    return unet.config.in_channels == INPAINTING_CHANNELS


class Masking:
    """One masked run's work per step: `condition` the UNet's input, `blend` the stepped latents."""

    def __init__(self, conditioning: torch.Tensor | None = None, keep=None):
        self._conditioning = conditioning  # inpainting UNet: mask + masked-picture latents, per batch row
        self._keep = keep  # regular UNet: (scheduler, timesteps, noise, input latents, redo mask)

    def condition(self, model_input: torch.Tensor) -> torch.Tensor:
        if self._conditioning is None:
            return model_input
        return torch.cat([model_input, self._conditioning], dim=1)

    def blend(self, latents: torch.Tensor, index: int) -> torch.Tensor:
        """The latents after step `index` with those outside the mask put back to the input's."""
        if self._keep is None:
            return latents
        scheduler, timesteps, noise, input_latents, redo = self._keep
        kept = input_latents
        if index + 1 < len(timesteps):
            # the scheduler's own noise for the next step's level (sigma schedulers read it from their step index)
            kept = scheduler.add_noise(input_latents, noise, timesteps[index + 1:index + 2])
        return torch.where(redo, latents, kept)


def regular_masking(scheduler, timesteps, noise, input_latents, redo: np.ndarray) -> Masking:
    """For a regular UNet: `redo` (bool, latent height x width) says which latents are denoised."""
    return Masking(keep=(scheduler, timesteps, noise, input_latents, _tensor(redo, input_latents)))


def inpainting_masking(masked_latents: torch.Tensor, redo: np.ndarray, do_cfg: bool) -> Masking:
    """For an inpainting UNet: its mask and masked-picture latents, once per batch row."""
    conditioning = torch.cat([_tensor(redo, masked_latents).to(masked_latents.dtype), masked_latents], dim=1)
    return Masking(conditioning=torch.cat([conditioning] * 2) if do_cfg else conditioning)


def blank_where_redone(pixels: torch.Tensor, redo: np.ndarray | None) -> torch.Tensor:
    """The preprocessed picture ([-1, 1]) with the pixels to redo set to 0 (grey), as the inpainting
    checkpoints were trained to see it; `redo` None: all of it."""
    if redo is None:
        return torch.zeros_like(pixels)
    return pixels * ~_tensor(redo, pixels)


def _tensor(mask: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask))[None, None].to(like.device)
