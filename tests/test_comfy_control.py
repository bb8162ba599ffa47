""""Keep my lines" on a ComfyUI server (the stand-in, checked against a real server's ControlNet job):
ControlNetLoader + ControlNetApplyAdvanced fed with the inverted sketch, uploaded once by content;
strength 0, or a range that steers none of the steps that run, is exactly the graph without it; a
partial range steers the same steps as locally; a ControlNet the server lacks is one line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.backends.comfy.control_range import executed_sigmas, sigma_at
from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams
from tests.comfy_standin import StandIn

MODEL = "standin-sd15.safetensors"
SCRIBBLE = "control_v11p_sd15_scribble.safetensors"
CONTROLNETS = [SCRIBBLE, "lineart\\control_v11p_sd15_lineart.safetensors", "x.safetensors", "y.safetensors",
               "z.safetensors", "w.safetensors"]
HUB_ID = "lllyasviel/control_v11p_sd15_scribble"


@pytest.fixture
def server():
    with StandIn([MODEL], controlnets=CONTROLNETS) as running:
        yield running


def sketch(mark=0):
    image = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(image).line((4, 4 + mark, 50, 40), fill="black", width=3)
    return image


def params(**changes):
    return GenerationParams(**{**dict(prompt="a cat", strength=0.5, steps=4, seed=11), **changes})


def control_nodes(graph):
    return {n: node for n, node in graph.items() if node["class_type"].startswith("ControlNet")}


def test_the_controlnet_steers_both_prompts_with_the_inverted_sketch(server):
    backend = ComfyBackend(server.url, MODEL)
    drawing = sketch()
    result = backend.generate(params(control=ControlSpec(HUB_ID, 0.7)), drawing)
    graph = server.prompts[-1]["prompt"]
    assert graph["20"] == {"class_type": "ControlNetLoader", "inputs": {"control_net_name": SCRIBBLE}}
    apply = graph["22"]
    assert apply["class_type"] == "ControlNetApplyAdvanced"
    assert apply["inputs"] == {"positive": ["2", 0], "negative": ["3", 0], "control_net": ["20", 0], "image": ["21", 0],
                               "strength": 0.7, "start_percent": 0.0, "end_percent": 1.0}
    assert (graph["6"]["inputs"]["positive"], graph["6"]["inputs"]["negative"]) == (["22", 0], ["22", 1])
    hint_name, sketch_name = graph["21"]["inputs"]["image"], graph["4"]["inputs"]["image"]
    assert hint_name != sketch_name
    with Image.open(io.BytesIO(server.uploads[hint_name])) as hint:
        fed = np.asarray(hint.convert("RGB"))
    assert np.array_equal(fed, np.asarray(ImageOps.invert(drawing.convert("L")).convert("RGB")))  # white lines on black
    assert result.params.control == ControlSpec(HUB_ID, 0.7)  # saved with the result as locally


def test_a_dial_turn_uploads_neither_picture_again(server):
    backend = ComfyBackend(server.url, MODEL)
    control = ControlSpec(SCRIBBLE, 1.0)
    backend.generate(params(control=control), sketch())
    assert backend.uploads == 2
    backend.generate(params(control=control, strength=0.7), sketch())
    assert backend.uploads == 2 and server.upload_requests == 2


def test_strength_zero_is_exactly_the_request_without_a_controlnet(server):
    backend = ComfyBackend(server.url, MODEL)
    plain = backend.generate(params(), sketch())
    plain_graph = server.prompts[-1]["prompt"]
    steered = backend.generate(params(control=ControlSpec(SCRIBBLE, 1.0)), sketch())
    zero = backend.generate(params(control=ControlSpec(SCRIBBLE, 0.0)), sketch())
    assert server.prompts[-1]["prompt"] == plain_graph and control_nodes(plain_graph) == {}
    assert np.array_equal(np.asarray(zero.image), np.asarray(plain.image))
    assert not np.array_equal(np.asarray(steered.image), np.asarray(plain.image))


def test_a_controlnet_the_server_lacks_is_one_line_and_nothing_is_sent(server):
    backend = ComfyBackend(server.url, MODEL)
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(control=ControlSpec("lllyasviel/control_v11p_sd15_canny")), sketch())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the ComfyUI server has no ControlNet control_v11p_sd15_canny "
                              "(lllyasviel/control_v11p_sd15_canny); it has: control_v11p_sd15_scribble.safetensors")
    assert "(and 1 more)" in message
    assert server.prompts == [] and server.upload_requests == 0


def test_a_partial_range_steers_on_the_server_the_steps_it_steers_locally(server):
    backend = ComfyBackend(server.url, MODEL)
    control = ControlSpec(SCRIBBLE, 1.0, 0.2, 0.8)
    full = backend.generate(params(control=ControlSpec(SCRIBBLE, 1.0)), sketch())
    partial = backend.generate(params(control=control), sketch())
    graph = server.prompts[-1]["prompt"]
    sent = graph["22"]["inputs"]
    # 4 steps of a 8-step schedule (denoise 0.5): 0.2:0.8 steers the middle two; ComfyUI's percents count
    # the whole schedule, so 0.2 and 0.8 as they are would name other noise levels
    sigmas = executed_sigmas(graph["6"])
    upper, lower = sigma_at((1 - sent["start_percent"]) * 999), sigma_at((1 - sent["end_percent"]) * 999)
    assert [bool(lower <= s <= upper) for s in sigmas] == [control.steers(i, 4) for i in range(4)]
    assert [control.steers(i, 4) for i in range(4)] == [False, True, True, False]
    assert (sent["start_percent"], sent["end_percent"]) != (0.2, 0.8)
    assert not np.array_equal(np.asarray(partial.image), np.asarray(full.image))
    assert partial.params.control == control  # saved with the result as locally


def test_a_range_that_steers_no_step_that_runs_sends_no_controlnet(server):
    backend = ComfyBackend(server.url, MODEL)
    plain = backend.generate(params(), sketch())
    plain_graph = server.prompts[-1]["prompt"]
    control = ControlSpec(SCRIBBLE, 1.0, 0.3, 0.31)  # no step of 4 lies within 30% to 31%
    none_steered = backend.generate(params(control=control), sketch())
    assert server.prompts[-1]["prompt"] == plain_graph
    assert backend.uploads == 1  # nor is the control picture sent
    assert np.array_equal(np.asarray(none_steered.image), np.asarray(plain.image))
    assert none_steered.params.control == control
