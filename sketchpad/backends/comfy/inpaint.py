"""Masks on a ComfyUI server with its built-in nodes; core/masks.py crops, feathers and pastes around
them here as it does for the local engine, so the server only ever sees the work picture and its mask.

Both go up as the sketch does, named by their content (a dial turn uploads nothing), the mask as a
grey PNG (255: redo) that LoadImageMask reads from its red channel. What the server does with them
is what the local engine does (backends/local/inpaint.py):

- A regular checkpoint: the work picture is encoded and SetLatentNoiseMask says which latents are
  redone; after every step ComfyUI puts the others back to the picture's, noised to the step's
  level. The mask goes up at latent size, a cell redone where it holds a pixel to redo
  (InpaintPlan.latent_mask), so ComfyUI, which scales the mask to the latents, keeps it as it is.
- An inpainting checkpoint: InpaintModelConditioning gives the model the mask and the picture with
  the pixels to redo blanked out, so the mask goes up at the work size (InpaintPlan.work_redo);
  nothing is put back (its noise_mask off).

ComfyUI cannot tell a client how many input channels a checkpoint's UNet has (Krita AI Diffusion
asks an extension of its own that reads the files), so an inpainting checkpoint is known by its name:
"inpaint" in it, as in the published ones' (sd-v1-5-inpainting, 512-inpainting-ema, …Inpainting).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ...core.masks import InpaintPlan

INPAINTING_NAME = "inpaint"


def is_inpainting_checkpoint(name: str) -> bool:
    """Whether the server's checkpoint `name` is an inpainting one (see above)."""
    return INPAINTING_NAME in name.lower()


def mask_picture(plan: InpaintPlan, inpainting: bool) -> Image.Image:
    """The mask the server gets ("L", 255: redo): at latent size for a regular checkpoint, at the work
    size for an inpainting one."""
    redo = plan.work_redo() if inpainting else plan.latent_mask()
    return Image.fromarray(redo.astype(np.uint8) * 255)
