"""Test helper: turn a diffusers-layout SD1.x, SD2.x or SDXL pipeline folder into ONE original-format checkpoint.

``write_single_file_checkpoint(pipeline_dir, out_file)`` writes a CompVis/LDM ("AUTOMATIC1111
style") ``.safetensors`` file -- keys ``model.diffusion_model.*`` (UNet), ``first_stage_model.*``
(VAE) and ``cond_stage_model.transformer.text_model.*`` (CLIP text encoder) -- the reverse of
diffusers' ``diffusers/loaders/single_file_utils.py`` (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``), i.e. what the old
``scripts/convert_diffusers_to_original_stable_diffusion.py`` did.  Block counts come from the
unet/vae ``config.json``, so it works for the tiny test model as well as real SD1.5.

SD2.x keeps its OpenCLIP text encoder under ``cond_stage_model.model.*`` (OpenCLIP's own names, q/k/v
in one ``in_proj``), SDXL its two under ``conditioner.embedders.0.transformer.*`` (CLIP, as SD1.x)
and ``conditioner.embedders.1.model.*`` (OpenCLIP), and its size embedding as ``label_emb.0``: the
reverse of diffusers' ``convert_open_clip_checkpoint`` and ``convert_ldm_unet_checkpoint``. A
v-prediction model carries the ``v_pred`` key that trainers add and ComfyUI and Sketchpad read.

Loading it back offline (verified with diffusers 0.42 / transformers 5.23, HF_HUB_OFFLINE=1)::

    StableDiffusionImg2ImgPipeline.from_single_file(
        str(out_file),
        config=str(pipeline_dir),     # <- the key argument: a LOCAL diffusers folder
        local_files_only=True,
        safety_checker=None,
        requires_safety_checker=False,
    )

``config=<local diffusers folder>`` is what keeps ``from_single_file`` off the Hub: it reads
model_index.json and every component's config (and the tokenizer/scheduler files) from that folder
and only takes the weights from the checkpoint.  Without ``config`` it infers model type "v1" and
tries to fetch ``stable-diffusion-v1-5/stable-diffusion-v1-5``'s configs from the Hub (fails offline,
and would not fit the tiny model anyway).  ``original_config`` (an LDM yaml) is NOT needed; passing
it together with a local ``config`` would even make the model components ignore ``config``.
"""

from __future__ import annotations

import json
import pathlib

import torch
from safetensors.torch import load_file, save_file

__all__ = ["write_single_file_checkpoint", "diffusers_to_ldm_state_dict"]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

_UNET_TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's size and pooled-text embedding
    "add_embedding.linear_2": "label_emb.0.2",
}
# diffusers ResnetBlock2D -> LDM ResBlock
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_TOP_LEVEL = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_out": "encoder.conv_out",
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_out": "decoder.conv_out",
    "decoder.conv_norm_out": "decoder.norm_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}
# diffusers Attention (VAE mid block) -> LDM AttnBlock (1x1 convs)
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _read_component(pipeline_dir: pathlib.Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = pipeline_dir / name
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    state: dict[str, torch.Tensor] = {}
    for f in files:  # a single file, or the shards of an indexed checkpoint
        state.update(load_file(str(f)))
    return config, state


def _split(key: str) -> tuple[str, str]:
    """'a.b.c.weight' -> ('a.b.c', 'weight')"""
    module, _, param = key.rpartition(".")
    return module, param


class _Mapper:
    """Collects ldm_key -> tensor and checks every source key is consumed exactly once."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str):
        self.state = state
        self.prefix = prefix
        self.out: dict[str, torch.Tensor] = {}
        self.used: set[str] = set()

    def put(self, src_key: str, dst_key: str, tensor: torch.Tensor | None = None) -> None:
        if src_key in self.used:
            raise AssertionError(f"{src_key} mapped twice")
        dst = self.prefix + dst_key
        if dst in self.out:
            raise AssertionError(f"two tensors map to {dst}")
        self.used.add(src_key)
        self.out[dst] = self.state[src_key] if tensor is None else tensor

    def move_prefix(self, src_prefix: str, dst_prefix: str, rename: dict[str, str] | None = None) -> int:
        """Map every key under ``src_prefix.`` to ``dst_prefix.``, renaming the first sub-module."""
        n = 0
        for key in [k for k in self.state if k.startswith(src_prefix + ".")]:
            rest = key[len(src_prefix) + 1:]
            if rename:
                head, dot, tail = rest.partition(".")
                # two-part names such as "to_out.0"
                for src_name, dst_name in rename.items():
                    if rest.startswith(src_name + "."):
                        head, tail = dst_name, rest[len(src_name) + 1:]
                        dot = "."
                        break
                rest = f"{head}{dot}{tail}"
            self.put(key, f"{dst_prefix}.{rest}")
            n += 1
        return n

    def check_complete(self, what: str) -> None:
        left = sorted(set(self.state) - self.used)
        if left:
            raise ValueError(f"{what}: {len(left)} parameters have no LDM mapping, e.g. {left[:5]}")


def _layers_per_block(config: dict) -> int:
    lpb = config["layers_per_block"]
    if isinstance(lpb, (list, tuple)):
        if len(set(lpb)) != 1:
            raise ValueError("per-block layers_per_block is not expressible in the SD1.x LDM layout")
        lpb = lpb[0]
    return int(lpb)


def _convert_unet(config: dict, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    m = _Mapper(state, UNET_PREFIX)
    for src, dst in _UNET_TOP_LEVEL.items():
        m.move_prefix(src, dst)

    levels = len(config["block_out_channels"])
    lpb = _layers_per_block(config)

    # input_blocks: 0 = conv_in; then per level `lpb` x [ResBlock, (SpatialTransformer)], and a
    # Downsample entry after every level but the last.
    i = 1
    for b in range(levels):
        for j in range(lpb):
            m.move_prefix(f"down_blocks.{b}.resnets.{j}", f"input_blocks.{i}.0", _UNET_RESNET)
            m.move_prefix(f"down_blocks.{b}.attentions.{j}", f"input_blocks.{i}.1")
            i += 1
        if m.move_prefix(f"down_blocks.{b}.downsamplers.0.conv", f"input_blocks.{i}.0.op"):
            i += 1

    # middle_block: ResBlock, SpatialTransformer, ResBlock
    m.move_prefix("mid_block.resnets.0", "middle_block.0", _UNET_RESNET)
    m.move_prefix("mid_block.attentions.0", "middle_block.1")
    m.move_prefix("mid_block.resnets.1", "middle_block.2", _UNET_RESNET)

    # output_blocks: per level (lpb + 1) x [ResBlock, (SpatialTransformer), (Upsample on the last)]
    i = 0
    for b in range(levels):
        for j in range(lpb + 1):
            m.move_prefix(f"up_blocks.{b}.resnets.{j}", f"output_blocks.{i}.0", _UNET_RESNET)
            has_attn = m.move_prefix(f"up_blocks.{b}.attentions.{j}", f"output_blocks.{i}.1") > 0
            if j == lpb:
                slot = 2 if has_attn else 1
                m.move_prefix(f"up_blocks.{b}.upsamplers.0.conv", f"output_blocks.{i}.{slot}.conv")
            i += 1

    m.check_complete("unet")
    return m.out


def _convert_vae(config: dict, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    m = _Mapper(state, VAE_PREFIX)
    for src, dst in _VAE_TOP_LEVEL.items():
        m.move_prefix(src, dst)

    levels = len(config["block_out_channels"])
    for i in range(levels):
        m.move_prefix(f"encoder.down_blocks.{i}.resnets", f"encoder.down.{i}.block")
        m.move_prefix(f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv")
        # decoder up blocks are stored in reverse order in LDM (up.0 is the highest resolution)
        m.move_prefix(f"decoder.up_blocks.{i}.resnets", f"decoder.up.{levels - 1 - i}.block")
        m.move_prefix(f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{levels - 1 - i}.upsample.conv")

    for part in ("encoder", "decoder"):
        for r in (0, 1):
            m.move_prefix(f"{part}.mid_block.resnets.{r}", f"{part}.mid.block_{r + 1}")
        prefix = f"{part}.mid_block.attentions.0."
        for key in [k for k in state if k.startswith(prefix)]:
            module, param = _split(key[len(prefix):])
            tensor = state[key]
            if module in ("to_q", "to_k", "to_v", "to_out.0") and param == "weight" and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # Linear -> 1x1 conv, as in LDM
            m.put(key, f"{part}.mid.attn_1.{_VAE_ATTENTION[module]}.{param}", tensor)

    # ResnetBlock2D renames inside the moved blocks (only conv_shortcut differs)
    out = {}
    for key, tensor in m.out.items():
        out[key.replace(".conv_shortcut.", ".nin_shortcut.")] = tensor
    m.check_complete("vae")
    return out


def _with_wrapper(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # transformers >= 5.6 saves CLIPTextModel without its "text_model." wrapper
    return {key if key.startswith(("text_model.", "text_projection")) else "text_model." + key: tensor
            for key, tensor in state.items() if not key.endswith("position_ids")}


def _convert_text_encoder(state: dict[str, torch.Tensor], prefix: str = CLIP_PREFIX) -> dict[str, torch.Tensor]:
    return {prefix + key: tensor for key, tensor in _with_wrapper(state).items()}


_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}


def _convert_open_clip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model in OpenCLIP's names (SD2.x's, SDXL's second text encoder)."""
    state = _with_wrapper(state)
    out = {
        prefix + "token_embedding.weight": state.pop("text_model.embeddings.token_embedding.weight"),
        prefix + "positional_embedding": state.pop("text_model.embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": state.pop("text_model.final_layer_norm.weight"),
        prefix + "ln_final.bias": state.pop("text_model.final_layer_norm.bias"),
    }
    if "text_projection.weight" in state:
        out[prefix + "text_projection"] = state.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(key.split(".")[3]) for key in state if key.startswith("text_model.encoder.layers.")})
    for i in layers:
        source, target = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for param in ("weight", "bias"):
            out[f"{target}attn.in_proj_{param}"] = torch.cat(
                [state.pop(f"{source}self_attn.{name}_proj.{param}") for name in ("q", "k", "v")])
            for ours, theirs in _OPEN_CLIP_LAYER.items():
                out[f"{target}{theirs}.{param}"] = state.pop(f"{source}{ours}.{param}")
    if state:
        raise ValueError(f"text encoder: {len(state)} parameters have no OpenCLIP mapping, e.g. {sorted(state)[:5]}")
    return out


def _convert_text_encoders(pipeline_dir: pathlib.Path) -> dict[str, torch.Tensor]:
    text_config, text_state = _read_component(pipeline_dir, "text_encoder")
    if (pipeline_dir / "text_encoder_2").is_dir():  # SDXL
        _, second = _read_component(pipeline_dir, "text_encoder_2")
        return {**_convert_text_encoder(text_state, "conditioner.embedders.0.transformer."),
                **_convert_open_clip(second, "conditioner.embedders.1.model.")}
    if text_config.get("hidden_act") == "gelu":  # SD2.x: OpenCLIP ViT-H
        return _convert_open_clip(text_state, "cond_stage_model.model.")
    return _convert_text_encoder(text_state)


def diffusers_to_ldm_state_dict(pipeline_dir) -> dict[str, torch.Tensor]:
    """The LDM-format state dict for the unet, vae and text encoder(s) of a diffusers SD folder."""
    pipeline_dir = pathlib.Path(pipeline_dir)
    unet_config, unet_state = _read_component(pipeline_dir, "unet")
    vae_config, vae_state = _read_component(pipeline_dir, "vae")
    ldm: dict[str, torch.Tensor] = {}
    scheduler = json.loads((pipeline_dir / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    if scheduler.get("prediction_type") == "v_prediction":
        ldm["v_pred"] = torch.zeros(0)
    for part in (_convert_unet(unet_config, unet_state), _convert_vae(vae_config, vae_state),
                 _convert_text_encoders(pipeline_dir)):
        overlap = set(ldm) & set(part)
        if overlap:
            raise AssertionError(f"duplicate keys: {sorted(overlap)[:5]}")
        ldm.update(part)
    return ldm


def write_single_file_checkpoint(pipeline_dir, out_file, dtype: torch.dtype | None = None) -> pathlib.Path:
    """Write ``pipeline_dir``'s unet/vae/text_encoder as ONE original-format ``.safetensors`` file
    (its floating-point weights in ``dtype`` when given, e.g. fp16 for half the size).

    Load it back offline with ``StableDiffusionImg2ImgPipeline.from_single_file(out_file,
    config=pipeline_dir, local_files_only=True, safety_checker=None, requires_safety_checker=False)``
    (see the module docstring for why ``config`` must be the local diffusers folder).
    """
    out_file = pathlib.Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
             for k, v in diffusers_to_ldm_state_dict(pipeline_dir).items()}
    save_file(state, str(out_file), metadata={"format": "pt"})
    return out_file
