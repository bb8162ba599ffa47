"""The recording server's checkpoint: the smallest one ComfyUI takes as SD1.5, with random weights.

Run by hand from the repository root (torch and diffusers needed), then put the file into the
server's models/checkpoints:

    PYTHONPATH=. python tests/comfy_recordings/make_server_checkpoint.py sd15-min320x1-random.safetensors

It is the pipeline benchmarks/comfy_bench.py runs locally with `--local same` (a UNet with one
320-channel CrossAttn level, which make_server_lora.py and make_server_controlnet.py fit, the
full-size VAE and CLIP text encoder), written in the original single-file layout by
tests/ldm_checkpoint.py.
"""

import sys
import tempfile

from benchmarks.comfy_bench import _local_pipeline
from tests.ldm_checkpoint import write_single_file_checkpoint


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _local_pipeline("same").save_pretrained(folder, safe_serialization=True)
        write_single_file_checkpoint(folder, out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
