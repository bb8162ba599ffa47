"""Request validation: every bad value is refused with a message naming it."""

import math

import pytest

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import MAX_SEED, GenerationParams


@pytest.mark.parametrize(
    "changes,word",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"strength": -0.1}, "strength"),
        ({"strength": 1.01}, "strength"),
        ({"strength": math.nan}, "strength"),
        ({"strength": None, "start_at_step": 21}, "start step"),
        ({"strength": None, "start_at_step": -1}, "start step"),
        ({"strength": 0.5, "start_at_step": 3}, "not both"),
        ({"strength": None}, "strength"),
        ({"cfg": math.inf}, "CFG"),
        ({"seed": -2}, "seed"),
        ({"seed": MAX_SEED + 1}, "seed"),
        ({"scheduler": "heun"}, "scheduler"),
        ({"preview_method": "fast"}, "preview"),
    ],
)
def test_bad_values_are_refused_by_name(changes, word):
    with pytest.raises(SketchpadError, match=word):
        GenerationParams("a cat", **changes).validated()


def test_good_values_pass():
    params = GenerationParams("a cat", strength=None, start_at_step=20, steps=20, seed=0, scheduler="lcm")
    assert params.validated() is params


def test_random_seed_is_made_concrete():
    seeds = {GenerationParams("x").with_concrete_seed().seed for _ in range(5)}
    assert all(0 <= seed <= MAX_SEED for seed in seeds) and len(seeds) > 1
    assert GenerationParams("x", seed=7).with_concrete_seed().seed == 7
