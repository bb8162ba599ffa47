"""The engine on the tiny model: knob semantics, text-to-image identity, previews, cancel, caches."""

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    TCDScheduler,
)
from PIL import Image

from sketchpad.core.params import MAX_SEED, GenerationParams
from sketchpad.core.registry import SCHEDULERS


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def params(**changes) -> GenerationParams:
    base = dict(prompt="a knight on a horse", negative_prompt="blurry", steps=4, seed=1234, scheduler="euler")
    base.update(changes)
    return GenerationParams(**base)


def count_calls(monkeypatch, module, name="forward"):
    """Count calls of a submodule's method (e.g. the text encoder's forward)."""
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


# diffusers' own scheduler classes and settings for each of our names, written out here and built from
# the model's scheduler config on disk, so a wrong choice in the engine cannot also be the reference's
REFERENCE_SCHEDULERS = {
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "ddim": (DDIMScheduler, {}),
    "ddim_trailing": (DDIMScheduler, {"timestep_spacing": "trailing"}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (
        DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}
    ),
    "lcm": (LCMScheduler, {}),
    "euler_trailing": (EulerDiscreteScheduler, {"timestep_spacing": "trailing"}),
    "tcd": (TCDScheduler, {}),
}


@pytest.fixture(scope="module")
def reference_pipeline(tiny_model_dir):
    """diffusers' text-to-image pipeline, loaded from the model folder by diffusers alone."""
    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_model_dir, use_safetensors=True, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text_to_image(reference, model_dir, p: GenerationParams, size=(64, 64)):
    if p.scheduler is None:  # the model's own, as the pipeline loaded it from scheduler/
        scheduler = type(reference.scheduler).from_pretrained(model_dir, subfolder="scheduler")
    else:
        cls, settings = REFERENCE_SCHEDULERS[p.scheduler]
        scheduler = cls.from_pretrained(model_dir, subfolder="scheduler", **settings)
    reference.scheduler = scheduler
    return reference(
        p.prompt,
        negative_prompt=p.negative_prompt,
        num_inference_steps=p.steps,
        guidance_scale=p.cfg,
        width=size[0],
        height=size[1],
        generator=torch.Generator("cpu").manual_seed(p.seed),
    ).images[0]


@pytest.mark.parametrize("scheduler", [None, *SCHEDULERS])
def test_full_denoise_equals_diffusers_text_to_image_whatever_the_sketch(
    engine, reference_pipeline, tiny_model_dir, make_sketch, scheduler
):
    p = params(strength=1.0, scheduler=scheduler)
    expected = pixels(text_to_image(reference_pipeline, tiny_model_dir, p))
    for sketch in (make_sketch(), Image.new("RGB", (64, 64), "black")):
        assert np.array_equal(pixels(engine.generate(p, sketch).image), expected)


def test_start_at_step_zero_equals_text_to_image(engine, reference_pipeline, tiny_model_dir, stick_figure):
    p = params(strength=None, start_at_step=0, scheduler="dpmpp_2m")
    expected = pixels(text_to_image(reference_pipeline, tiny_model_dir, p))
    assert np.array_equal(pixels(engine.generate(p, stick_figure).image), expected)


def test_zero_denoise_returns_the_sketch_without_running_the_model(engine, monkeypatch, stick_figure):
    unet_calls = count_calls(monkeypatch, engine.pipe.unet)
    for p in (params(strength=0.0), params(strength=None, start_at_step=4)):
        result = engine.generate(p, stick_figure)
        assert np.array_equal(pixels(result.image), pixels(stick_figure))
        assert result.steps_run == 0
    assert unet_calls == []


@pytest.mark.parametrize("scheduler", ["euler", "ddim", "dpmpp_2m", "euler_a", "lcm"])
@pytest.mark.parametrize("denoise", [0.05, 0.3, 0.52, 0.99])
def test_partial_denoise_runs_exactly_steps(engine, monkeypatch, stick_figure, scheduler, denoise):
    unet_calls = count_calls(monkeypatch, engine.pipe.unet)
    previews = []
    result = engine.generate(params(strength=denoise, steps=5, scheduler=scheduler), stick_figure, previews.append)
    assert len(unet_calls) == len(previews) == result.steps_run == 5
    assert [preview.step for preview in previews] == [1, 2, 3, 4, 5]


def test_pndm_counts_its_warm_up_evaluation(engine, stick_figure):
    # PLMS (the SD1.5 default) evaluates its second timestep twice, in diffusers' text-to-image too
    for p in (params(scheduler=None, strength=1.0), params(scheduler=None, strength=0.4)):
        previews = []
        result = engine.generate(p, stick_figure, previews.append)
        assert result.sampler == "pndm"
        assert len(previews) == result.steps_run == p.steps + 1


def test_start_at_step_runs_the_remaining_steps(engine, stick_figure):
    previews = []
    result = engine.generate(params(strength=None, start_at_step=3, steps=7), stick_figure, previews.append)
    assert result.steps_run == len(previews) == 4


def test_nearby_denoise_values_give_different_pictures(engine, stick_figure):
    a = engine.generate(params(strength=0.50, steps=10), stick_figure).image
    b = engine.generate(params(strength=0.52, steps=10), stick_figure).image
    assert not np.array_equal(pixels(a), pixels(b))


def test_low_denoise_stays_closer_to_the_sketch(engine, stick_figure):
    def distance(denoise):
        image = engine.generate(params(strength=denoise, steps=6), stick_figure).image
        return np.abs(pixels(image) - pixels(stick_figure)).mean()

    assert distance(0.1) < distance(0.9)


def test_same_seed_same_picture_other_seed_other_picture(engine, stick_figure):
    first = engine.generate(params(strength=0.6, scheduler="euler_a"), stick_figure).image
    again = engine.generate(params(strength=0.6, scheduler="euler_a"), stick_figure).image
    other = engine.generate(params(strength=0.6, scheduler="euler_a", seed=99), stick_figure).image
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


def test_random_seed_is_picked_and_reported(engine, stick_figure):
    result = engine.generate(params(seed=-1, steps=1), stick_figure)
    assert 0 <= result.params.seed <= MAX_SEED
    replay = engine.generate(params(seed=result.params.seed, steps=1), stick_figure)
    assert np.array_equal(pixels(result.image), pixels(replay.image))


@pytest.mark.parametrize("method,scale", [("latent2rgb", 8), ("vae", 1), ("taesd", 1)])
def test_one_preview_per_step_in_each_method(engine, make_sketch, method, scale):
    previews = []
    engine.generate(params(steps=3, preview_method=method), make_sketch(64, 48), previews.append)
    assert [(p.step, p.total) for p in previews] == [(1, 3), (2, 3), (3, 3)]
    for preview in previews:
        assert preview.image.dtype == np.uint8 and preview.image.shape == (48 // scale, 64 // scale, 3)
    assert engine.notices == []


def test_previews_show_the_predicted_final_image(engine, stick_figure):
    # Euler ends at sigma 0, so its last x0 guess is the result: the vae preview equals the picture
    previews = []
    result = engine.generate(params(steps=3, preview_method="vae", scheduler="euler"), stick_figure, previews.append)
    assert np.abs(pixels(result.image) - previews[-1].image.astype(np.int16)).max() <= 1


def test_taesd_falls_back_to_latent2rgb_with_a_notice(engine, monkeypatch, stick_figure):
    monkeypatch.setattr("sketchpad.backends.local.taesd.taesd_candidates", lambda pipe, family: ["/nonexistent/taesd"])
    previews = []
    engine.generate(params(steps=2, preview_method="taesd"), stick_figure, previews.append)
    assert previews[0].image.shape == (8, 8, 3)
    assert len(engine.notices) == 1 and "latent2rgb" in engine.notices[0]


def test_cancel_stops_within_one_step_and_skips_the_decode(engine, monkeypatch, stick_figure):
    unet_calls = count_calls(monkeypatch, engine.pipe.unet)
    decode_calls = count_calls(monkeypatch, engine.pipe.vae, "decode")
    previews = []
    result = engine.generate(
        params(steps=10, strength=1.0), stick_figure, previews.append, should_stop=lambda: len(previews) >= 2
    )
    assert result is None
    assert len(previews) == 2 and len(unet_calls) == 2
    assert decode_calls == []


def test_denoise_and_seed_changes_reuse_prompt_and_sketch_encodings(engine, monkeypatch, make_sketch):
    text_calls = count_calls(monkeypatch, engine.pipe.text_encoder)
    encode_calls = count_calls(monkeypatch, engine.pipe.vae, "encode")
    sketch = make_sketch()
    engine.generate(params(strength=0.5), sketch)
    first = (len(text_calls), len(encode_calls))
    assert first == (2, 1)  # prompt and negative prompt; one sketch
    engine.generate(params(strength=0.7), sketch)
    engine.generate(params(strength=0.7, seed=5), sketch.copy())
    assert (len(text_calls), len(encode_calls)) == first
    engine.generate(params(strength=0.7, prompt="a castle"), sketch)
    assert (len(text_calls), len(encode_calls)) == (4, 1)
    engine.generate(params(strength=0.7), make_sketch(color="red"))
    assert (len(text_calls), len(encode_calls)) == (4, 2)


def test_cached_run_equals_uncached_run(tiny_pipeline, engine, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    engine.generate(params(strength=0.3), stick_figure)
    cached = engine.generate(params(strength=0.6), stick_figure).image
    fresh = Img2ImgEngine(tiny_pipeline).generate(params(strength=0.6), stick_figure).image
    assert np.array_equal(pixels(cached), pixels(fresh))


def test_odd_sizes_become_the_nearest_multiple_of_eight(engine, make_sketch):
    result = engine.generate(params(steps=1), make_sketch(70, 61))
    assert result.image.size == (72, 64)
    assert engine.generate(params(strength=0.0), make_sketch(70, 61)).image.size == (72, 64)


def test_cancel_leaves_in_the_middle_of_a_step(engine, monkeypatch, stick_figure):
    finished_steps = count_calls(monkeypatch, engine.pipe.unet)  # counts forwards entered
    decode_calls = count_calls(monkeypatch, engine.pipe.vae, "decode")
    checks = []

    def stop_during_the_first_step():
        checks.append(1)
        return len(checks) > 3  # a few blocks into the first UNet pass

    previews = []
    result = engine.generate(params(steps=10, strength=1.0), stick_figure, previews.append, stop_during_the_first_step)
    assert result is None and previews == [] and decode_calls == []
    assert len(finished_steps) == 1  # entered once, abandoned inside
    again = engine.generate(params(steps=2), stick_figure)  # the engine is still usable afterwards
    assert again is not None and again.steps_run == 2
