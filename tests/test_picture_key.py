"""Two requests make the same picture when they run the same steps with the same everything else."""

from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec
from sketchpad.core.picture_key import picture_key

BASE = GenerationParams(prompt="a knight", steps=4, strength=0.75, seed=5, scheduler="euler")


def key(params=BASE, sketch="sketch-a", model="local|tiny"):
    return picture_key(params, sketch, model)


def test_denoise_values_that_run_the_same_steps_are_one_picture():
    # int(4 / 0.75) = int(4 / 0.8) = 5: both run the last 4 steps of a 5-step schedule
    assert key() == key(BASE.replace(strength=0.8)) == key(BASE.replace(strength=0.7))
    assert key() != key(BASE.replace(strength=0.5))  # int(4 / 0.5) = 8
    # start at step 1 of a 5-step schedule is another schedule (5 steps, 4 run) than 4 of 5
    assert key(BASE.replace(strength=None, start_at_step=1, steps=5)) != key()


def test_everything_that_decides_the_pixels_counts():
    assert key() != key(sketch="sketch-b") and key() != key(model="comfyui|http://x|other")
    for change in (dict(seed=6), dict(cfg=5.0), dict(prompt="a dragon"), dict(negative_prompt="fog"),
                   dict(scheduler="ddim"), dict(loras=(LoraSpec("ink", 0.5),)),
                   dict(control=ControlSpec(model="scribble"))):
        assert key() != key(BASE.replace(**change)), change


def test_what_does_not_change_the_picture_does_not_count():
    assert key() == key(BASE.replace(preview_method="taesd", preset="quality"))
    # text-to-image reads no sketch, unless Keep my lines steers it
    noise = BASE.replace(strength=1.0)
    assert key(noise, "sketch-a") == key(noise, "sketch-b")
    lines = noise.replace(control=ControlSpec(model="scribble"))
    assert key(lines, "sketch-a") != key(lines, "sketch-b")
    # denoise 0 is the sketch itself, whatever else is asked
    assert key(BASE.replace(strength=0.0)) == key(BASE.replace(strength=0.0, prompt="x", seed=1), model="m")


def test_a_random_seed_is_never_the_same_picture():
    assert key(BASE.replace(seed=-1)) is None


def test_a_full_picture_covers_its_draft_but_not_the_other_way_round():
    full, draft = key(), key(BASE.replace(draft=True))
    assert full != draft
    assert full.covers(draft) and full.covers(full) and draft.covers(draft)
    assert not draft.covers(full)
    assert not full.covers(key(BASE.replace(seed=6, draft=True)))


def test_with_a_mask_the_sketch_counts_even_from_pure_noise():
    from sketchpad.core.params import MaskSpec

    mask = MaskSpec(b"\xff" * 4, (2, 2))
    noise = BASE.replace(strength=1.0, mask=mask)
    assert key(noise) != key(noise, sketch="sketch-b")  # outside the mask the picture is the sketch
    assert key(noise) != key(noise.replace(mask=mask.replace(blur=0)))
    assert key(BASE.replace(strength=1.0), sketch="sketch-a") == key(BASE.replace(strength=1.0), sketch="sketch-b")
