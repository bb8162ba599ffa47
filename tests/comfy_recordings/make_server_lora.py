"""A random-weight kohya-layout LoRA for the recording server's one-level SD1.5 checkpoint.

Run by hand (torch and diffusers needed), then copy the file into the server's models/loras:

    python tests/comfy_recordings/make_server_lora.py sketchpad-random-lora.safetensors

Keys follow kohya/A1111 (`lora_unet_<diffusers path>` and `lora_te_<CLIP path>`, dots as underscores,
`.lora_down.weight`, `.lora_up.weight`, `.alpha`) for every attention projection of the UNet that
make_ckpt.py builds (one 320-channel CrossAttn level, 768-wide context) and of the CLIP text encoder.
"""

import sys

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

RANK = 4
CLIP_LAYERS, CLIP_WIDTH = 12, 768


def main(out: str) -> None:
    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(320,), down_block_types=("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",), cross_attention_dim=768, attention_head_dim=8,
        norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0)
    state = {}
    targets = add_unet(state, unet)
    add_text_encoder(state, "lora_te_", CLIP_LAYERS, CLIP_WIDTH)
    save(state, out)
    print(out, len(state), "tensors,", targets, "UNet layers")


def add_unet(state: dict, unet) -> int:
    """Every attention projection of `unet`, under kohya's `lora_unet_<diffusers path>` names."""
    targets = [(name, module) for name, module in unet.named_modules()
               if isinstance(module, torch.nn.Linear) and ".attn" in name
               and name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "0")]
    for name, module in targets:
        add(state, "lora_unet_" + name.replace(".", "_"), module.in_features, module.out_features)
    return len(targets)


def add_text_encoder(state: dict, prefix: str, layers: int, width: int) -> None:
    for layer in range(layers):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            add(state, f"{prefix}text_model_encoder_layers_{layer}_self_attn_{proj}", width, width)


def save(state: dict, out: str) -> None:
    save_file({k: v.to(torch.float16).contiguous() for k, v in state.items()}, out,
              metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(RANK)})


def add(state: dict, key: str, fan_in: int, fan_out: int) -> None:
    state[f"{key}.lora_down.weight"] = torch.randn(RANK, fan_in) * 0.1
    state[f"{key}.lora_up.weight"] = torch.randn(fan_out, RANK) * 0.1
    state[f"{key}.alpha"] = torch.tensor(float(RANK))


if __name__ == "__main__":
    main(sys.argv[1])
