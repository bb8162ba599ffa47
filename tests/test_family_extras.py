"""LoRAs and "Keep my lines" per family: SDXL LoRAs in kohya (lora_unet_, lora_te1_, lora_te2_) and
diffusers layouts on both text encoders, an SDXL ControlNet, and a LoRA or ControlNet of another
family refused in one line naming both; other kinds of model named in one line; the turbo preset."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec
from sketchpad.core.sources import resolve_model_source


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def params(*loras, **changes):
    base = dict(prompt="a knight", negative_prompt="blurry", steps=3, seed=7, scheduler="euler", strength=0.8)
    return GenerationParams(loras=tuple(loras), **{**base, **changes})


def engine_for(folder, name="tiny"):
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline

    return Img2ImgEngine(load_pipeline(resolve_model_source(str(folder)), torch.device("cpu")), name)


@pytest.fixture(scope="module")
def xl_engine(tiny_family_dirs):
    return engine_for(tiny_family_dirs("sdxl"))


def weights(pipe):
    """The model's own weights (under a LoRA's peft layers too; the adapters' own left aside)."""
    return {f"{part}.{name.replace('.base_layer', '')}": tensor.detach().clone()
            for part in ("unet", "text_encoder", "text_encoder_2")
            for name, tensor in getattr(pipe, part).state_dict().items() if "lora_" not in name}


@pytest.fixture(scope="module")
def xl_loras(tmp_path_factory, xl_engine):
    """A random SDXL LoRA on the UNet and both text encoders, in diffusers' and kohya's layouts."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    pipe = xl_engine.pipe
    folder = tmp_path_factory.mktemp("xl-loras")
    torch.manual_seed(11)
    unet = UNet2DConditionModel.from_config(pipe.unet.config)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False))
    parts = {"unet": get_peft_model_state_dict(unet)}
    for name, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection)):
        text = cls(getattr(pipe, name).config)
        inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False), text)
        parts[name] = get_peft_model_state_dict(text)
    parts = {name: {key: value * 3 for key, value in state.items()} for name, state in parts.items()}  # visible
    StableDiffusionXLPipeline.save_lora_weights(
        folder, unet_lora_layers=parts["unet"], text_encoder_lora_layers=parts["text_encoder"],
        text_encoder_2_lora_layers=parts["text_encoder_2"], weight_name="xl_style.safetensors")
    kohya = {f"lora_unet_{k}": v for k, v in convert_state_dict_to_kohya(parts["unet"]).items()}
    for prefix, name in (("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2")):
        for key, value in convert_state_dict_to_kohya(parts[name]).items():
            key = key if key.startswith("text_model_") else f"text_model_{key}"
            kohya[f"{prefix}{key}"] = value.contiguous()
    save_file(kohya, folder / "xl_style_kohya.safetensors")
    return folder


def test_an_sdxl_lora_changes_the_picture_in_both_layouts_and_leaves_no_trace(xl_engine, xl_loras, stick_figure):
    before_weights = weights(xl_engine.pipe)
    plain = pixels(xl_engine.generate(params(), stick_figure).image)
    zero = xl_engine.generate(params(LoraSpec(str(xl_loras / "xl_style.safetensors"), 0.0)), stick_figure)
    assert np.array_equal(pixels(zero.image), plain)  # weight 0 is the picture without it, bit for bit
    styled = pixels(xl_engine.generate(params(LoraSpec(str(xl_loras / "xl_style.safetensors"))), stick_figure).image)
    changed = {key for key, value in weights(xl_engine.pipe).items() if not torch.equal(value, before_weights[key])}
    assert {key.split(".")[0] for key in changed} == {"unet", "text_encoder", "text_encoder_2"}
    kohya = xl_engine.generate(params(LoraSpec(str(xl_loras / "xl_style_kohya.safetensors"))), stick_figure)
    assert np.abs(pixels(kohya.image) - styled).max() <= 1 and np.abs(styled - plain).mean() > 1
    assert np.array_equal(pixels(xl_engine.generate(params(), stick_figure).image), plain)
    after = weights(xl_engine.pipe)
    assert all(torch.equal(after[key], before_weights[key]) for key in before_weights)


def fake_lora(path, width):
    """A LoRA file whose UNet cross-attention part is made for `width` (768: SD 1.5, 2048: SDXL)."""
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    save_file({f"{key}.lora_down.weight": torch.zeros(1, width), f"{key}.lora_up.weight": torch.zeros(64, 1)}, path)
    return path


@pytest.mark.parametrize("model, width, expected", [
    ("sd15", 2048, "is made for SDXL models and this model is SD 1.5: choose a LoRA made for SD 1.5"),
    ("sdxl", 768, "is made for SD 1.5 models and this model is SDXL: choose a LoRA made for SDXL"),
    ("sdxl", 40, "does not fit this SDXL model (it is made for a cross-attention 40 wide, the model's is 80)"),
])
def test_a_lora_of_another_family_is_one_line_naming_both(xl_engine, engine, tmp_path, stick_figure, model, width,
                                                          expected):
    chosen = xl_engine if model == "sdxl" else engine
    before = weights(chosen.pipe) if model == "sdxl" else None
    lora = fake_lora(tmp_path / "other.safetensors", width)
    with pytest.raises(SketchpadError) as caught:
        chosen.generate(params(LoraSpec(str(lora))), stick_figure)
    assert str(caught.value) == f"LoRA other.safetensors {expected}" and caught.value.kind is FailureKind.MODEL
    if before is not None:
        assert all(torch.equal(value, before[key]) for key, value in weights(chosen.pipe).items())


@pytest.fixture(scope="module")
def xl_controlnet(tmp_path_factory, xl_engine):
    from diffusers import ControlNetModel

    torch.manual_seed(3)
    controlnet = ControlNetModel.from_unet(xl_engine.pipe.unet, conditioning_embedding_out_channels=(16, 32, 48, 64))
    for param in controlnet.parameters():  # from_unet zeroes the outputs; random ones make a visible change
        param.data.normal_(0, 0.05)
    folder = tmp_path_factory.mktemp("xl-controlnet")
    controlnet.save_pretrained(folder, safe_serialization=True)
    return folder


def test_an_sdxl_controlnet_steers_and_at_strength_zero_is_bit_for_bit_absent(xl_engine, xl_controlnet, stick_figure):
    plain = pixels(xl_engine.generate(params(), stick_figure).image)
    off = xl_engine.generate(params(control=ControlSpec(str(xl_controlnet), 0.0)), stick_figure)
    assert np.array_equal(pixels(off.image), plain)
    steered = xl_engine.generate(params(control=ControlSpec(str(xl_controlnet), 1.0)), stick_figure)
    assert np.abs(pixels(steered.image) - plain).mean() > 1


def test_a_controlnet_of_another_family_is_one_line_before_its_weights_are_read(xl_engine, tmp_path, stick_figure):
    folder = tmp_path / "control_v11p_sd15_scribble"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", "cross_attention_dim": 768}))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"not read")
    with pytest.raises(SketchpadError) as caught:
        xl_engine.generate(params(control=ControlSpec(str(folder))), stick_figure)
    assert str(caught.value) == ("ControlNet control_v11p_sd15_scribble is made for SD 1.5 models and this model is "
                                 "SDXL: choose a ControlNet made for SDXL")


@pytest.mark.parametrize("index, what", [
    ({"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"]}, "a FLUX"),
    ({"_class_name": "StableDiffusion3Pipeline", "transformer": ["diffusers", "SD3Transformer2DModel"]},
     "a Stable Diffusion 3"),
    ({"_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
      "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "unet": ["diffusers", "UNet2DConditionModel"]},
     "an SDXL refiner"),
])
def test_a_model_of_another_kind_is_one_line_saying_what_it_is(tmp_path, index, what):
    from sketchpad.backends.local.models import load_pipeline

    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(SketchpadError) as caught:
        load_pipeline(resolve_model_source(str(tmp_path)), torch.device("cpu"))
    assert str(caught.value) == (f"{tmp_path} is {what} model; Sketchpad runs SD 1.5, SD 2.x and SDXL models "
                                 "(Pony and Illustrious are SDXL).")
    assert caught.value.kind is FailureKind.MODEL


def test_an_sd_folder_without_its_unet_is_said_to_be_incomplete_not_of_another_kind(tmp_path):
    from sketchpad.backends.local.models import load_pipeline

    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                           "unet": [None, None]}))
    with pytest.raises(SketchpadError, match="lists no unet"):
        load_pipeline(resolve_model_source(str(tmp_path)), torch.device("cpu"))


@pytest.mark.parametrize("key, what", [("double_blocks.0.img_attn.qkv.weight", "a FLUX"),
                                       ("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
                                        "a Stable Diffusion 3")])
def test_a_single_file_of_another_kind_is_one_line(tmp_path, key, what):
    from sketchpad.backends.local.models import load_pipeline

    checkpoint = tmp_path / "other.safetensors"
    save_file({key: torch.zeros(2, 2)}, checkpoint)
    with pytest.raises(SketchpadError, match=f"^{checkpoint} is {what} model; Sketchpad runs SD 1.5, SD 2.x and SDXL"):
        load_pipeline(resolve_model_source(str(checkpoint)), torch.device("cpu"))


def test_the_window_s_sd15_preset_asks_for_the_sdxl_lora_on_an_sdxl_model(xl_engine, stick_figure):
    from sketchpad.core.presets import apply_preset

    with pytest.raises(SketchpadError) as caught:  # offline: the SDXL LoRA is named, not SD 1.5's
        xl_engine.generate(apply_preset(params(), "lcm"), stick_figure)
    assert "latent-consistency/lcm-lora-sdxl" in str(caught.value) and caught.value.kind is FailureKind.NEEDS_DOWNLOAD


def test_turbo_runs_a_one_step_model_as_it_is_and_the_dial_picks_the_step(tmp_path, stick_figure):
    from sketchpad.core.presets import apply_preset
    from sketchpad.tiny_model import write_tiny_model

    engine = engine_for(write_tiny_model(tmp_path / "sd-turbo", family="sd2", prediction="epsilon"), "sd-turbo")
    seen = []
    hook = engine.pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(float(args[1])))
    try:
        for denoise in (1.0, 0.5, 0.25):
            result = engine.generate(apply_preset(params(strength=denoise), "turbo"), stick_figure)
            assert result.steps_run == 1 and result.params.loras == () and result.sampler == "ddim"
    finally:
        hook.remove()
    schedule = engine.pipe.scheduler
    expected = []
    for length in (1, 2, 4):  # int(1 / d) steps, the last one run, as ComfyUI does
        schedule.set_timesteps(length)
        expected.append(float(schedule.timesteps[-1]))
    assert seen == expected
