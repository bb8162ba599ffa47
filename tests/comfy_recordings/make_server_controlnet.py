"""A random-weight SD1.5 ControlNet for the recording server's one-level checkpoint, in the original
(lllyasviel, `control_model.*`) layout that ComfyUI's ControlNetLoader reads.

Run by hand (torch and diffusers needed), then copy the file into the server's models/controlnet:

    python tests/comfy_recordings/make_server_controlnet.py sketchpad-random-controlnet.safetensors

diffusers' ControlNetModel.from_unet on make_ckpt.py's UNet, converted with the UNet's own key map
(tests/ldm_checkpoint.py) plus ControlNet's extras as ComfyUI maps them (controlnet_cond_embedding ->
input_hint_block.0,2,..., controlnet_down_blocks.i -> zero_convs.i.0, controlnet_mid_block ->
middle_block_out.0). The zero convolutions (and the hint embedding's last one) get small random
weights, so the ControlNet does something and the sketch steers it.
"""

import sys
from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.ldm_checkpoint import UNET_PREFIX, _convert_unet  # noqa: E402

PREFIX = "control_model."


def main(out: str) -> None:
    torch.manual_seed(2)
    config = dict(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(320,), down_block_types=("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",), cross_attention_dim=768, attention_head_dim=8,
        norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0)
    write_controlnet(config, out)


def write_controlnet(config: dict, out: str) -> None:
    """A ControlNet for the UNet `config` describes, in ComfyUI's `control_model.*` layout (fp16)."""
    controlnet = ControlNetModel.from_unet(UNet2DConditionModel(**config))
    state = {k: v.detach().clone() for k, v in controlnet.state_dict().items()}
    extras = {}
    for key in [k for k in state if k.startswith("controlnet_down_blocks.") or k.startswith("controlnet_mid_block.")]:
        tensor = state.pop(key)
        tensor = torch.randn_like(tensor) * 0.02  # from_unet leaves them zero: no effect at all
        if key.startswith("controlnet_mid_block."):
            extras["middle_block_out.0." + key.rsplit(".", 1)[1]] = tensor
        else:
            _, index, leaf = key.split(".")
            extras[f"zero_convs.{index}.0.{leaf}"] = tensor
    embedding = [k for k in state if k.startswith("controlnet_cond_embedding.")]
    blocks = sorted({int(k.split(".")[2]) for k in embedding if k.split(".")[1] == "blocks"})
    for key in embedding:
        parts = key.split(".")
        if parts[1] == "conv_in":
            slot = 0
        elif parts[1] == "blocks":
            slot = 2 * (int(parts[2]) + 1)
        else:  # conv_out, zero as well after from_unet: the sketch would not reach the ControlNet
            slot = 2 * (len(blocks) + 1)
            state[key] = torch.randn_like(state[key]) * 0.02
        extras[f"input_hint_block.{slot}.{parts[-1]}"] = state.pop(key)
    unet = {k[len(UNET_PREFIX):]: v for k, v in _convert_unet({**config}, state).items()}
    final = {PREFIX + k: v.to(torch.float16).contiguous() for k, v in {**unet, **extras}.items()}
    save_file(final, out)
    print(out, len(final), "tensors")


if __name__ == "__main__":
    main(sys.argv[1])
