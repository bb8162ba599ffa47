"""The recording server's checkpoint: the smallest one ComfyUI takes as SD1.5, with random weights.

Run by hand from the repository root (torch and diffusers needed), then put the file into the
server's models/checkpoints:

    PYTHONPATH=. python tests/comfy_recordings/make_server_checkpoint.py sd15-min320x1-random.safetensors

It is the pipeline benchmarks/comfy_bench.py runs locally with `--local same` (a UNet with one
320-channel CrossAttn level, which make_server_lora.py and make_server_controlnet.py fit, the
full-size VAE and CLIP text encoder), written in the original single-file layout by
tests/ldm_checkpoint.py.

With `--inpainting` its UNet takes 9 input channels (latents, mask, masked-picture latents), as
SD1.5's inpainting checkpoints do; ComfyUI's model detection then loads it as an inpainting model.
Its name should say "inpaint" (Sketchpad tells inpainting checkpoints on a server by their name):

    PYTHONPATH=. python tests/comfy_recordings/make_server_checkpoint.py sd15-min320x1-inpainting-random.safetensors --inpainting
"""

import sys
import tempfile

from benchmarks.comfy_bench import _local_pipeline
from tests.ldm_checkpoint import write_single_file_checkpoint

INPAINTING_CHANNELS = 9


def main(out: str, inpainting: bool = False) -> None:
    pipe = _local_pipeline("same")
    if inpainting:
        from diffusers import UNet2DConditionModel

        pipe.unet = UNet2DConditionModel.from_config({**pipe.unet.config, "in_channels": INPAINTING_CHANNELS})
    with tempfile.TemporaryDirectory() as folder:
        pipe.save_pretrained(folder, safe_serialization=True)
        write_single_file_checkpoint(folder, out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1], inpainting="--inpainting" in sys.argv)
