"""A LoRA's text-encoder part on the local engine: it changes the prompt embeddings and the picture,
leaves no trace when removed, scales by alpha / rank, reads the same in both layouts and adds up.

The installed transformers asks for a newer peft than is released to load text-encoder LoRAs, so here
the part is merged by hand; where peft can take it, these tests hold for peft's merge as well."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import LoraSpec
from tests.test_lora import _random_lora, lora_engine, params, pixels  # noqa: F401  (lora_engine: a fixture)


def kohya(text_state, alpha=4.0, up_factor=1.0, prefix="lora_te_"):
    """The same text-encoder LoRA in kohya's layout under A1111's `lora_te_text_model_` names."""
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    out = {}
    for key, value in convert_state_dict_to_kohya(text_state).items():
        if key.endswith(".alpha"):
            value = torch.tensor(alpha)
        elif "lora_up" in key:
            value = value * up_factor
        out[f"{prefix}text_model_{key}"] = value.contiguous()
    return out


@pytest.fixture(scope="module")
def text_loras(tmp_path_factory, tiny_pipeline):
    from diffusers import StableDiffusionPipeline

    folder = tmp_path_factory.mktemp("text-loras")
    targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    _, words = _random_lora(tiny_pipeline, 3, ["to_q"], targets)
    StableDiffusionPipeline.save_lora_weights(folder, text_encoder_lora_layers=words, weight_name="words.safetensors")
    save_file(kohya(words), folder / "words_kohya.safetensors")
    save_file(kohya(words, prefix="lora_te1_"), folder / "words_kohya_te1.safetensors")  # SDXL trainers' name
    # alpha 2 at rank 4 halves the change, so twice the up weights give the same LoRA
    save_file(kohya(words, alpha=2.0, up_factor=2.0), folder / "words_kohya_alpha2.safetensors")
    _, more = _random_lora(tiny_pipeline, 4, ["to_q"], ["q_proj", "fc1"])
    StableDiffusionPipeline.save_lora_weights(folder, text_encoder_lora_layers=more, weight_name="more.safetensors")
    wrong = {key: torch.randn(4, 7) if "lora_down" in key else value for key, value in kohya(more).items()}
    save_file(wrong, folder / "wrong_size.safetensors")
    stray = kohya(more) | {
        "lora_te_text_projection.lora_down.weight": torch.randn(4, 32),
        "lora_te_text_projection.lora_up.weight": torch.randn(32, 4),
    } | {key.replace("lora_te_", "lora_te2_"): value.clone() for key, value in kohya(more).items()}  # SDXL's second encoder
    save_file(stray, folder / "stray_layer.safetensors")
    return folder


def embeddings(engine):
    return engine.pipe.encode_prompt("a knight", engine.device, 1, False)[0].detach().clone()


def text_weights(engine):
    return {name: tensor.detach().clone() for name, tensor in engine.pipe.text_encoder.state_dict().items()}


def spec(folder, name, weight=1.0):
    return LoraSpec(str(folder / f"{name}.safetensors"), weight)


def test_a_text_encoder_lora_changes_embeddings_and_picture_and_removing_it_restores_them_exactly(
    lora_engine, text_loras, stick_figure  # noqa: F811
):
    originals, plain_embeds = text_weights(lora_engine), embeddings(lora_engine)
    plain = pixels(lora_engine.generate(params(), stick_figure).image)
    styled = pixels(lora_engine.generate(params(spec(text_loras, "words")), stick_figure).image)
    assert not torch.allclose(embeddings(lora_engine), plain_embeds, atol=1e-4)
    assert not np.array_equal(styled, plain)
    assert np.array_equal(pixels(lora_engine.generate(params(), stick_figure).image), plain)
    restored = text_weights(lora_engine)
    assert all(torch.equal(restored[key], originals[key]) for key in originals)  # bit for bit
    assert torch.equal(embeddings(lora_engine), plain_embeds)


def test_weight_zero_is_no_lora_and_a_weight_change_refuses_exactly(lora_engine, text_loras, stick_figure):  # noqa: F811
    originals = text_weights(lora_engine)
    plain = pixels(lora_engine.generate(params(), stick_figure).image)
    half = pixels(lora_engine.generate(params(spec(text_loras, "words", 0.5)), stick_figure).image)
    half_weights = text_weights(lora_engine)
    assert np.array_equal(pixels(lora_engine.generate(params(spec(text_loras, "words", 0)), stick_figure).image), plain)
    assert all(torch.equal(text_weights(lora_engine)[key], originals[key]) for key in originals)
    lora_engine.generate(params(spec(text_loras, "words", 1.5)), stick_figure)
    again = pixels(lora_engine.generate(params(spec(text_loras, "words", 0.5)), stick_figure).image)
    assert np.array_equal(again, half) and not np.array_equal(half, plain)
    assert all(torch.equal(text_weights(lora_engine)[key], half_weights[key]) for key in originals)


@pytest.mark.parametrize("layout", ["words_kohya", "words_kohya_te1", "words_kohya_alpha2"])
def test_kohya_and_diffusers_layouts_give_the_same_embeddings_alpha_over_rank_scaling(
    lora_engine, text_loras, stick_figure, layout  # noqa: F811
):
    plain = embeddings(lora_engine)
    lora_engine.generate(params(spec(text_loras, "words")), stick_figure)
    diffusers_layout = embeddings(lora_engine)
    lora_engine.generate(params(spec(text_loras, layout)), stick_figure)
    assert torch.allclose(embeddings(lora_engine), diffusers_layout, atol=1e-5)
    assert not torch.allclose(diffusers_layout, plain, atol=1e-3)


def test_two_text_encoder_loras_add_up_and_removing_one_leaves_exactly_the_other(
    lora_engine, text_loras, stick_figure  # noqa: F811
):
    originals = text_weights(lora_engine)
    words, more = spec(text_loras, "words", 0.7), spec(text_loras, "more", -0.4)
    changes = []
    for lora in (words, more):
        lora_engine.generate(params(lora), stick_figure)
        changes.append({key: value - originals[key] for key, value in text_weights(lora_engine).items()})
    only_more = text_weights(lora_engine)
    lora_engine.generate(params(words, more), stick_figure)
    both = text_weights(lora_engine)
    for key, original in originals.items():
        assert torch.allclose(both[key], original + changes[0][key] + changes[1][key], atol=1e-6)
    assert any(not torch.equal(changes[0][key], 0 * original) for key, original in originals.items())
    lora_engine.generate(params(more), stick_figure)
    assert all(torch.equal(text_weights(lora_engine)[key], only_more[key]) for key in originals)


def test_a_text_encoder_part_that_does_not_fit_is_one_line_and_changes_nothing(lora_engine, text_loras, stick_figure):  # noqa: F811
    words = spec(text_loras, "words")
    before = pixels(lora_engine.generate(params(words), stick_figure).image)
    fused = text_weights(lora_engine)
    with pytest.raises(SketchpadError, match="does not fit this model's text encoder") as raised:
        lora_engine.generate(params(words, spec(text_loras, "wrong_size")), stick_figure)
    assert "\n" not in str(raised.value)
    assert np.array_equal(pixels(lora_engine.generate(params(words), stick_figure).image), before)
    assert all(torch.equal(text_weights(lora_engine)[key], value) for key, value in fused.items())


def test_only_layers_that_name_nothing_here_are_reported_left_out(tiny_model_dir, text_loras, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source

    notices = []
    engine = Img2ImgEngine(load_pipeline(resolve_model_source(str(tiny_model_dir)), pick_device("cpu")), "t", notices.append)
    engine.generate(params(spec(text_loras, "more")), stick_figure)
    assert notices == []
    applied = embeddings(engine)
    engine.generate(params(spec(text_loras, "stray_layer")), stick_figure)
    # text_projection and the second encoder's q_proj and fc1 in both of its layers: 5 layers, once each
    assert len(notices) == 1 and notices[0].startswith("LoRA stray_layer.safetensors: left out 5 text-encoder layer(s)")
    assert "text_encoder_2.encoder.layers.0." in notices[0]
    assert torch.allclose(embeddings(engine), applied, atol=1e-5)  # the rest of it applies


def test_the_merge_matches_peft_merging_the_same_lora_with_alpha_unlike_rank(lora_engine, text_loras, stick_figure):  # noqa: F811
    import copy

    from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    kohya_file = load_file(str(text_loras / "words_kohya_alpha2.safetensors"))
    reference = copy.deepcopy(lora_engine.pipe.text_encoder)  # peft itself merges the same LoRA here
    targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=2, target_modules=targets), reference)
    peft_state = {
        key.removeprefix("text_encoder."): value
        for key, value in lora_engine.pipe.lora_state_dict(dict(kohya_file))[0].items()
    }
    # diffusers' own route from these keys to peft's, as when transformers can take the LoRA
    peft_state = convert_state_dict_to_peft(convert_state_dict_to_diffusers(peft_state))
    peft_state = {key.removeprefix("text_model."): value for key, value in peft_state.items()}
    assert not set_peft_model_state_dict(reference, peft_state).unexpected_keys
    for module in reference.modules():
        if hasattr(module, "merge"):
            module.merge()
    lora_engine.generate(params(spec(text_loras, "words_kohya_alpha2", 1.0)), stick_figure)
    ours = text_weights(lora_engine)
    theirs = {key.replace(".base_layer", ""): value for key, value in reference.state_dict().items() if "lora_" not in key}
    assert ours.keys() == theirs.keys()
    assert all(torch.allclose(ours[key], theirs[key], atol=1e-6) for key in ours)
