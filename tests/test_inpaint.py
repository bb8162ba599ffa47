"""Inpainting on the local engine (tiny models): outside the feather the output is the input, pixel
for pixel; an all-white mask is the run without one; the latents outside the mask are the input's;
an inpainting (9-channel) UNet gets the mask and the masked picture instead."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.masks import plan_inpaint
from sketchpad.core.params import ControlSpec, GenerationParams, MaskSpec


def params(mask=None, **changes) -> GenerationParams:
    base = dict(prompt="a knight on a horse", negative_prompt="blurry", steps=3, seed=1234, scheduler="euler",
                strength=0.8)
    base.update(changes)
    return GenerationParams(mask=mask, **base)


def noise_picture(size, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def ellipse_mask(size, box) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


def untouched(mask: Image.Image, blur: int) -> np.ndarray:
    """Where the output must be the input: outside the mask blurred over the whole picture."""
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask) == 0


@pytest.fixture(scope="module")
def inpainting_engine(tmp_path_factory):
    """An engine over a tiny inpainting model (9-channel UNet), loaded by the app's own loading code."""
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source
    from sketchpad.tiny_model import write_tiny_model

    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-inpainting"), inpainting=True)
    return Img2ImgEngine(load_pipeline(resolve_model_source(str(folder)), pick_device("cpu")), "tiny-inpainting")


# sizes that are no multiples of 8, masks inside, along an edge, in a corner, across the picture
CASES = [
    ((100, 77), (30, 20, 60, 50), 4, "whole"),
    ((100, 77), (30, 20, 60, 50), 4, "masked"),
    ((100, 77), (-10, 30, 20, 60), 0, "whole"),
    ((90, 130), (70, 110, 120, 150), 8, "masked"),
    ((90, 130), (-5, 50, 95, 70), 2, "masked"),
    ((61, 203), (5, 5, 40, 190), 1, "whole"),
]


@pytest.mark.parametrize("size,box,blur,area", CASES)
def test_outside_the_mask_and_its_feather_the_output_is_the_input(engine, size, box, blur, area):
    picture = noise_picture(size)
    mask = ellipse_mask(size, box)
    result = engine.generate(params(MaskSpec.from_image(mask, blur=blur, area=area)), picture)
    out, given = np.asarray(result.image), np.asarray(picture)
    assert result.image.size == size
    keep = untouched(mask, blur)
    assert np.array_equal(out[keep], given[keep])
    assert np.abs(out[~keep].astype(int) - given[~keep]).mean() > 10  # and inside, a new picture


def test_on_an_inpainting_model_too_the_outside_is_untouched(inpainting_engine):
    picture = noise_picture((90, 130))
    mask = ellipse_mask((90, 130), (60, -10, 100, 40))
    for area in ("whole", "masked"):
        result = inpainting_engine.generate(params(MaskSpec.from_image(mask, area=area), strength=1.0), picture)
        keep = untouched(mask, 4)
        assert np.array_equal(np.asarray(result.image)[keep], np.asarray(picture)[keep])
        assert np.any(np.asarray(result.image)[~keep] != np.asarray(picture)[~keep])


@pytest.mark.parametrize("changes", [
    dict(scheduler="euler", strength=0.6),
    dict(scheduler="dpmpp_2m_karras", strength=0.3),
    dict(scheduler="pndm", strength=1.0),
    dict(scheduler="lcm", strength=None, start_at_step=1, cfg=1.0),
    dict(scheduler="euler_a", strength=0.75, preview_method="vae"),
])
def test_an_all_white_mask_over_the_whole_picture_unblurred_is_the_run_without_a_mask(engine, changes):
    picture = noise_picture((64, 48))
    white = MaskSpec.from_image(Image.new("L", (64, 48), 255), blur=0, area="whole")
    plain_steps, masked_steps = [], []
    plain = engine.generate(params(**changes), picture, on_step=plain_steps.append)
    masked = engine.generate(params(white, **changes), picture, on_step=masked_steps.append)
    assert np.array_equal(np.asarray(masked.image), np.asarray(plain.image))
    assert len(masked_steps) == len(plain_steps)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(masked_steps, plain_steps))


@pytest.mark.parametrize("changes", [dict(strength=0.0), dict(strength=None, start_at_step=3)])
def test_nothing_denoised_returns_the_picture_itself_at_its_own_size(engine, changes):
    picture = noise_picture((100, 77))
    mask = MaskSpec.from_image(ellipse_mask((100, 77), (10, 10, 50, 50)))
    result = engine.generate(params(mask, **changes), picture)
    assert result.steps_run == 0 and np.array_equal(np.asarray(result.image), np.asarray(picture))


def test_the_latents_outside_the_mask_end_as_the_inputs(engine, monkeypatch):
    picture = noise_picture((64, 64))
    spec = MaskSpec.from_image(ellipse_mask((64, 64), (8, 8, 40, 40)), blur=2, area="whole")
    decoded = []
    decode = engine._decode
    monkeypatch.setattr(engine, "_decode", lambda latents: decoded.append(latents) or decode(latents))
    engine.generate(params(spec, scheduler="dpmpp_2m"), picture)
    redo = torch.from_numpy(plan_inpaint(spec).latent_mask())
    expected = engine._sketch_latents(plan_inpaint(spec).work_picture(picture))
    final = decoded[0]
    assert torch.equal(final[:, :, ~redo], expected[:, :, ~redo])
    assert (final[:, :, redo] - expected[:, :, redo]).abs().mean() > 0.1


def test_the_outside_latents_follow_the_inputs_noised_to_each_steps_level(engine, monkeypatch):
    """What the UNet sees outside the mask at every step: the input's latents noised as the scheduler
    would noise them to that step (PNDM's alpha schedule: scale_model_input is the identity)."""
    picture = noise_picture((64, 64))
    spec = MaskSpec.from_image(ellipse_mask((64, 64), (20, 20, 60, 60)), blur=0, area="whole")
    seen = []
    hook = engine.pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0][:1].clone()))
    try:
        engine.generate(params(spec, scheduler="ddim", strength=0.9, cfg=1.0), picture)
    finally:
        hook.remove()
    scheduler = engine._scheduler("ddim")
    generator = torch.Generator("cpu").manual_seed(1234)
    noise = torch.randn((1, 4, 8, 8), generator=generator)
    redo = torch.from_numpy(plan_inpaint(spec).latent_mask())
    clean = engine._sketch_latents(picture)
    for index, t in enumerate(scheduler.timesteps[1:], start=1):
        expected = scheduler.add_noise(clean, noise, t.reshape(1))
        assert torch.allclose(seen[index][:, :, ~redo], expected[:, :, ~redo], atol=1e-6)


def test_previews_show_the_whole_picture_with_the_masked_part_forming(engine):
    picture = noise_picture((300, 200))
    mask = ellipse_mask((300, 200), (100, 60, 140, 100))
    spec = MaskSpec.from_image(mask, area="masked")
    steps = []
    engine.generate(params(spec, preview_method="vae"), picture, on_step=steps.append)
    keep = untouched(mask, 4)
    assert [s.step for s in steps] == [1, 2, 3]
    for step in steps:
        assert step.image.shape == (200, 300, 3)  # the crop is worked on at 512 px: shown at the picture's size
        assert np.array_equal(step.image[keep], np.asarray(picture)[keep])
    small = []
    engine.generate(params(spec, preview_method="latent2rgb"), picture, on_step=small.append)
    scale = (512 // 8) / plan_inpaint(spec).box_size[0]
    assert small[0].image.shape == (round(200 * scale), round(300 * scale), 3)


def test_a_small_fix_on_a_large_picture_runs_at_native_size(engine, monkeypatch):
    picture = noise_picture((1000, 700))
    mask = Image.new("L", (1000, 700), 0)
    mask.paste(255, (600, 300, 650, 350))
    sizes = []
    encode = engine._encode
    monkeypatch.setattr(engine, "_encode", lambda pixels: sizes.append(tuple(pixels.shape[2:])) or encode(pixels))
    result = engine.generate(params(MaskSpec.from_image(mask)), picture)
    assert sizes == [(512, 512)] and result.image.size == (1000, 700)
    left, top, right, bottom = plan_inpaint(MaskSpec.from_image(mask)).box
    outside = np.ones((700, 1000), bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(np.asarray(result.image)[outside], np.asarray(picture)[outside])


def test_a_mask_of_another_size_is_a_one_line_error(engine):
    mask = MaskSpec.from_image(Image.new("L", (64, 64), 255))
    with pytest.raises(SketchpadError, match="64x64 pixels but the picture is 64x48") as caught:
        engine.generate(params(mask), noise_picture((64, 48)))
    assert caught.value.kind is FailureKind.BAD_INPUT


def test_a_draft_refined_reuses_its_latents_and_pastes_the_full_decode(engine):
    picture = noise_picture((100, 77))
    mask = ellipse_mask((100, 77), (10, 10, 50, 50))
    draft = engine.generate(params(MaskSpec.from_image(mask), draft=True), picture)
    refined = engine.refine(draft.params, picture)
    assert refined.steps_run == 0 and refined.image.size == (100, 77)
    keep = untouched(mask, 4)
    assert np.array_equal(np.asarray(refined.image)[keep], np.asarray(picture)[keep])
    assert np.array_equal(np.asarray(refined.image), np.asarray(engine.generate(params(MaskSpec.from_image(mask)),
                                                                                picture).image))


def test_a_stale_masked_run_leaves_at_once(engine):
    calls = []
    spec = MaskSpec.from_image(ellipse_mask((64, 64), (8, 8, 40, 40)))
    result = engine.generate(params(spec), noise_picture((64, 64)), on_step=calls.append,
                             should_stop=lambda: len(calls) >= 1)
    assert result is None and len(calls) == 1


def test_keep_my_lines_sees_the_part_worked_on(engine, tmp_path, monkeypatch):
    from diffusers import ControlNetModel

    ControlNetModel.from_unet(engine.pipe.unet).save_pretrained(tmp_path / "scribble")
    shown = []
    control_image = engine.controlnets.control_image
    monkeypatch.setattr(engine.controlnets, "control_image",
                        lambda sketch: shown.append(sketch.size) or control_image(sketch))
    picture = noise_picture((300, 200))
    mask = ellipse_mask((300, 200), (100, 60, 140, 100))
    control = ControlSpec(str(tmp_path / "scribble"))
    result = engine.generate(params(MaskSpec.from_image(mask), control=control), picture)
    assert shown == [(512, 512)]
    keep = untouched(mask, 4)
    assert np.array_equal(np.asarray(result.image)[keep], np.asarray(picture)[keep])


# ---- an inpainting checkpoint ------------------------------------------------------------------
def unet_inputs(engine, run):
    seen = []
    hook = engine.pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        run()
    finally:
        hook.remove()
    return seen


def test_an_inpainting_unet_sees_the_mask_and_the_masked_pictures_latents(inpainting_engine):
    engine = inpainting_engine
    picture = noise_picture((64, 64))
    spec = MaskSpec.from_image(ellipse_mask((64, 64), (8, 8, 40, 40)), blur=2, area="whole")
    seen = unet_inputs(engine, lambda: engine.generate(params(spec), picture))
    plan = plan_inpaint(spec)
    redo = torch.from_numpy(plan.latent_mask()).float()
    pixels = engine._pixels(plan.work_picture(picture)) * torch.from_numpy(~plan.work_redo())
    masked = engine._encode(pixels)
    assert len(seen) == 3
    for model_input in seen:
        assert model_input.shape == (2, 9, 8, 8)  # classifier-free guidance: two rows, each conditioned
        assert torch.equal(model_input[:, 4:5], redo.expand(2, 1, 8, 8))
        assert torch.equal(model_input[:, 5:], masked.expand(2, 4, 8, 8))


def test_an_inpainting_unet_without_a_mask_redoes_everything_from_a_blank_picture(inpainting_engine):
    engine = inpainting_engine
    seen = unet_inputs(engine, lambda: engine.generate(params(cfg=1.0), noise_picture((64, 48))))
    other = unet_inputs(engine, lambda: engine.generate(params(cfg=1.0), noise_picture((64, 48), 5)))
    with torch.no_grad():
        blank = engine._encode(torch.zeros_like(engine._pixels(noise_picture((64, 48)))))
    assert len(seen) == 3 and all(model_input.shape == (1, 9, 6, 8) for model_input in seen)
    assert torch.equal(seen[0][:, 4], torch.ones((1, 6, 8))) and torch.equal(seen[0][:, 5:], blank)
    assert torch.equal(other[0][:, 4:], seen[0][:, 4:])  # whatever the sketch: nothing of it is shown


def test_an_inpainting_models_masked_latents_are_encoded_once_for_a_turning_dial(inpainting_engine, monkeypatch):
    engine = inpainting_engine
    picture = noise_picture((64, 64), 7)
    spec = MaskSpec.from_image(ellipse_mask((64, 64), (8, 8, 40, 40)), area="whole")
    encoded = []
    encode = engine._encode
    monkeypatch.setattr(engine, "_encode", lambda pixels: encoded.append(1) or encode(pixels))
    for strength in (0.5, 0.6, 0.7):
        engine.generate(params(spec, strength=strength), picture)
    assert len(encoded) == 2  # the picture and the masked picture, once each
