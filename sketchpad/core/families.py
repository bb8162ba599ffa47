"""Model families (SD 1.5, SD 2.x, SDXL): one small description each, and how to tell which one a
model is from the model itself, without torch (so the window and the command line can ask too).

A diffusers folder says it in its model_index.json and configs; a single .safetensors checkpoint in
its key names (as ComfyUI's model detection reads them). What the engine does differently per family
(prompt encoding, the UNet's extra conditioning) is in backends/local/conditioning.py; the presets'
LoRAs per family are in core/presets.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .safetensors_header import TensorInfo, read_safetensors_header, read_small_tensor
from .sources import DEFAULT_MODEL, TAESD_HUB_ID, TAESDXL_HUB_ID, resolve_model_source

log = logging.getLogger(__name__)

# ComfyUI's latent -> RGB factors (comfy/latent_formats.py): rows are latent channels, columns R, G, B
_SD_LATENT_RGB = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721),
                  (-0.2120, -0.2616, -0.7177))
_XL_LATENT_RGB = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                  (-0.3165, -0.2492, -0.2188))


@dataclass(frozen=True)
class Family:
    name: str  # "sd15", "sd2", "sdxl": what presets key on
    label: str  # what a person reads
    native_size: int  # the side it was trained at, when the model's own config does not say
    context_dim: int  # the UNet's cross-attention width: how LoRAs and ControlNets of a family are told apart
    latent_rgb_factors: tuple[tuple[float, float, float], ...]
    latent_rgb_bias: tuple[float, float, float]
    taesd_hub_id: str  # the tiny autoencoder for its latents
    taesd_folder: str  # ... when it lies beside the model instead
    config_hub_id: str  # the diffusers repository whose configs a single checkpoint file is loaded with
    pipeline: str  # the diffusers img2img pipeline the engine drives
    text_to_image: str  # the diffusers pipeline that denoise 1 equals, bit for bit


SD15 = Family("sd15", "SD 1.5", 512, 768, _SD_LATENT_RGB, (0.0, 0.0, 0.0), TAESD_HUB_ID, "taesd", DEFAULT_MODEL,
              "StableDiffusionImg2ImgPipeline", "StableDiffusionPipeline")
# SD 2.x shares SD 1.5's VAE, so its latents look the same; 768 is 2.x-v's size, 2.x-base and SD-Turbo say 512
SD2 = Family("sd2", "SD 2.x", 768, 1024, _SD_LATENT_RGB, (0.0, 0.0, 0.0), TAESD_HUB_ID, "taesd",
             "stabilityai/stable-diffusion-2-1", "StableDiffusionImg2ImgPipeline", "StableDiffusionPipeline")
SDXL = Family("sdxl", "SDXL", 1024, 2048, _XL_LATENT_RGB, (0.1084, -0.0175, -0.0011), TAESDXL_HUB_ID,
              "taesdxl", "stabilityai/stable-diffusion-xl-base-1.0", "StableDiffusionXLImg2ImgPipeline",
              "StableDiffusionXLPipeline")
FAMILIES = {family.name: family for family in (SD15, SD2, SDXL)}
_BY_CONTEXT = {family.context_dim: family for family in FAMILIES.values()}
RUNS = "Sketchpad runs SD 1.5, SD 2.x and SDXL models (Pony and Illustrious are SDXL)"


@dataclass(frozen=True)
class ModelKind:
    """What a model is: its family and what the model itself says beyond it."""

    family: Family
    native_size: int
    prediction: str | None = None  # a single file's own word (epsilon / v_prediction); None: the config's
    zero_snr: bool = False  # a single file trained with zero terminal SNR says so ("ztsnr")
    turbo: bool = False  # a one-step distilled model (SD-Turbo, SDXL-Turbo): the turbo preset runs it as it is


def family_of_width(width: int | None) -> Family | None:
    """The family whose UNet cross-attention is `width` wide (768, 1024, 2048), if any."""
    return _BY_CONTEXT.get(width)


def family_of_parts(second_text_encoder: bool, text_activation: str | None, cross_attention_dim) -> Family:
    """The family of a diffusers model from its parts: SDXL has two text encoders; SD 2.x's one is
    OpenCLIP's (plain GELU, where SD 1.x's CLIP has quick GELU) and 1024 wide."""
    if second_text_encoder:
        return SDXL
    return SD2 if text_activation == "gelu" or cross_attention_dim == SD2.context_dim else SD15


def mismatch(what: str, name: str, width: int | None, family: Family, model_width: int) -> ModelError | None:
    """The one-line error for a LoRA or ControlNet (`what`) made for a cross-attention `width` other
    than this model's, naming both families where the width is a family's; None when it fits or
    the width is unknown."""
    if width is None or width == model_width:
        return None
    other = family_of_width(width)
    if other is not None and other is not family:
        return ModelError(f"{what} {name} is made for {other.label} models and this model is {family.label}: "
                          f"choose a {what} made for {family.label}")
    return ModelError(f"{what} {name} does not fit this {family.label} model (it is made for a cross-attention "
                      f"{width} wide, the model's is {model_width})")


def lora_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """The cross-attention width a LoRA was made for, from the input side of its UNet's attn2.to_k
    (kohya `…attn2_to_k.lora_down.weight`, diffusers `…attn2.to_k.lora_A.weight`); None without one."""
    for key, shape in shapes.items():
        down = key.endswith(("lora_down.weight", "lora_A.weight", "lora.down.weight"))
        if down and "attn2" in key and "to_k" in key and len(shape) == 2:
            return shape[1]
    return None


def is_turbo_name(name: str) -> bool:
    return "turbo" in name.lower()


def unsupported(name: str, what: str) -> ModelError:
    return ModelError(f"{name} is {what} model; {RUNS}.")


# ---- diffusers folders ------------------------------------------------------------------------
_OTHER_PIPELINES = (  # _class_name prefix -> what a person calls it
    ("Flux", "a FLUX"), ("StableDiffusion3", "a Stable Diffusion 3"), ("StableCascade", "a Stable Cascade"),
    ("PixArt", "a PixArt"), ("Kandinsky", "a Kandinsky"), ("Kolors", "a Kolors"), ("AuraFlow", "an AuraFlow"),
    ("HunyuanDiT", "a Hunyuan-DiT"), ("Lumina", "a Lumina"), ("Sana", "a Sana"), ("QwenImage", "a Qwen-Image"),
    ("StableVideoDiffusion", "a Stable Video Diffusion"), ("Wan", "a Wan video"), ("StableUnCLIP", "an unCLIP"),
)


def detect_folder(folder: str | Path, name: str | None = None) -> ModelKind:
    """The family of a diffusers folder, from model_index.json and the configs (missing configs are
    left for the folder checks to name); ModelError in one line for a model of another kind.
    `name`: what the person calls it (a Hub id), when the folder's own name says nothing."""
    folder = Path(folder)
    index = _json(folder / "model_index.json")
    parts = {key for key, value in index.items() if isinstance(value, list) and value != [None, None]}
    class_name = str(index.get("_class_name", ""))
    if "unet" not in parts and ("transformer" in parts or class_name and not class_name.startswith("StableDiffusion")):
        raise unsupported(str(folder), _pipeline_kind(class_name))  # an SD folder without one: the checks say so
    if "text_encoder_2" in parts and "text_encoder" not in parts:
        raise unsupported(str(folder), "an SDXL refiner")
    unet = _json(folder / "unet" / "config.json")
    text = _json(folder / "text_encoder" / "config.json")
    family = family_of_parts("text_encoder_2" in parts, text.get("hidden_act"), unet.get("cross_attention_dim"))
    if class_name.startswith(("StableDiffusionUpscale", "StableDiffusionLatentUpscale", "StableDiffusionDepth2Img")):
        raise unsupported(str(folder), _pipeline_kind(class_name))
    sample_size = unet.get("sample_size")
    native = int(sample_size) * 8 if isinstance(sample_size, int) and sample_size > 0 else family.native_size
    return ModelKind(family, native, turbo=is_turbo_name(name or folder.name))


def _pipeline_kind(class_name: str) -> str:
    for prefix, what in _OTHER_PIPELINES:
        if class_name.startswith(prefix):
            return what
    name = class_name.removesuffix("Pipeline") or "an unknown"
    return f"a {name}"


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # the folder checks name a missing or damaged file in their own words
    return data if isinstance(data, dict) else {}


# ---- single checkpoint files -----------------------------------------------------------------
UNET = "model.diffusion_model."
_OTHER_CHECKPOINTS = (  # a key fragment only that kind of model has -> what a person calls it
    ("double_blocks.", "a FLUX"), ("joint_blocks.", "a Stable Diffusion 3"), ("double_layers.", "an AuraFlow"),
    ("time_stack.", "a Stable Video Diffusion"), ("cap_embedder.", "a Lumina"),
)
# ComfyUI's tell for SD 2.x-v (supported_models.SD20.model_type): this norm's bias spreads wider
_SD2_V_TELL = UNET + "output_blocks.11.1.transformer_blocks.0.norm1.bias"


def detect_checkpoint(file: str | Path, header: dict[str, TensorInfo] | None = None) -> ModelKind:
    """The family of a single .safetensors checkpoint from its keys (and, for SD 2.x, one small
    tensor); ModelError in one line for a model of another kind."""
    file = Path(file)
    header = read_safetensors_header(file) if header is None else header

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in header)

    for fragment, what in _OTHER_CHECKPOINTS:
        if any(fragment in key for key in header):
            raise unsupported(str(file), what)
    if has("conditioner.embedders.1.model.") or has(UNET + "label_emb.") and not has("cond_stage_model."):
        if not has("conditioner.embedders.0.transformer.") and has("conditioner.embedders.0.model."):
            raise unsupported(str(file), "an SDXL refiner")
        family = SDXL
    elif has("cond_stage_model.model."):
        family = SD2
    elif has("cond_stage_model.transformer."):
        family = SD15
    else:  # no text encoder to tell by: the UNet's cross-attention width, as ComfyUI reads it
        family = family_of_width(_cross_attention_width(header)) or SD15
    prediction = "v_prediction" if "v_pred" in header else None
    if family is SD2 and prediction is None:
        prediction = "v_prediction" if _sd2_v_tell(file, header) else "epsilon"
    native = 512 if family is SD2 and prediction == "epsilon" else family.native_size
    return ModelKind(family, native, prediction, zero_snr="ztsnr" in header, turbo=is_turbo_name(file.stem))


def _cross_attention_width(header: dict[str, TensorInfo]) -> int | None:
    for key in sorted(header):
        if key.startswith(UNET) and key.endswith("attn2.to_k.weight") and len(header[key].shape) == 2:
            return header[key].shape[1]
    return None


def _sd2_v_tell(file: Path, header: dict[str, TensorInfo]) -> bool:
    info = header.get(_SD2_V_TELL)
    if info is None or header.get(UNET + "input_blocks.0.0.weight", info).shape[1:2] != (4,):
        return False  # SD 2.x inpainting models are not v-prediction
    values = read_small_tensor(file, _SD2_V_TELL, info)
    return float(values.std()) > 0.09


# ---- any model a person names ----------------------------------------------------------------
def model_kind(text: str | None) -> ModelKind | None:
    """The kind of the model `text` names (a folder, a file, a Hub id already downloaded), or None
    when that cannot be known yet (a Hub model not downloaded) or the model cannot be read."""
    from .hub import cached_file  # the Hub's module knows the presets, which know the families

    try:
        source = resolve_model_source(text)
        if source.kind == "folder":
            return detect_folder(source.location)
        if source.kind == "file":
            return detect_checkpoint(source.location)
        index = cached_file(source.location, "model_index.json")
        return detect_folder(index.parent, source.location) if index is not None else None
    except ModelError:
        log.info("the kind of model %s is not known", text, exc_info=True)
        return None


def native_size(text: str | None) -> int:
    """The side pictures for the model `text` names are best made at (SD 1.5's 512 when unknown)."""
    kind = model_kind(text)
    return SD15.native_size if kind is None else kind.native_size
