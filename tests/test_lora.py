"""LoRAs on the tiny model: fused while unchanged, re-weighted without re-reading, removed without a
trace, refused when pickled, and written into / read back from saved PNGs the AUTOMATIC1111 way.

The LoRAs are random-weight peft adapters on the tiny UNet and text encoder, saved by diffusers
(`save_lora_weights`, diffusers/peft keys) and, for the same weights, in kohya's key layout."""

import hashlib

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import save_file

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import GenerationParams, LoraSpec
from sketchpad.core.storage import ResultInfo, parse_parameters, read_png_parameters, save_result


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def params(*loras, **changes):
    base = dict(prompt="a knight", negative_prompt="blurry", steps=3, seed=7, scheduler="euler", strength=0.8)
    base.update(changes)
    return GenerationParams(loras=tuple(loras), **base)


def _random_lora(pipe, seed, unet_targets, text_targets):
    """peft state dicts (unet, text encoder) of a random LoRA; B is not zero, so it changes the picture."""
    from diffusers import UNet2DConditionModel
    from peft import inject_adapter_in_model
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(pipe.unet.config)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=unet_targets, init_lora_weights=False))
    text = CLIPTextModel(pipe.text_encoder.config)
    # peft directly: transformers' own add_adapter may ask for a newer peft than is released
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, target_modules=text_targets, init_lora_weights=False), text)
    scale = lambda state: {key: value * 3 for key, value in state.items()}  # noqa: E731  (a visible effect)
    return scale(get_peft_model_state_dict(unet)), scale(get_peft_model_state_dict(text))


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory, tiny_pipeline):
    from diffusers import StableDiffusionPipeline
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    folder = tmp_path_factory.mktemp("loras")
    unet, text = _random_lora(tiny_pipeline, 1, ["to_q", "to_k", "to_v", "to_out.0", "conv1"], ["q_proj", "v_proj"])
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=unet, text_encoder_lora_layers=text, weight_name="style.safetensors"
    )
    kohya = {f"lora_unet_{k}": v for k, v in convert_state_dict_to_kohya(unet).items()}
    kohya |= {f"lora_te_{k}": v for k, v in convert_state_dict_to_kohya(text).items()}
    save_file(kohya, folder / "style_kohya.safetensors")
    other, _ = _random_lora(tiny_pipeline, 2, ["to_q", "to_v", "proj_in"], ["q_proj"])
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=other, weight_name="detail.safetensors")
    save_file({"weight": torch.zeros(3)}, folder / "not_a_lora.safetensors")
    return folder


@pytest.fixture
def lora_engine(tiny_model_dir):
    """An engine over its own pipeline, so a failing LoRA test cannot leave weights behind for others."""
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source

    return Img2ImgEngine(load_pipeline(resolve_model_source(str(tiny_model_dir)), pick_device("cpu")), "tiny")


def weights(pipe):
    return {
        f"{part}.{name}": tensor.detach().clone()
        for part in ("unet", "text_encoder")
        for name, tensor in getattr(pipe, part).state_dict().items()
    }


def peft_layers(pipe):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for part in (pipe.unet, pipe.text_encoder) for m in part.modules() if isinstance(m, BaseTunerLayer)]


def test_a_lora_changes_the_picture_and_removing_it_restores_every_weight_exactly(lora_engine, lora_files, stick_figure):
    pipe = lora_engine.pipe
    originals = weights(pipe)
    plain = pixels(lora_engine.generate(params(), stick_figure).image)
    styled = pixels(lora_engine.generate(params(LoraSpec(str(lora_files / "style.safetensors"))), stick_figure).image)
    assert not np.array_equal(plain, styled)
    after = lora_engine.generate(params(), stick_figure)
    assert np.array_equal(pixels(after.image), plain)
    restored = weights(pipe)
    assert restored.keys() == originals.keys()
    assert all(torch.equal(restored[key], originals[key]) for key in originals)  # bit for bit
    assert peft_layers(pipe) == []  # the plain modules are back


def test_weight_zero_is_exactly_the_picture_without_the_lora(lora_engine, lora_files, stick_figure):
    style = str(lora_files / "style.safetensors")
    plain = pixels(lora_engine.generate(params(), stick_figure).image)
    assert np.array_equal(pixels(lora_engine.generate(params(LoraSpec(style, 0.0)), stick_figure).image), plain)
    lora_engine.generate(params(LoraSpec(style, 1.0)), stick_figure)
    assert np.array_equal(pixels(lora_engine.generate(params(LoraSpec(style, 0.0)), stick_figure).image), plain)


def test_a_weight_change_refuses_without_reading_the_file_again(lora_engine, lora_files, stick_figure, monkeypatch):
    import sketchpad.backends.local.lora as lora_module

    reads = []
    original_load = lora_module.load_file
    monkeypatch.setattr(lora_module, "load_file", lambda path: reads.append(path) or original_load(path))
    style = str(lora_files / "style.safetensors")
    pictures = [pixels(lora_engine.generate(params(LoraSpec(style, w)), stick_figure).image) for w in (1.0, 0.5, 0, 0.8)]
    assert len(reads) == 1
    assert not np.array_equal(pictures[0], pictures[1]) and not np.array_equal(pictures[1], pictures[3])
    fresh = pixels(lora_engine.generate(params(LoraSpec(style, 0.5)), stick_figure).image)
    assert np.array_equal(fresh, pictures[1])  # the weight, not the history, decides the picture
    assert len(reads) == 1


def test_while_unchanged_the_lora_is_fused_so_its_layers_never_run(lora_engine, lora_files, stick_figure):
    lora_engine.generate(params(LoraSpec(str(lora_files / "style.safetensors"))), stick_figure)
    layers = peft_layers(lora_engine.pipe)
    assert layers and all(layer.merged for layer in layers)
    calls = []
    hooks = [
        module.register_forward_hook(lambda *args: calls.append(1))
        for layer in layers
        for module in layer.lora_A.values()
    ]
    try:
        lora_engine.generate(params(LoraSpec(str(lora_files / "style.safetensors")), seed=8), stick_figure)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []  # the step costs what a plain step costs: the LoRA is in the weights


def test_kohya_and_diffusers_layouts_of_the_same_weights_give_the_same_picture(lora_engine, lora_files, stick_figure):
    diffusers_layout = lora_engine.generate(params(LoraSpec(str(lora_files / "style.safetensors"))), stick_figure)
    kohya_layout = lora_engine.generate(params(LoraSpec(str(lora_files / "style_kohya.safetensors"))), stick_figure)
    plain = lora_engine.generate(params(), stick_figure)
    assert np.abs(pixels(diffusers_layout.image) - pixels(kohya_layout.image)).max() <= 1
    assert not np.array_equal(pixels(kohya_layout.image), pixels(plain.image))


def test_two_loras_together_and_removing_one_leaves_exactly_the_other(lora_engine, lora_files, stick_figure):
    style, detail = (LoraSpec(str(lora_files / f"{n}.safetensors"), 0.7) for n in ("style", "detail"))
    only_detail = pixels(lora_engine.generate(params(detail), stick_figure).image)
    both = pixels(lora_engine.generate(params(style, detail), stick_figure).image)
    assert not np.array_equal(both, only_detail)
    assert np.array_equal(pixels(lora_engine.generate(params(detail), stick_figure).image), only_detail)


def test_prompt_embeddings_are_made_again_when_the_fused_loras_change(lora_engine, lora_files, stick_figure, monkeypatch):
    calls = []
    encoder = lora_engine.pipe.text_encoder
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    lora_engine.generate(params(), stick_figure)
    lora_engine.generate(params(seed=3), stick_figure)
    assert len(calls) == 2  # prompt and negative prompt, cached
    lora_engine.generate(params(LoraSpec(str(lora_files / "style.safetensors"))), stick_figure)
    assert len(calls) == 4  # a LoRA's text-encoder part changes the embeddings, so they are not reused


def test_the_text_encoder_part_applies_with_its_weight_and_without_a_notice(tiny_model_dir, lora_files, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source

    notices = []
    engine = Img2ImgEngine(load_pipeline(resolve_model_source(str(tiny_model_dir)), pick_device("cpu")), "t", notices.append)
    text = lambda: {k: v for k, v in weights(engine.pipe).items() if k.startswith("text_encoder.")}  # noqa: E731
    before = text()
    engine.generate(params(LoraSpec(str(lora_files / "style.safetensors"))), stick_figure)
    at_one = text()
    engine.generate(params(LoraSpec(str(lora_files / "style.safetensors"), 0.5)), stick_figure)
    at_half = text()
    assert notices == []  # by peft where transformers can take it, merged by hand where not
    changed = [key for key in before if not torch.equal(at_one[key], before[key])]
    assert any("q_proj" in key for key in changed) and any("v_proj" in key for key in changed)
    assert all(not torch.equal(at_half[key], at_one[key]) for key in changed)
    assert all(layer.merged for layer in engine.pipe.text_encoder.modules() if hasattr(layer, "merged"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickled_loras_are_refused_before_anything_is_opened(lora_engine, tmp_path, stick_figure, suffix):
    pickled = tmp_path / f"style{suffix}"
    pickled.write_bytes(b"\x80\x04 not really")
    with pytest.raises(SketchpadError, match="pickled"):
        lora_engine.generate(params(LoraSpec(str(pickled))), stick_figure)
    assert peft_layers(lora_engine.pipe) == []


@pytest.mark.parametrize(
    "source,message",
    [
        ("missing.safetensors", "not found"),
        ("someone/not-cached-lora", "not in the Hugging Face cache"),
        ("someone/repo/file.safetensors", "not in the Hugging Face cache"),
        ("not_a_lora.safetensors", "not a LoRA"),
    ],
)
def test_bad_loras_are_one_line_and_leave_the_loaded_ones_as_they_were(
    lora_engine, lora_files, stick_figure, source, message
):
    style = LoraSpec(str(lora_files / "style.safetensors"))
    before = pixels(lora_engine.generate(params(style), stick_figure).image)
    bad = str(lora_files / source) if source.endswith(".safetensors") and "/" not in source else source
    with pytest.raises(SketchpadError, match=message) as raised:
        lora_engine.generate(params(style, LoraSpec(bad)), stick_figure)
    assert "\n" not in str(raised.value)
    assert np.array_equal(pixels(lora_engine.generate(params(style, seed=7), stick_figure).image), before)


def test_results_carry_automatic1111_hashes_and_a_saved_png_restores_the_loras(lora_engine, lora_files, stick_figure, tmp_path):
    path = lora_files / "style.safetensors"
    result = lora_engine.generate(params(LoraSpec(str(path), 0.6)), stick_figure)
    raw = path.read_bytes()
    header = int.from_bytes(raw[:8], "little")
    expected_hash = hashlib.sha256(raw[8 + header:]).hexdigest()[:12]  # AUTOMATIC1111's LoRA hash
    assert result.params.loras[0].short_hash == expected_hash
    info = ResultInfo(result.params, 64, 64, "tiny", result.sampler)
    saved = save_result(result.image, info, tmp_path / "out.png")
    text = read_png_text(saved)
    assert text.splitlines()[0] == "a knight <lora:style:0.6>"
    assert f'Lora hashes: "style: {expected_hash}"' in text
    restored = read_png_parameters(saved).params
    assert restored.prompt == "a knight" and restored.loras == result.params.loras
    assert restored.loras[0].short_hash == expected_hash
    again = lora_engine.generate(restored, stick_figure)
    assert np.array_equal(pixels(again.image), pixels(result.image))


def read_png_text(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.info["parameters"]


def test_automatic1111_lora_tags_are_read_from_the_prompt():
    text = (
        "a cat <lora:add_detail:0.6>, masterpiece <lora:lcm-lora-sdv1-5:1>\n"
        "Steps: 4, Sampler: LCM, CFG scale: 1.5, Seed: 1, Size: 512x512, Model: v15, "
        'Lora hashes: "add_detail: 7c6bad76eb54, lcm-lora-sdv1-5: 8a1b2c3d4e5f"'
    )
    info = parse_parameters(text)
    assert info.params.prompt == "a cat, masterpiece"
    assert [(lora.source, lora.weight, lora.short_hash) for lora in info.params.loras] == [
        ("add_detail", 0.6, "7c6bad76eb54"), ("lcm-lora-sdv1-5", 1.0, "8a1b2c3d4e5f")
    ]


@pytest.mark.parametrize(
    "prompt", ["a knight", "", "ends with a space ", "two\nlines", '"quoted"', "Negative prompt: inside"]
)
def test_lora_metadata_round_trips_whatever_the_prompt(prompt):
    from sketchpad.core.storage import format_parameters

    p = GenerationParams(
        prompt, steps=4, seed=3, scheduler="lcm", preset="lcm",
        loras=(LoraSpec("latent-consistency/lcm-lora-sdv1-5", 1.0, "0123456789ab"), LoraSpec("/x/my, style.safetensors", -0.25)),
    )
    back = parse_parameters(format_parameters(ResultInfo(p, 64, 64, "m", "lcm"))).params
    assert back == p and [lora.short_hash for lora in back.loras] == ["0123456789ab", None]
