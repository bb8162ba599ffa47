"""The knob math against worked examples, written out as literal numbers.

The examples come from the seed article on ComfyUI's image-to-image ("Stable Diffusion 1.5で学ぶ
image2image"): KSampler (Advanced) with steps 20 and start_at_step 4 samples 20 - 4 = 16 times;
plain KSampler with steps 20 samples 20 times whatever its denoise (0.8, 0.5 or 0.1); start_at_step 0
fills everything with noise (text-to-image), start_at_step 20 does nothing and returns the input;
denoise 1.0 is text-to-image and 0.0 returns the input. Plain KSampler builds its schedule for
int(steps / denoise) steps (ComfyUI's `KSampler`: new_steps = int(steps / denoise)) and runs the last
`steps` of it. Every expected value below is worked out by hand from those statements.
"""

import pytest

from sketchpad.core.params import GenerationParams
from sketchpad.core.schedule import effective_denoise, plan_denoise, plan_start_at_step, plan_steps


def shape(plan):
    return (plan.schedule_steps, plan.first_step, plan.run_steps, plan.from_pure_noise)


# (steps, start_at_step) -> (schedule length, first step index, steps run, from pure noise)
ADVANCED = {
    (20, 4): (20, 4, 16, False),  # the article: 20 - 4 = 16 samplings
    (20, 0): (20, 0, 20, True),  # "filled with noise from the start": text-to-image
    (20, 1): (20, 1, 19, False),
    (20, 9): (20, 9, 11, False),
    (20, 20): (20, 20, 0, False),  # "effectively does nothing": the input comes back
    (1, 0): (1, 0, 1, True),
    (1, 1): (1, 1, 0, False),
}


@pytest.mark.parametrize("steps,start", list(ADVANCED))
def test_start_at_step_examples(steps, start):
    assert shape(plan_start_at_step(steps, start)) == ADVANCED[(steps, start)]


# (steps, denoise) -> (schedule length, first step index, steps run, from pure noise)
KSAMPLER = {
    (20, 0.8): (25, 5, 20, False),  # the article: denoise 0.8 still samples 20 times; int(20 / 0.8) = 25
    (20, 0.5): (40, 20, 20, False),  # "0.5 ... still 20 times"
    (20, 0.1): (200, 180, 20, False),  # "... or 0.1, still 20 times"
    (20, 0.75): (26, 6, 20, False),  # int(26.67) = 26: int() floors, it does not round
    (10, 0.3): (33, 23, 10, False),  # int(33.33) = 33
    (10, 0.52): (19, 9, 10, False),  # int(19.23) = 19
    (10, 0.5): (20, 10, 10, False),
    (7, 0.99): (7, 0, 7, False),  # int(7.07) = 7: the whole schedule, but the sketch is still noised
    (20, 1.0): (20, 0, 20, True),  # text-to-image
    (20, 0.0): (20, 20, 0, False),  # the input comes back
}


@pytest.mark.parametrize("steps,denoise", list(KSAMPLER))
def test_denoise_examples(steps, denoise):
    assert shape(plan_denoise(steps, denoise)) == KSAMPLER[(steps, denoise)]


def test_the_articles_rule_of_thumb_links_the_two_knobs():
    # "steps to set ~= total steps x denoise": start_at_step 4 of 20 runs 16/20 = 0.8 of its schedule,
    # as denoise 0.8 runs 20 of 25
    assert effective_denoise(plan_start_at_step(20, 4)) == pytest.approx(0.8)
    assert effective_denoise(plan_denoise(20, 0.8)) == pytest.approx(0.8)


def test_a_schedule_is_never_longer_than_the_scheduler_allows():
    # 20 steps at d = 0.01 would need int(20 / 0.01) = 2000 steps; SD1.5 has 1000 timesteps
    assert shape(plan_denoise(20, 0.01, max_schedule=1000)) == (1000, 980, 20, False)
    assert shape(plan_denoise(20, 0.01, max_schedule=999)) == (999, 979, 20, False)  # DPM++ 2M's limit
    assert shape(plan_denoise(20, 0.02, max_schedule=1000)) == (1000, 980, 20, False)
    assert shape(plan_denoise(20, 0.05, max_schedule=1000)) == (400, 380, 20, False)  # under the cap: untouched


def test_nearby_denoise_values_give_different_schedules():
    assert shape(plan_denoise(10, 0.50)) == (20, 10, 10, False)
    assert shape(plan_denoise(10, 0.52)) == (19, 9, 10, False)


def test_plan_steps_follows_the_chosen_knob():
    assert shape(plan_steps(GenerationParams("x", strength=None, start_at_step=4, steps=8))) == (8, 4, 4, False)
    assert shape(plan_steps(GenerationParams("x", strength=0.25, steps=8))) == (32, 24, 8, False)
