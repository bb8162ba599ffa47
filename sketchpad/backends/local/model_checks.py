"""Look at a model before the libraries load it, so every problem is said in a painter's terms.

Each check raises ModelError with one or two lines: the file or folder at fault, then the fix.
Only configs and safetensors headers are read (never a pickle, never the weights themselves), and
the expected weight shapes come from building each part on torch's "meta" device, which allocates
nothing: a check costs well under a second even for a full-size model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ...core.errors import ModelError
from ...core.families import SD15, SDXL, UNET, Family, ModelKind, detect_checkpoint
from ...core.safetensors_header import read_safetensors_header
from ...core.sources import PICKLE_SUFFIXES

log = logging.getLogger(__name__)

# The parts of a diffusers folder: folder -> (what it does, config file, weights file stem)
PARTS = {
    "unet": ("the UNet, which paints", "config.json", "diffusion_pytorch_model"),
    "vae": ("the VAE, which turns pictures into latents and back", "config.json", "diffusion_pytorch_model"),
    "text_encoder": ("the text encoder, which reads the prompt", "config.json", "model"),
    "tokenizer": ("the tokenizer, which splits the prompt into words", None, None),
    "scheduler": ("the noise schedule", "scheduler_config.json", None),
    "text_encoder_2": ("SDXL's second text encoder, which reads the prompt too", "config.json", "model"),
    "tokenizer_2": ("the second text encoder's tokenizer", None, None),
}
_SDXL_ONLY = ("text_encoder_2", "tokenizer_2")
# Where a single checkpoint file keeps each family's text encoder(s)
_TEXT_ENCODERS = {
    "sd15": ("cond_stage_model.transformer.",),
    "sd2": ("cond_stage_model.model.",),
    "sdxl": ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."),
}
_GET_IT_AGAIN = "Copy it again from where the model came from, or download the model again."


def check_model_folder(folder: str | Path, family: Family = SD15) -> None:
    """Raise ModelError naming the first missing, damaged or mismatched file of a diffusers folder."""
    folder = Path(folder)
    index = read_json(folder / "model_index.json")
    for part, (what, config_name, weights_stem) in PARTS.items():
        if part in _SDXL_ONLY and family is not SDXL:
            continue
        part_dir = folder / part
        if not index.get(part) or index[part] == [None, None]:
            raise ModelError(
                f"{folder / 'model_index.json'} lists no {part} ({what}), so this is not a complete "
                f"Stable Diffusion model.\n{_GET_IT_AGAIN}"
            )
        if not part_dir.is_dir():
            raise ModelError(f"{part_dir} is missing: the model needs its {part} folder ({what}).\n{_GET_IT_AGAIN}")
        if part.startswith("tokenizer"):
            _check_tokenizer(part_dir)
            continue
        config = part_dir / config_name
        if not config.is_file():
            raise ModelError(f"{config} is missing: {part} ({what}) cannot be set up without it.\n{_GET_IT_AGAIN}")
        read_json(config)
        if weights_stem:
            files = _weight_files(part_dir, weights_stem)
            file_shapes = {key: shape for file in files for key, shape in read_header(file).items()}
            _check_shapes(part, part_dir, files, file_shapes)


def check_checkpoint(file: str | Path) -> ModelKind:
    """What a single-file checkpoint is; ModelError if it is damaged, of a kind Sketchpad does not
    run, or lacks its UNet, VAE or text encoder(s)."""
    file = Path(file)
    header = read_safetensors_header(file)

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in header)

    if any("lora_" in key or ".lora." in key or "lora_A" in key for key in header) and not has(UNET):
        raise ModelError(f"{file} is a LoRA, not a model: add it on top of a model under LoRAs (--lora).")
    kind = detect_checkpoint(file, header)
    if not has(UNET):
        raise ModelError(
            f"{file} is not a Stable Diffusion checkpoint: it holds no UNet weights (model.diffusion_model.*).\n"
            "Choose an SD 1.5, SD 2.x or SDXL .safetensors checkpoint or a diffusers model folder."
        )
    encoders = _TEXT_ENCODERS[kind.family.name]
    for prefix, what in (("first_stage_model.", "VAE"), *((prefix, "text encoder") for prefix in encoders)):
        if not has(prefix):
            raise ModelError(
                f"{file} has no {what} inside (no {prefix}* weights).\n"
                f"Use a checkpoint with its {what} baked in, or a diffusers model folder."
            )
    return kind


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelError(
            f"{path} is damaged: it is not valid JSON ({error.msg}, line {error.lineno}).\n{_GET_IT_AGAIN}"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path} cannot be read ({_reason(error)}).\n{_GET_IT_AGAIN}") from error


def read_header(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header (the weights are not read)."""
    return {key: info.shape for key, info in read_safetensors_header(file).items()}


def _check_tokenizer(part_dir: Path) -> None:
    if (part_dir / "tokenizer.json").is_file() or all((part_dir / n).is_file() for n in ("vocab.json", "merges.txt")):
        return
    raise ModelError(
        f"{part_dir} has no vocabulary (vocab.json and merges.txt, or tokenizer.json).\n{_GET_IT_AGAIN}"
    )


def _weight_files(part_dir: Path, stem: str) -> list[Path]:
    single = part_dir / f"{stem}.safetensors"
    if single.is_file():
        return [single]
    index = part_dir / f"{stem}.safetensors.index.json"
    if index.is_file():  # sharded: every shard the index names
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        missing = [name for name in shards if not (part_dir / name).is_file()]
        if missing or not shards:
            raise ModelError(f"{part_dir / (missing[0] if missing else index.name)} is missing.\n{_GET_IT_AGAIN}")
        return [part_dir / name for name in shards]
    pickles = sorted(p.name for p in part_dir.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(
            f"{part_dir} holds only pickled weights ({pickles[0]}), which Sketchpad never opens: a pickle can run code.\n"
            "Convert them to .safetensors, or get the model's .safetensors files."
        )
    raise ModelError(f"{single} is missing: {part_dir.name} has no weights.\n{_GET_IT_AGAIN}")


def _check_shapes(part: str, part_dir: Path, files: list[Path], file_shapes: dict) -> None:
    expected = _expected_shapes(part, part_dir)
    in_common = [key for key in expected if key in file_shapes]
    if not in_common:
        raise ModelError(
            f"{files[0]} holds no weights of {part} (none of its tensor names fit {part}/config.json).\n"
            f"{_GET_IT_AGAIN}"
        )
    for key in in_common:
        want, got = expected[key], file_shapes[key]
        # a 1x1 convolution saved for a linear layer (old VAE attention) holds the same numbers
        if want != got and _numel(want) != _numel(got):
            weights = files[0] if len(files) == 1 else part_dir
            raise ModelError(
                f"{weights} does not fit {part_dir / PARTS[part][1]} ({key} is {_shape(got)} in the weights, "
                f"{_shape(want)} by the config).\nThe two come from different models: copy both from the same source."
            )


def _expected_shapes(part: str, part_dir: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes the config asks for, from a model built on the meta device (no memory)."""
    try:
        with torch.device("meta"):
            if part.startswith("text_encoder"):
                from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

                cls = CLIPTextModelWithProjection if part == "text_encoder_2" else CLIPTextModel
                model = cls(CLIPTextConfig.from_pretrained(part_dir))
            else:
                from diffusers import AutoencoderKL, UNet2DConditionModel

                cls = UNet2DConditionModel if part == "unet" else AutoencoderKL
                model = cls.from_config(cls.load_config(part_dir))
    except Exception as error:  # a config with impossible values: the libraries raise many types
        log.warning("building %s from %s failed", part, part_dir, exc_info=True)
        raise ModelError(
            f"{part_dir / PARTS[part][1]} does not describe a {part} Sketchpad can build ({_reason(error)}).\n"
            f"{_GET_IT_AGAIN}"
        ) from error
    return {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in shape) or "a scalar"


def _reason(error: Exception) -> str:
    return " ".join(str(error).split())[:120] or type(error).__name__
