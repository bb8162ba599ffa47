"""Presets: sampler, steps, CFG and the few-step LoRA a fast mode needs, set in one go.

Torch-free, so the window's preset picker and the command line share it. Each family has its own
version of a preset (its own few-step LoRA and the sampler its authors specify); the window's picker
makes SD 1.5's, and the engine fits it to the model it runs. A preset changes only those four
things; the denoise dial and start-at-step keep their exact meaning (with denoise d a schedule of
int(steps / d) steps is built and its last `steps` run, however few steps that is: at 1 step, the
last step of an int(1 / d)-step schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SketchpadError
from .families import FAMILIES
from .params import PRESETS, GenerationParams, LoraSpec
from .sources import LORA_HUB_FILE, ModelSource, hub_reference

LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"
HYPER_SD_8_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors"
HYPER_SD_4_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SD15-4steps-lora.safetensors"
HYPER_SD_1_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SD15-1step-lora.safetensors"
LCM_XL_LORA = "latent-consistency/lcm-lora-sdxl"
HYPER_SDXL_8_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SDXL-8steps-lora.safetensors"
HYPER_SDXL_1_STEP_LORA = "ByteDance/Hyper-SD/Hyper-SDXL-1step-lora.safetensors"
LIGHTNING_XL_4_STEP_LORA = "ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors"


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


# The presets as the picker shows them, with SD 1.5's LoRAs (see FAMILY_PRESETS for the others)
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
        # Hyper-SD's model card: its 1-step LoRAs run with the TCD scheduler, no CFG
        Preset("turbo", "Live-fast: Turbo (1 step)", "tcd", 1, 1.0, LoraSpec(HYPER_SD_1_STEP_LORA), True,
               "1 step, no CFG: SD-Turbo and SDXL-Turbo as they are; other models with Hyper-SD's 1-step LoRA and TCD",
               269_127_064),
    )
}  # fmt: skip
assert tuple(PRESET_TABLE) == PRESETS, "params.PRESETS names the same presets, in the same order"

# A one-step distilled model (SD-Turbo, SDXL-Turbo) takes the turbo preset as it is: its own sampler
_AS_IT_IS = Preset("turbo", "Live-fast: Turbo (1 step)", None, 1, 1.0, None, True,
                   "the one-step model as it is: its own sampler, 1 step, no CFG")
# Every family's own version of a preset (by family name, then "<family>-turbo" for a one-step model);
# None: that family has no LoRA for it. A preset's versions all run the same number of steps.
FAMILY_PRESETS: dict[tuple[str, str], Preset | None] = {
    ("lcm", "sdxl"): Preset("lcm", "Live-fast: LCM", "lcm", 4, 1.0, LoraSpec(LCM_XL_LORA), True,
                            "LCM-LoRA for SDXL (latent-consistency/lcm-lora-sdxl), LCM scheduler, 4 steps, no CFG",
                            393_854_592),
    ("hyper", "sdxl"): Preset("hyper", "Live-fast: Hyper-SD", "ddim_trailing", 8, 1.0, LoraSpec(HYPER_SDXL_8_STEP_LORA),
                              True, "Hyper-SD's SDXL 8-step LoRA with trailing DDIM, 8 steps, no CFG", 787_359_648),
    # ByteDance's SDXL-Lightning model card: Euler with trailing timesteps, no CFG
    ("lightning", "sdxl"): Preset("lightning", "Live-fast: Lightning (4 steps)", "euler_trailing", 4, 1.0,
                                  LoraSpec(LIGHTNING_XL_4_STEP_LORA), True,
                                  "SDXL-Lightning's 4-step LoRA with trailing Euler, 4 steps, no CFG", 393_854_592),
    ("turbo", "sdxl"): Preset("turbo", "Live-fast: Turbo (1 step)", "tcd", 1, 1.0, LoraSpec(HYPER_SDXL_1_STEP_LORA),
                              True, "Hyper-SD's SDXL 1-step LoRA with TCD, 1 step, no CFG", 787_359_648),
    ("turbo", "sdxl-turbo"): _AS_IT_IS,
    ("turbo", "sd2-turbo"): _AS_IT_IS,
    ("lcm", "sd2"): None, ("hyper", "sd2"): None, ("lightning", "sd2"): None, ("turbo", "sd2"): None,
}  # fmt: skip
_VERSIONS = {name: [PRESET_TABLE[name], *(p for (n, _), p in FAMILY_PRESETS.items() if n == name and p)]
             for name in PRESETS}
PRESET_LORA_NAMES = frozenset(p.lora.name.lower() for versions in _VERSIONS.values() for p in versions if p.lora)


def get_preset(name: str) -> Preset:
    try:
        return PRESET_TABLE[name]
    except KeyError as error:
        raise SketchpadError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from error


def preset_for(name: str, family: str = "sd15", turbo: bool = False) -> Preset:
    """Preset `name` as it runs on a model of `family` (a one-step distilled model when `turbo`), or
    SketchpadError in one line when that family has no LoRA for it."""
    get_preset(name)
    for key in ((name, f"{family}-turbo") if turbo else None, (name, family)):
        if key in FAMILY_PRESETS:
            found = FAMILY_PRESETS[key]
            if found is None:
                raise SketchpadError(f"the {name} preset has no LoRA for {FAMILIES[family].label} models; use quality"
                                     + (", or turbo with an SD-Turbo model" if family == "sd2" else ""))
            return found
    return PRESET_TABLE[name]


def preset_download_bytes(source: ModelSource) -> int | None:
    """The size of a preset's LoRA when `source` is one, else None."""
    for preset in (p for versions in _VERSIONS.values() for p in versions):
        reference = hub_reference(preset.lora.source) if preset.lora is not None else None
        if source.kind == "hub" and reference is not None:
            repo, inside = reference
            if (repo, (inside or LORA_HUB_FILE,)) == (source.location, source.files):
                return preset.download_bytes
    return None


def apply_preset(params: GenerationParams, name: str, family: str = "sd15", turbo: bool = False) -> GenerationParams:
    """`params` with the preset's sampler, steps, CFG and few-step LoRA for a model of `family`; the
    person's own LoRAs stay, another preset's LoRA goes. The denoise is kept as it is; a start step
    keeps its place in the schedule (step 10 of 20 becomes step 2 of 4), so 0 stays text-to-image and
    the end stays the sketch."""
    preset = preset_for(name, family, turbo)
    own = tuple(lora for lora in params.loras if lora.name.lower() not in PRESET_LORA_NAMES)
    loras = own + ((preset.lora,) if preset.lora is not None else ())
    start = params.start_at_step
    if start is not None:
        start = round(start * preset.steps / params.steps)
    return params.replace(
        scheduler=preset.scheduler, steps=preset.steps, cfg=preset.cfg, loras=loras, preset=preset.name,
        start_at_step=start,
    )


def fit_preset_to_model(params: GenerationParams, family: str, turbo: bool = False) -> GenerationParams:
    """A preset request made for another family (the window's picker makes SD 1.5's) as it runs on
    this one: the preset's LoRA swapped for this family's, and its sampler, steps and CFG where the
    request still has the other version's. Anything the person set otherwise stays."""
    if params.preset is None:
        return params
    target = preset_for(params.preset, family, turbo)
    names = {lora.name.lower() for lora in params.loras}
    made_for = next((p for p in _VERSIONS[params.preset] if p.lora and p.lora.name.lower() in names), None)
    if made_for is None and params.preset == "turbo" and params.scheduler is None and not names & PRESET_LORA_NAMES:
        made_for = _AS_IT_IS  # made for a one-step model: no LoRA, its own sampler
    if made_for is None or made_for == target:
        return params
    own = tuple(lora for lora in params.loras if lora.name.lower() not in PRESET_LORA_NAMES)
    changes = {field: getattr(target, field) for field in ("scheduler", "steps", "cfg")
               if getattr(params, field) == getattr(made_for, field)}
    return params.replace(loras=own + ((target.lora,) if target.lora else ()), **changes)
