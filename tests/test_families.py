"""SD 2.x and SDXL on the local engine: the semantics SD 1.5 has (tests/test_engine.py), on tiny
random-weight models of each family written on the fly and loaded through the app's own loading code.

Denoise 1 is diffusers' text-to-image pipeline of the family, bit for bit; denoise 0 is the sketch;
one preview per step in the family's colours; a stop leaves mid-step; SDXL's size conditioning is
what diffusers' img2img pipeline computes."""

import numpy as np
import pytest
import torch
from PIL import Image

from sketchpad.core.families import SD2, SD15, SDXL
from sketchpad.core.params import GenerationParams
from sketchpad.core.sources import resolve_model_source

FAMILIES = ("sd2", "sdxl")
REFERENCE = {"sd2": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
SAFETY_OFF = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def params(**changes):
    base = dict(prompt="a knight on a horse", negative_prompt="blurry", steps=3, seed=1234, scheduler="euler")
    return GenerationParams(**{**base, **changes})


@pytest.fixture(scope="module")
def engines(tiny_family_dirs):
    """One engine per family over its own pipeline (loaded by load_pipeline, as the app does)."""
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline

    made = {}

    def make(family):
        if family not in made:
            folder = tiny_family_dirs(family)
            pipe = load_pipeline(resolve_model_source(str(folder)), torch.device("cpu"))
            made[family] = Img2ImgEngine(pipe, f"tiny-{family}")
        return made[family]

    return make


def text_to_image(folder, family, p, size=(64, 64)):
    import diffusers

    from sketchpad.backends.local.samplers import make_scheduler

    reference = getattr(diffusers, REFERENCE[family]).from_pretrained(
        folder, local_files_only=True, **({} if family == "sdxl" else SAFETY_OFF))
    reference.set_progress_bar_config(disable=True)
    if p.scheduler is not None:
        reference.scheduler = make_scheduler(p.scheduler, reference.scheduler.config)
    return reference(p.prompt, negative_prompt=p.negative_prompt, num_inference_steps=p.steps, guidance_scale=p.cfg,
                     width=size[0], height=size[1], generator=torch.Generator("cpu").manual_seed(p.seed)).images[0]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scheduler", [None, "euler_a", "dpmpp_2m_karras", "lcm", "tcd"])
def test_full_denoise_equals_the_familys_diffusers_text_to_image(engines, tiny_family_dirs, make_sketch, family,
                                                                   scheduler):
    p = params(strength=1.0, scheduler=scheduler)
    expected = pixels(text_to_image(tiny_family_dirs(family), family, p))
    for sketch in (make_sketch(), Image.new("RGB", (64, 64), "black")):
        assert np.array_equal(pixels(engines(family).generate(p, sketch).image), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_start_at_step_zero_is_text_to_image_and_at_the_end_is_the_sketch(engines, tiny_family_dirs, stick_figure,
                                                                          family):
    engine = engines(family)
    p = params(strength=None, start_at_step=0, scheduler="dpmpp_2m")
    expected = pixels(text_to_image(tiny_family_dirs(family), family, p))
    assert np.array_equal(pixels(engine.generate(p, stick_figure).image), expected)
    calls = []
    hook = engine.pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        for unchanged in (params(strength=0.0), params(strength=None, start_at_step=3)):
            result = engine.generate(unchanged, stick_figure)
            assert np.array_equal(pixels(result.image), pixels(stick_figure)) and result.steps_run == 0
    finally:
        hook.remove()
    assert calls == []


@pytest.mark.parametrize("family", FAMILIES)
def test_a_partial_denoise_runs_exactly_its_steps_with_a_preview_each(engines, make_sketch, family):
    previews = []
    result = engines(family).generate(params(strength=0.3, steps=4), make_sketch(96, 64), on_step=previews.append)
    assert result.steps_run == 4 and [p.step for p in previews] == [1, 2, 3, 4]
    assert all(p.total == 4 and p.image.shape == (8, 12, 3) for p in previews)
    assert result.image.size == (96, 64)


def test_previews_are_drawn_in_each_familys_latent_colours(engines):
    from sketchpad.backends.local.preview import latent2rgb

    grey = torch.zeros(1, 4, 2, 2)
    assert (latent2rgb(grey) == 128).all()  # SD 1.5's factors have no bias
    xl = latent2rgb(grey, SDXL.latent_rgb_factors, SDXL.latent_rgb_bias)
    assert xl[0, 0].tolist() == [141, 125, 127]  # (bias + 1) / 2: ComfyUI's SDXL bias
    assert engines("sdxl")._previewer("latent2rgb")(grey)[0, 0].tolist() == [141, 125, 127]
    assert engines("sd2")._previewer("latent2rgb")(grey)[0, 0].tolist() == [128, 128, 128]


def test_sdxl_drafts_and_previews_use_taesdxl(engines, make_sketch, monkeypatch):
    from sketchpad.backends.local import taesd

    engine = engines("sdxl")
    tried = []
    original = taesd.taesd_candidates
    monkeypatch.setattr(taesd, "taesd_candidates", lambda pipe, family: tried.extend(original(pipe, family)) or tried)
    previews = []
    engine.generate(params(preview_method="taesd", draft=True), make_sketch(), on_step=previews.append)
    assert tried[-1] == "madebyollin/taesdxl" and tried[0].endswith("/taesdxl")  # beside the model, then the Hub
    assert engine._taesd_model is not None and len(previews) == 3 and previews[0].image.shape == (64, 64, 3)


def test_sdxls_size_conditioning_is_what_diffusers_img2img_computes(engines, make_sketch):
    engine = engines("sdxl")
    seen = []
    hook = engine.pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["added_cond_kwargs"]), with_kwargs=True)
    try:
        engine.generate(params(strength=0.5), make_sketch(96, 64))
    finally:
        hook.remove()
    size = (64, 96)  # height, width
    expected, negative = engine.pipe._get_add_time_ids(
        size, (0, 0), size, 6.0, 2.5, size, (0, 0), size, torch.float32,
        text_encoder_projection_dim=engine.pipe.text_encoder_2.config.projection_dim)
    assert len(seen) == 3
    assert torch.equal(seen[0]["time_ids"], torch.cat([negative, expected]))
    assert seen[0]["text_embeds"].shape == (2, engine.pipe.text_encoder_2.config.projection_dim)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_stop_leaves_in_the_middle_of_a_step_without_a_decode(engines, stick_figure, family):
    engine = engines(family)
    blocks = []
    hook = engine.pipe.unet.register_forward_pre_hook(lambda module, args: blocks.append(1))
    calls = []
    try:
        def stop():
            calls.append(1)
            return len(calls) > 3  # a few block checks into the first step

        assert engine.generate(params(strength=0.6), stick_figure, should_stop=stop) is None
    finally:
        hook.remove()
    assert len(blocks) == 1  # the first UNet call began and was left


@pytest.mark.parametrize("family, expected", [("sd15", SD15), ("sd2", SD2), ("sdxl", SDXL)])
def test_each_family_is_recognised_from_its_folder_and_its_single_file(tiny_family_dirs, tiny_model_dir, tmp_path,
                                                                         family, expected):
    from ldm_checkpoint import write_single_file_checkpoint

    from sketchpad.core.families import detect_checkpoint, detect_folder, native_size

    folder = tiny_model_dir if family == "sd15" else tiny_family_dirs(family)
    assert detect_folder(folder).family is expected
    checkpoint = write_single_file_checkpoint(folder, tmp_path / f"{family}.safetensors")
    kind = detect_checkpoint(checkpoint)
    assert kind.family is expected
    assert kind.prediction == ("v_prediction" if family == "sd2" else None)  # the tiny SD 2.x is v-prediction
    assert native_size(str(checkpoint)) == {"sd15": 512, "sd2": 768, "sdxl": 1024}[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_single_file_of_each_family_loads_offline_with_the_folders_weights(engines, tiny_family_dirs, tmp_path,
                                                                             monkeypatch, family):
    from ldm_checkpoint import write_single_file_checkpoint

    from sketchpad.backends.local.models import load_pipeline

    folder = tiny_family_dirs(family)
    checkpoint = write_single_file_checkpoint(folder, tmp_path / "mine.safetensors")
    monkeypatch.setenv("SKETCHPAD_CHECKPOINT_CONFIG", str(folder))
    pipe = load_pipeline(resolve_model_source(str(checkpoint)), torch.device("cpu"))
    original = engines(family).pipe
    assert type(pipe) is type(original)
    for part in ("unet", "vae", "text_encoder") + (("text_encoder_2",) if family == "sdxl" else ()):
        loaded, expected = getattr(pipe, part).state_dict(), getattr(original, part).state_dict()
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), part
    assert pipe.scheduler.config.prediction_type == original.scheduler.config.prediction_type


def test_a_single_file_says_v_prediction_and_the_scheduler_follows(tiny_family_dirs, tmp_path, monkeypatch):
    from ldm_checkpoint import write_single_file_checkpoint

    from sketchpad.backends.local.models import load_pipeline
    from sketchpad.tiny_model import write_tiny_model

    folder = write_tiny_model(tmp_path / "sd2-eps", family="sd2", prediction="epsilon")
    monkeypatch.setenv("SKETCHPAD_CHECKPOINT_CONFIG", str(folder))  # configs of an epsilon model...
    checkpoint = write_single_file_checkpoint(tiny_family_dirs("sd2"), tmp_path / "v.safetensors")  # ...a v file
    pipe = load_pipeline(resolve_model_source(str(checkpoint)), torch.device("cpu"))
    assert pipe.scheduler.config.prediction_type == "v_prediction"


def test_a_single_file_with_another_familys_configuration_is_one_line(tiny_family_dirs, tiny_model_dir, tmp_path,
                                                                       monkeypatch):
    from ldm_checkpoint import write_single_file_checkpoint

    from sketchpad.backends.local.models import load_pipeline
    from sketchpad.core.errors import FailureKind, SketchpadError

    checkpoint = write_single_file_checkpoint(tiny_family_dirs("sdxl"), tmp_path / "xl.safetensors")
    monkeypatch.setenv("SKETCHPAD_CHECKPOINT_CONFIG", str(tiny_model_dir))
    with pytest.raises(SketchpadError) as caught:
        load_pipeline(resolve_model_source(str(checkpoint)), torch.device("cpu"))
    assert str(caught.value) == (
        f"{checkpoint} is an SDXL checkpoint, but SKETCHPAD_CHECKPOINT_CONFIG ({tiny_model_dir}) is an SD 1.5 "
        "model: point it at an SDXL diffusers folder, or unset it.")
    assert caught.value.kind is FailureKind.MODEL


@pytest.mark.parametrize("family", FAMILIES)
def test_a_result_of_each_family_round_trips_through_the_saved_png(engines, stick_figure, tmp_path, family):
    from sketchpad.core.storage import ResultInfo, read_png_parameters, save_result

    engine = engines(family)
    result = engine.generate(params(strength=0.7, cfg=5.0), stick_figure)
    saved = save_result(result.image, ResultInfo.of(result, engine.model_name), tmp_path / "out.png")
    read = read_png_parameters(saved)
    assert read.params == result.params and read.model_name == f"tiny-{family}"
