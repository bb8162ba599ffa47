"""Sweep planning (core.sweep): which cells run, which values merge, where cells sit, how they are labelled."""

import pytest

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import MAX_SEED, GenerationParams
from sketchpad.core.picture_key import picture_key
from sketchpad.core.sweep import (DENOISE, MAX_CELLS, START, default_values, parse_sweep, parse_values, plan_sweep,
                                  steps_text)
from sketchpad.core.schedule import plan_steps

BASE = GenerationParams("a cat", steps=20, seed=1234, scheduler="euler")


def test_the_issue_examples_are_labelled_with_the_steps_they_run():
    plan = plan_sweep(BASE, DENOISE, (0.4,))
    assert plan.cells[0].label == "0.40 · runs steps 31–50 of 50"
    starts = plan_sweep(BASE, START)
    assert [cell.label for cell in starts.cells] == [
        "start 0 · runs steps 1–20 of 20 from noise", "start 1 · runs steps 2–20 of 20",
        "start 9 · runs steps 10–20 of 20", "start 20 · the sketch itself"]


def test_invokeai_252_neighbouring_strengths_that_run_the_same_steps_are_one_cell():
    plan = plan_sweep(BASE.replace(steps=50), DENOISE, (0.834, 0.843, 0.5))
    merged, other = plan.cells
    assert merged.values == (0.834, 0.843) and merged.label == "0.834, 0.843 · runs steps 10–59 of 59"
    assert other.values == (0.5,) and plan.merged == (merged,)
    assert [cell.column for cell in plan.cells] == [0, 1] and plan.columns == 2


def test_cells_merge_exactly_when_their_picture_keys_are_equal():
    values = tuple(round(0.05 * i, 2) for i in range(21))  # 0.0, 0.05, ..., 1.0 at 4 steps
    plan = plan_sweep(BASE.replace(steps=4), DENOISE, values)
    keys = {picture_key(BASE.replace(steps=4, strength=v), "", "") for v in values}
    assert len(plan.cells) == len(keys)
    assert sorted(v for cell in plan.cells for v in cell.values) == sorted(values)
    for cell in plan.cells:
        assert {plan_steps(BASE.replace(steps=4, strength=v)) for v in cell.values} == {cell.plan}
        assert cell.params.strength == cell.values[0]  # the first value is the one that runs


def test_defaults_five_denoises_and_the_seed_articles_start_steps_scaled():
    assert default_values(DENOISE, 20) == (0.2, 0.4, 0.6, 0.8, 1.0)
    assert default_values(START, 20) == (0, 1, 9, 20)
    assert default_values(START, 40) == (0, 2, 18, 40)
    assert plan_sweep(BASE, DENOISE).values == (0.2, 0.4, 0.6, 0.8, 1.0)


def test_a_batch_runs_consecutive_seeds_and_combines_with_a_sweep_as_a_grid():
    plan = plan_sweep(BASE, DENOISE, (0.3, 0.5, 0.7, 0.9), batch=3)
    assert plan.seeds == (1234, 1235, 1236) and (plan.rows, plan.columns) == (3, 4)
    assert [(cell.row, cell.column) for cell in plan.cells] == [(r, c) for r in range(3) for c in range(4)]
    cell = plan.cell_for(0.7, 1235)
    assert (cell.params.seed, cell.params.strength, cell.row, cell.column) == (1235, 0.7, 1, 2)
    assert cell.label == "seed 1235 · 0.70 · runs steps 9–28 of 28" and cell.name == "denoise-0.70_seed-1235"


def test_a_batch_alone_is_laid_out_nearly_square():
    plan = plan_sweep(BASE, batch=5)
    assert (plan.rows, plan.columns) == (2, 3) and plan.axis is None
    assert [(c.row, c.column, c.params.seed) for c in plan.cells] == [
        (0, 0, 1234), (0, 1, 1235), (0, 2, 1236), (1, 0, 1237), (1, 1, 1238)]
    assert plan.cells[0].label == "seed 1234 · runs steps 7–26 of 26" and plan.cells[0].name == "seed-1234"


def test_the_sketch_itself_is_one_cell_for_every_seed():
    plan = plan_sweep(BASE, DENOISE, (0.0, 0.5), batch=3)
    sketch = plan.cell_for(0.0, 1236)
    assert sketch.seeds == (1234, 1235, 1236) and sketch.label == "every seed · 0.00 · the sketch itself"
    assert len(plan.cells) == 4 and (sketch.row, sketch.column) == (0, 0)


def test_a_random_seed_is_drawn_once_for_every_cell_and_seeds_wrap_at_the_top():
    plan = plan_sweep(BASE.replace(seed=-1), DENOISE, (0.3, 0.6))
    assert len({cell.params.seed for cell in plan.cells}) == 1 and plan.cells[0].params.seed >= 0
    assert plan_sweep(BASE.replace(seed=MAX_SEED), batch=2).seeds == (MAX_SEED, 0)


def test_start_cells_name_their_step_with_leading_zeros_so_files_sort():
    names = [cell.name for cell in plan_sweep(BASE, START, (0, 9, 20)).cells]
    assert names == ["start-00_seed-1234", "start-09_seed-1234", "start-20_seed-1234"]


def test_steps_text_says_what_a_plan_runs():
    assert steps_text(plan_steps(BASE.replace(strength=1.0))) == "runs steps 1–20 of 20 from noise"
    assert steps_text(plan_steps(BASE.replace(strength=0.0))) == "the sketch itself"


def test_parse_sweep_reads_the_command_line_form():
    assert parse_sweep("denoise=0.3,0.5,0.7") == (DENOISE, (0.3, 0.5, 0.7))
    assert parse_sweep("start=0, 1, 9,20") == (START, (0, 1, 9, 20))
    assert parse_sweep("denoise") == (DENOISE, None)
    assert parse_values(DENOISE, " 0.2 , 1") == (0.2, 1.0)


@pytest.mark.parametrize("text, expected", [
    ("speed=1,2", "unknown sweep axis 'speed'"),
    ("denoise=", "has no values"),
    ("denoise=0.3,,0.5", "empty value"),
    ("denoise=half", "must be numbers"),
    ("start=1.5", "must be whole numbers"),
])
def test_bad_sweep_text_says_what_is_wrong(text, expected):
    with pytest.raises(SketchpadError, match=expected):
        parse_sweep(text)


@pytest.mark.parametrize("axis, values, batch, expected", [
    (DENOISE, (0.5, 1.5), 1, r"denoise sweep values must lie from 0 to 1 \(got 1.5\)"),
    (DENOISE, (float("nan"),), 1, "must lie from 0 to 1"),
    (DENOISE, (), 1, "has no values"),
    (START, (0, 21), 1, r"from 0 to steps \(20\) \(got 21\)"),
    (START, (True,), 1, "whole numbers"),
    ("speed", (1,), 1, "unknown sweep axis"),
    (None, (0.5,), 1, "need an axis"),
    (DENOISE, (0.5,), 0, "batch count must be a whole number of at least 1"),
    (DENOISE, (0.5, 0.6), MAX_CELLS, "at most 100"),
])
def test_bad_plans_are_refused_in_one_line(axis, values, batch, expected):
    with pytest.raises(SketchpadError, match=expected) as caught:
        plan_sweep(BASE, axis, values, batch)
    assert "\n" not in str(caught.value)
