"""The ControlNet range on a ComfyUI server steers the same executed steps as the local engine.

control_masks.json is ComfyUI's own verdict (record_control_masks.py ran its KSampler nodes, sampler
functions, percent_to_sigma and ControlNet.get_control) on the graphs Sketchpad builds for 192
requests x 8 ranges. These tests need no server: they hold our rule and our graphs to that verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sketchpad.backends.comfy.control_range import executed_sigmas, timestep_of
from sketchpad.backends.comfy.workflow import COMFY_SAMPLERS, ServerControl, build_graph
from sketchpad.core.params import ControlSpec, GenerationParams
from sketchpad.core.schedule import plan_steps

RECORDING = json.loads((Path(__file__).parent / "comfy_recordings" / "control_masks.json").read_text())
REQUESTS = RECORDING["requests"]


def local_mask(start: float, end: float, total: int) -> str:
    """The executed steps the local engine's ControlNet steers, as the recording writes them."""
    spec = ControlSpec("control.safetensors", 1.0, start, end)
    return "".join("1" if spec.steers(index, total) else "0" for index in range(total))


def rebuilt(request: dict, start: float, end: float) -> dict:
    """Our graph for a recorded request, built today."""
    how = {"strength": request["strength"]} if "start_at_step" not in request else {
        "strength": None, "start_at_step": request["start_at_step"]}
    spec = ControlSpec("control.safetensors", 1.0, start, end)
    params = GenerationParams("", steps=request["steps"], scheduler=request["scheduler"], seed=1, control=spec, **how)
    return build_graph(params, plan_steps(params), "model.safetensors", COMFY_SAMPLERS[request["scheduler"]], (16, 16),
                       "sketch.png", control=ServerControl("control.safetensors", lambda: "hint.png")).nodes


def test_the_recording_is_from_the_pinned_comfyui_and_covers_what_matters():
    assert RECORDING["comfyui_commit"].startswith("a125cd84b054")
    assert {r["scheduler"] for r in REQUESTS} == set(COMFY_SAMPLERS)
    assert {r["sampler_node"]["class_type"] for r in REQUESTS} == {"KSampler", "KSamplerAdvanced"}
    masks = [c["steered"] for r in REQUESTS for c in r["ranges"]]
    assert sum("0" in m and "1" in m for m in masks) > 500  # many ranges steer only some steps
    assert sum(set(m) == {"0"} for m in masks) > 100  # and some steer none: sent without a ControlNet


def test_comfyui_steers_exactly_the_steps_the_local_engine_steers():
    wrong = [(r["scheduler"], r["steps"], r.get("strength"), r.get("start_at_step"), c["range"], c["steered"])
             for r in REQUESTS for c in r["ranges"] if c["steered"] != local_mask(*c["range"], len(r["sigmas"]))]
    assert wrong == []


def test_sending_our_fractions_as_they_are_would_steer_other_steps():
    """Why the mapping exists (and that the test above can fail): ComfyUI given start_percent = start
    and end_percent = end disagrees with the local engine on almost half the recorded cases (734 of
    1536 when recorded, 679 of them with a denoise below 1 or a start step)."""
    cases = [(r, c) for r in REQUESTS for c in r["ranges"]]
    naive = [(r, c) for r, c in cases if c["steered_if_sent_as_is"] != local_mask(*c["range"], len(r["sigmas"]))]
    assert len(naive) > len(cases) / 3
    assert sum(r.get("strength") != 1.0 for r, _ in naive) > len(naive) / 2


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r['scheduler']}-{r['steps']}-"
                         f"{r.get('start_at_step', r.get('strength'))}")
def test_our_graph_still_sends_the_recorded_sampler_node_and_percents(request_):
    for case in request_["ranges"]:
        graph = rebuilt(request_, *case["range"])
        node = graph["6"]
        assert node["class_type"] == request_["sampler_node"]["class_type"]
        assert {k: v for k, v in node["inputs"].items() if not isinstance(v, list)} == request_["sampler_node"]["inputs"]
        sent = graph.get("22")
        if case["percents"] is None:
            assert sent is None and "20" not in graph and "21" not in graph
        else:
            assert [sent["inputs"]["start_percent"], sent["inputs"]["end_percent"]] == pytest.approx(
                case["percents"], abs=1e-12)


def test_we_know_the_sigma_every_server_step_runs_at():
    for request in REQUESTS:
        ours = executed_sigmas(request["sampler_node"])
        assert len(ours) == len(request["sigmas"]), request["sampler_node"]
        assert ours == pytest.approx(request["sigmas"], rel=2e-6)


def test_every_percent_sent_lies_well_between_two_steps():
    """Float rounding on the server cannot flip a step: each boundary sits at least 0.03 timesteps
    from every executed step (the closest steps, a long Karras tail, are 0.07 apart)."""
    closest = np.inf
    for request in REQUESTS:
        times = timestep_of(request["sigmas"])
        for case in request["ranges"]:
            for percent in case["percents"] or ():
                if 0 < percent < 1:
                    closest = min(closest, float(np.min(np.abs(times - (1 - percent) * 999))))
    assert 0.03 < closest < 1


def test_ddim_uniform_can_run_one_step_more_than_asked_and_the_range_counts_those():
    """ComfyUI's ddim_uniform takes every (1000 // steps)-th timestep: 7 steps become 8."""
    (request,) = [r for r in REQUESTS if (r["scheduler"], r["steps"], r.get("strength")) == ("ddim", 7, 1.0)]
    assert len(request["sigmas"]) == 8
    half = next(c for c in request["ranges"] if c["range"] == [0.0, 0.5])
    assert half["steered"] == "11110000"
