"""A random-weight SDXL-class checkpoint ComfyUI takes as SDXL, with a LoRA and a ControlNet that fit it.

Run by hand from the repository root (torch and diffusers needed), then put the files into a server's
models/checkpoints, models/loras and models/controlnet:

    PYTHONPATH=. python tests/comfy_recordings/make_server_sdxl.py OUT_FOLDER

ComfyUI tells SDXL-class UNets apart by their transformer depths (comfy/supported_models.py: SDXL's
[0, 0, 2, 2, 10, 10], SSD-1B's, Segmind Vega's, KOALA's); the smallest it takes is KOALA-700M's
[0, 2, 5] (one res block per level). With every level 320 channels wide (ComfyUI checks the first
level's width only) the UNet is small; the text encoders must be SDXL's own, full size (CLIP ViT-L and
OpenCLIP ViT-bigG: ComfyUI builds them from fixed configs), and so is the VAE. Weights in fp16: about
2 GB. The LoRA (kohya: lora_unet_, lora_te1_, lora_te2_) and the ControlNet (`control_model.*`) are
made for this UNet, as make_server_lora.py and make_server_controlnet.py make SD1.5's.
"""

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sketchpad import tiny_families, tiny_model  # noqa: E402
from tests.comfy_recordings.make_server_controlnet import write_controlnet  # noqa: E402
from tests.comfy_recordings.make_server_lora import add_text_encoder, add_unet, save  # noqa: E402
from tests.ldm_checkpoint import write_single_file_checkpoint  # noqa: E402

UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(320, 320, 320),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 5), attention_head_dim=(5, 5, 5), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
)


def main(out: str) -> None:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(4)
    tokenizer = tiny_model._load_tokenizer()
    common = tiny_model._text_config(True, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                                     tokenizer.pad_token_id)
    unet = UNet2DConditionModel(**UNET)
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=AutoencoderKL(**{**tiny_model._vae_config(True), **tiny_families.vae_changes("sdxl")}),
        text_encoder=CLIPTextModel(CLIPTextConfig(**common)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**{**common, **tiny_families.text_2_config(True)})),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(tiny_families.SDXL_SCHEDULER[1]),
    )
    with tempfile.TemporaryDirectory() as pipeline_dir:
        pipe.save_pretrained(pipeline_dir, safe_serialization=True)
        print(write_single_file_checkpoint(pipeline_dir, folder / "sdxl-koala-min320-random.safetensors",
                                           torch.float16))
    lora = {}
    add_unet(lora, unet)
    add_text_encoder(lora, "lora_te1_", 12, 768)
    add_text_encoder(lora, "lora_te2_", 32, 1280)
    save(lora, str(folder / "sketchpad-random-sdxl-lora.safetensors"))
    write_controlnet(UNET, str(folder / "sketchpad-random-sdxl-controlnet.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
