"""Running a sweep's cells: each computed once, equal to a run of its own, encodings shared, cancellable,
and spread over several ComfyUI servers, one of which may die mid-sweep."""

import threading
import time

import numpy as np
import pytest

from sketchpad.backends.loading import close_backend, open_backend
from sketchpad.core.params import GenerationParams
from sketchpad.core.sweep import DENOISE, START, plan_sweep
from sketchpad.sweep_run import run_cells
from tests.comfy_standin import StandIn
from tests.test_engine import count_calls

BASE = GenerationParams("a cat", steps=4, seed=3, scheduler="euler")
MODEL = "standin-sd15.safetensors"


def pixels(image):
    return np.asarray(image.convert("RGB"))


def test_values_that_run_the_same_steps_are_computed_once(engine, monkeypatch, stick_figure):
    unet_calls = count_calls(monkeypatch, engine.pipe.unet)
    plan = plan_sweep(BASE, DENOISE, (0.75, 0.8, 0.3))  # 0.75 and 0.8: the last 4 steps of 5
    done = run_cells(plan.cells, [engine], stick_figure)
    assert [cell.values for cell in plan.cells] == [(0.75, 0.8), (0.3,)]
    assert [result.cell for result in done] == list(plan.cells)
    assert len(unet_calls) == 2 * 4  # not 3 * 4


def test_every_cell_equals_a_run_of_its_own_for_each_value_it_names(engine, tiny_pipeline, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    plan = plan_sweep(BASE, DENOISE, (0.75, 0.8, 0.3, 1.0), batch=2)
    done = run_cells(plan.cells, [engine], stick_figure)
    alone = Img2ImgEngine(tiny_pipeline, "tiny")
    for result in done:
        assert result.info.params == result.cell.params.replace(preview_method=result.info.params.preview_method)
        for value in result.cell.values:
            single = alone.generate(result.cell.params.replace(strength=value), stick_figure)
            assert np.array_equal(pixels(result.result.image), pixels(single.image))
    starts = run_cells(plan_sweep(BASE, START).cells, [engine], stick_figure)
    assert [r.result.steps_run for r in starts] == [4, 2, 0]  # the seed article's 0, 1, 9, 20 of 20 at 4 steps


def test_the_prompt_and_sketch_are_encoded_once_for_the_whole_sweep(engine, monkeypatch, stick_figure):
    text_calls = count_calls(monkeypatch, engine.pipe.text_encoder)
    encode_calls = count_calls(monkeypatch, engine.pipe.vae, "encode")
    run_cells(plan_sweep(BASE, DENOISE, (0.3, 0.5, 0.7), batch=2).cells, [engine], stick_figure)
    assert (len(text_calls), len(encode_calls)) == (2, 1)  # prompt and negative prompt; one sketch


def test_cancel_stops_the_rest_and_keeps_the_finished_cells(engine, monkeypatch, stick_figure):
    unet_calls = count_calls(monkeypatch, engine.pipe.unet)
    plan = plan_sweep(BASE, DENOISE, (0.3, 0.5, 0.7))
    steps_of_second = []

    def on_step(cell, step):
        if cell is plan.cells[1]:
            steps_of_second.append(step)

    delivered = []
    done = run_cells(plan.cells, [engine], stick_figure, on_step=on_step, on_done=delivered.append,
                     should_stop=lambda: len(steps_of_second) >= 2)  # Cancel in the second cell's third step
    assert [result.cell for result in done] == [result.cell for result in delivered] == [plan.cells[0]]
    assert len(unet_calls) == 4 + 2


# ---- several servers ---------------------------------------------------------------------------
@pytest.fixture
def two_servers(monkeypatch):
    # a dead server is given up after one quick retry: the client's backoff is tested elsewhere
    monkeypatch.setattr("sketchpad.backends.comfy.client.RECONNECT_DELAYS", (0.0, 0.05))
    with StandIn([MODEL], step_seconds=0.05) as first, StandIn([MODEL], step_seconds=0.05) as second:
        yield first, second


def open_servers(*servers):
    return [open_backend(MODEL, "auto", lambda line: None, server=server.url) for server in servers]


def single_runs(plan, sketch):
    """Each cell made alone, on a server of its own."""
    with StandIn([MODEL]) as alone:
        (backend,) = open_servers(alone)
        try:
            return {cell: pixels(backend.generate(cell.params, sketch).image) for cell in plan.cells}
        finally:
            close_backend(backend)


def test_cells_spread_over_the_servers_that_are_free(two_servers, make_sketch):
    sketch = make_sketch()
    plan = plan_sweep(BASE, DENOISE, (0.3, 0.5, 0.7, 0.9), batch=2)
    backends = open_servers(*two_servers)
    try:
        done = run_cells(plan.cells, backends, sketch)
    finally:
        for backend in backends:
            close_backend(backend)
    assert [result.cell for result in done] == list(plan.cells)
    assert all(len(server.finished) >= 2 for server in two_servers)  # both took their share
    assert {result.made_on for result in done} == {server.url for server in two_servers}
    expected = single_runs(plan, sketch)
    assert all(np.array_equal(pixels(result.result.image), expected[result.cell]) for result in done)
    assert sum(server.upload_requests for server in two_servers) == 2  # each server got the sketch once


def test_when_a_server_dies_mid_sweep_the_other_makes_its_cells(two_servers, make_sketch):
    first, second = two_servers
    sketch = make_sketch()
    plan = plan_sweep(BASE, DENOISE, (0.3, 0.5, 0.7, 0.9), batch=2)
    backends = open_servers(first, second)

    def kill_second_in_its_second_cell():
        deadline = time.monotonic() + 30
        while not (second.finished and second.running) and time.monotonic() < deadline:
            time.sleep(0.005)
        second.kill()

    killer = threading.Thread(target=kill_second_in_its_second_cell)
    killer.start()
    lost = []
    try:
        done = run_cells(plan.cells, backends, sketch, on_lost=lambda backend, error: lost.append((backend, error)))
    finally:
        killer.join()
        for backend in backends:
            close_backend(backend)
    assert [result.cell for result in done] == list(plan.cells)  # nothing lost
    assert [backend for backend, _ in lost] == [backends[1]] and lost[0][1].kind.server_gone
    assert len(first.finished) == len(plan.cells) - len([f for f in second.finished if f[1] == "success"])
    expected = single_runs(plan, sketch)
    assert all(np.array_equal(pixels(result.result.image), expected[result.cell]) for result in done)


def test_when_every_server_is_gone_the_sweep_fails_with_the_servers_own_error(two_servers, make_sketch):
    first, second = two_servers
    backends = open_servers(first, second)
    first.kill()
    second.kill()
    try:
        with pytest.raises(Exception) as caught:
            run_cells(plan_sweep(BASE, DENOISE, (0.3, 0.5)).cells, backends, make_sketch())
    finally:
        for backend in backends:
            close_backend(backend)
    assert caught.value.kind.server_gone


def test_planning_the_sheet_rerunning_and_the_runner_need_neither_torch_nor_qt():
    import subprocess
    import sys

    code = ("import sys, sketchpad.core.sweep, sketchpad.core.contact_sheet, sketchpad.core.rerun, sketchpad.sweep_run\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'PySide6')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
