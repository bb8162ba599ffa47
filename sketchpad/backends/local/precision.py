"""Which number format each part of a model runs in.

The UNet (and a ControlNet beside it) does nearly all the work. On CUDA it runs in fp16, as every
Stable Diffusion tool does. On a CPU with bf16 instructions (AVX512-BF16 or AMX) a bf16 UNet runs
in about half the time of an fp32 one (SD 1.5 at 256x256 on an AMD EPYC: 2.3 s against 4.3 s a
call) with pictures close to fp32's; without them bf16 is emulated and slower, so fp32 stays. The
VAE always runs in fp32 (SD's and SDXL's VAEs overflow in fp16: black pictures), and on a CPU so do
the text encoders and the denoising loop's own arithmetic: only the UNet's (and ControlNet's) input
is cast to bf16 and its output back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ...core.errors import SketchpadError
from ...core.registry import DTYPE_ENV, DTYPES
_TORCH = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_NAMES = {dtype: name for name, dtype in _TORCH.items()}
# torch's own CPU feature probe (cpuinfo): the instructions that make bf16 matrix products native
_BF16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    unet: torch.dtype  # the UNet and a ControlNet
    loop: torch.dtype  # the text encoders, the latents and the scheduler's arithmetic

    @property
    def name(self) -> str:
        return dtype_name(self.unet)


def dtype_name(dtype: torch.dtype) -> str:
    """What the status line says: "fp32", "bf16", "fp16"."""
    return _NAMES.get(dtype, str(dtype).removeprefix("torch."))


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions, as torch's CPU probe reports them (never guessed)."""
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return any(bool(capabilities.get(name)) for name in _BF16_INSTRUCTIONS)


def choose_precision(device: torch.device, choice: str | None = None) -> Precision:
    """The precision for `device`: `choice` ("auto", "fp32", "bf16", "fp16"; by default $SKETCHPAD_DTYPE,
    else "auto"), or SketchpadError in one line for one this device cannot run."""
    choice = (choice or os.environ.get(DTYPE_ENV) or "auto").strip().lower()
    if choice not in DTYPES:
        raise SketchpadError(f"unknown precision {choice!r}; choose one of: {', '.join(DTYPES)}")
    if choice == "auto":
        choice = "fp16" if device.type == "cuda" else "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
    if choice == "fp16" and device.type == "cpu":
        raise SketchpadError("fp16 is for graphics cards; on the CPU choose bf16 or fp32 (--dtype)")
    unet = _TORCH[choice]
    return Precision(unet=unet, loop=torch.float32 if device.type == "cpu" else unet)
