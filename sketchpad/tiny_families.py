"""How the random-weight SD 2.x and SDXL test models differ from the SD 1.5 one (sketchpad.tiny_model).

Each is SD 1.5's config with its family's differences, full size or tiny. The tiny ones keep what
tells the families apart and what the engine must get right: SD 2.x's OpenCLIP text encoder (plain
GELU) and v-prediction; SDXL's two text encoders (the second with a projection, whose pooled output
and the picture's size condition the UNet) and its VAE scale. Their cross-attention widths differ
(SD 1.5 tiny 32, SD 2.x tiny 48, SDXL tiny 32 + 48 = 80), as the real families' do (768, 1024,
768 + 1280 = 2048); SDXL's two text encoders differ in width too, which is how diffusers tells them
apart in a single checkpoint file.
"""

from __future__ import annotations

FAMILIES = ("sd15", "sd2", "sdxl")

# stabilityai/stable-diffusion-2-1's scheduler (DDIM, v-prediction) and
# stabilityai/stable-diffusion-xl-base-1.0's (Euler), minus bookkeeping keys
SD2_SCHEDULER = ("DDIMScheduler", {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "prediction_type": "v_prediction", "trained_betas": None,
})  # fmt: skip
SDXL_SCHEDULER = ("EulerDiscreteScheduler", {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "interpolation_type": "linear", "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
    "use_karras_sigmas": False, "clip_sample": False,
})  # fmt: skip
SDXL_VAE_SCALE = 0.13025
_XL_TIME_EMBED = {True: 256, False: 8}  # addition_time_embed_dim: six size numbers, each embedded this wide


def unet_changes(family: str, full_size: bool) -> dict:
    """What the family's UNet config changes in SD 1.5's."""
    if family == "sd2":
        if full_size:
            return dict(attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024, use_linear_projection=True,
                        sample_size=96)
        return dict(attention_head_dim=(2, 4), cross_attention_dim=48, use_linear_projection=True, sample_size=96)
    if family == "sdxl":
        text_2 = text_2_config(full_size)
        time = _XL_TIME_EMBED[full_size]
        common = dict(use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=time,
                      projection_class_embeddings_input_dim=6 * time + text_2["projection_dim"], sample_size=128)
        if full_size:
            return dict(common, block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
                        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                        transformer_layers_per_block=(1, 2, 10), cross_attention_dim=768 + 1280)
        return dict(common, attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2),
                    cross_attention_dim=32 + text_2["hidden_size"])
    return {}


def text_changes(family: str, full_size: bool) -> dict:
    """What the family's (first) text encoder config changes in SD 1.5's CLIP ViT-L."""
    if family != "sd2":
        return {}
    if full_size:  # OpenCLIP ViT-H, its penultimate layer (23 of 24), as diffusers converts it
        return dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                    projection_dim=512, hidden_act="gelu")
    return dict(hidden_size=48, intermediate_size=96, num_attention_heads=4, projection_dim=48, hidden_act="gelu")


def text_2_config(full_size: bool) -> dict:
    """SDXL's second text encoder (OpenCLIP ViT-bigG, with its projection), beyond the shared CLIP keys."""
    if full_size:
        return dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                    projection_dim=1280, hidden_act="gelu")
    return dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, projection_dim=48,
                hidden_act="gelu")


def vae_changes(family: str) -> dict:
    return dict(scaling_factor=SDXL_VAE_SCALE, force_upcast=True) if family == "sdxl" else {}


def scheduler_config(family: str, prediction: str | None) -> tuple[str, dict] | None:
    """(class name, config) of the family's scheduler; None: SD 1.5's PNDM."""
    found = {"sd2": SD2_SCHEDULER, "sdxl": SDXL_SCHEDULER}.get(family)
    if found is None:
        return None
    name, config = found
    return name, dict(config, prediction_type=prediction or config["prediction_type"])

