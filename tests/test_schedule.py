"""The knob math on its own: ComfyUI KSampler (denoise) and KSamplerAdvanced (start_at_step)."""

import pytest

from sketchpad.core.params import GenerationParams
from sketchpad.core.schedule import effective_denoise, plan_denoise, plan_start_at_step, plan_steps


@pytest.mark.parametrize("steps", [1, 2, 7, 10, 20, 50])
@pytest.mark.parametrize("denoise", [0.01, 0.05, 0.1, 0.25, 0.33, 0.5, 0.52, 0.75, 0.9, 0.99, 0.999])
def test_every_partial_denoise_runs_all_steps(steps, denoise):
    plan = plan_denoise(steps, denoise)
    assert plan.run_steps == steps
    assert plan.schedule_steps == max(steps, min(int(steps / denoise), 1000))
    assert plan.first_step == plan.schedule_steps - steps
    assert not plan.from_pure_noise


def test_denoise_edges():
    assert plan_denoise(20, 0.0).run_steps == 0
    full = plan_denoise(20, 1.0)
    assert (full.schedule_steps, full.first_step, full.run_steps, full.from_pure_noise) == (20, 0, 20, True)


def test_half_denoise_builds_a_double_length_schedule():
    plan = plan_denoise(10, 0.5)
    assert (plan.schedule_steps, plan.first_step, plan.run_steps) == (20, 10, 10)
    assert effective_denoise(plan) == 0.5


def test_nearby_denoise_values_give_different_schedules():
    assert plan_denoise(10, 0.50) != plan_denoise(10, 0.52)


def test_tiny_denoise_is_capped_at_the_training_timesteps():
    plan = plan_denoise(20, 0.0001, max_schedule=1000)
    assert (plan.schedule_steps, plan.run_steps) == (1000, 20)


@pytest.mark.parametrize("steps,start", [(10, 0), (10, 3), (10, 9), (10, 10), (1, 0), (1, 1)])
def test_start_at_step_runs_the_rest(steps, start):
    plan = plan_start_at_step(steps, start)
    assert (plan.schedule_steps, plan.first_step, plan.run_steps) == (steps, start, steps - start)
    assert plan.from_pure_noise == (start == 0)


def test_plan_steps_follows_the_chosen_knob():
    assert plan_steps(GenerationParams("x", strength=None, start_at_step=4, steps=8)).run_steps == 4
    assert plan_steps(GenerationParams("x", strength=0.25, steps=8)).schedule_steps == 32
