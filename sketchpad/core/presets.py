"""Presets: sampler, steps, CFG and the few-step LoRA a fast mode needs, set in one go.

Torch-free, so the window's preset picker and the command line share it. A preset changes only those
four things; the denoise dial and start-at-step keep their exact meaning (with denoise d a schedule
of int(steps / d) steps is built and its last `steps` run, however few steps that is).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SketchpadError
from .params import PRESETS, GenerationParams, LoraSpec
from .sources import LORA_HUB_FILE, ModelSource, hub_reference

LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"
HYPER_SD_8_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors"
HYPER_SD_4_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SD15-4steps-lora.safetensors"


@dataclass(frozen=True)
class Preset:
    name: str  # what --preset takes and the PNG records
    label: str  # what the picker shows
    scheduler: str | None  # None: the model's own
    steps: int
    cfg: float
    lora: LoraSpec | None
    live: bool  # made for Live mode: pair it with draft (TAESD) decodes while the dial moves
    note: str  # one line for a tooltip or --help
    download_bytes: int | None = None  # its LoRA's size on the Hub, for "needs a download: about 135 MB"


PRESET_TABLE: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("quality", "Quality", None, 20, 7.5, None, False,
               "the model's own sampler (PLMS for SD1.5), 20 steps, CFG 7.5"),
        Preset("lcm", "Live-fast: LCM", "lcm", 4, 1.0, LoraSpec(LCM_LORA), True,
               "LCM-LoRA (latent-consistency/lcm-lora-sdv1-5) with the LCM scheduler, 4 steps, no CFG", 134_621_556),
        # Hyper-SD's model card: the SD1.5 N-step LoRAs run with DDIM, timestep spacing "trailing", no CFG
        Preset("hyper", "Live-fast: Hyper-SD", "ddim_trailing", 8, 1.0, LoraSpec(HYPER_SD_8_STEP_LORA), True,
               "Hyper-SD's SD1.5 8-step LoRA (ByteDance/Hyper-SD) with trailing DDIM, 8 steps, no CFG", 269_127_064),
        # ByteDance published Lightning LoRAs for SDXL only; its SD1.5 few-step LoRAs are Hyper-SD's,
        # so the 4-step "Lightning-style" preset uses Hyper-SD's 4-step SD1.5 LoRA with its own scheduler.
        Preset("lightning", "Live-fast: Lightning-style (4 steps)", "ddim_trailing", 4, 1.0,
               LoraSpec(HYPER_SD_4_STEP_LORA), True,
               "SDXL-Lightning has no SD1.5 version; this uses Hyper-SD's SD1.5 4-step LoRA, trailing DDIM, no CFG",
               269_127_064),
    )
}  # fmt: skip
assert tuple(PRESET_TABLE) == PRESETS, "params.PRESETS names the same presets, in the same order"

PRESET_LORA_NAMES = frozenset(p.lora.name.lower() for p in PRESET_TABLE.values() if p.lora is not None)


def get_preset(name: str) -> Preset:
    try:
        return PRESET_TABLE[name]
    except KeyError as error:
        raise SketchpadError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from error


def preset_download_bytes(source: ModelSource) -> int | None:
    """The size of a preset's LoRA when `source` is one, else None."""
    for preset in PRESET_TABLE.values():
        reference = hub_reference(preset.lora.source) if preset.lora is not None else None
        if source.kind == "hub" and reference is not None:
            repo, inside = reference
            if (repo, (inside or LORA_HUB_FILE,)) == (source.location, source.files):
                return preset.download_bytes
    return None


def apply_preset(params: GenerationParams, name: str) -> GenerationParams:
    """`params` with the preset's sampler, steps, CFG and few-step LoRA; the person's own LoRAs stay,
    another preset's LoRA goes. The denoise is kept as it is; a start step keeps its place in the
    schedule (step 10 of 20 becomes step 2 of 4), so 0 stays text-to-image and the end stays the sketch."""
    preset = get_preset(name)
    own = tuple(lora for lora in params.loras if lora.name.lower() not in PRESET_LORA_NAMES)
    loras = own + ((preset.lora,) if preset.lora is not None else ())
    start = params.start_at_step
    if start is not None:
        start = round(start * preset.steps / params.steps)
    return params.replace(
        scheduler=preset.scheduler, steps=preset.steps, cfg=preset.cfg, loras=loras, preset=preset.name,
        start_at_step=start,
    )
