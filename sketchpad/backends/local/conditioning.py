"""What a family's UNet is told besides the latents and the timestep.

SD 1.5 and SD 2.x: the prompt's token embeddings (one text encoder; SD 2.x's is OpenCLIP's). SDXL:
the token embeddings of both its text encoders side by side, and, as "added conditions", the second
encoder's pooled embedding and six size numbers: the picture's original size, the crop's top-left
corner and the target size. For img2img diffusers sets both sizes to the picture's own and the crop to
(0, 0) (StableDiffusionXLImg2ImgPipeline with requires_aesthetics_score off, as for every SDXL base
model and its fine-tunes; its text-to-image pipeline sets the same), and so does the engine.
The same numbers go to a ControlNet beside the UNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Conditioning:
    """A prompt's encoding, batched [negative, positive] when classifier-free guidance runs."""

    embeds: torch.Tensor  # the UNet's encoder_hidden_states
    pooled: torch.Tensor | None = None  # SDXL: the second text encoder's pooled embedding

    def unet_inputs(self, dtype: torch.dtype, height: int, width: int) -> dict:
        """The keyword arguments a UNet (or ControlNet) of `dtype` takes for a picture of this size."""
        inputs = {"encoder_hidden_states": self.embeds.to(dtype), "added_cond_kwargs": None}
        if self.pooled is not None:
            size = (height, width)
            time_ids = torch.tensor([size + (0, 0) + size], dtype=self.embeds.dtype, device=self.embeds.device)
            inputs["added_cond_kwargs"] = {
                "text_embeds": self.pooled.to(dtype),
                "time_ids": time_ids.repeat(len(self.pooled), 1).to(dtype),
            }
        return inputs


def encode_prompt(pipe, prompt: str, negative: str, do_cfg: bool, device) -> Conditioning:
    """The pipeline's own prompt encoding (so that denoise 1 equals diffusers), as one Conditioning."""
    encoded = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=do_cfg, negative_prompt=negative)
    if len(encoded) == 4:  # SDXL: token embeddings and pooled embeddings, each positive and negative
        positive, negative_embeds, pooled, negative_pooled = encoded
        if do_cfg:
            return Conditioning(torch.cat([negative_embeds, positive]), torch.cat([negative_pooled, pooled]))
        return Conditioning(positive, pooled)
    positive, negative_embeds = encoded
    return Conditioning(torch.cat([negative_embeds, positive]) if do_cfg else positive)
