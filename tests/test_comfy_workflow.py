"""The ComfyUI client's pure parts: the prompt graph, scheduler names, addresses and frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sketchpad.core.server_address import parse_server_url
from sketchpad.backends.comfy.frames import encode_image_frame, encode_metadata_frame, parse_frame
from sketchpad.backends.comfy.workflow import COMFY_SAMPLERS, ServerControl, build_graph, comfy_sampler
from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams
from sketchpad.core.schedule import plan_steps

SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "ddim", "lcm"]
SCHEDULERS = ["normal", "karras", "sgm_uniform", "ddim_uniform"]


def graph_for(**changes):
    params = GenerationParams("a cat", negative_prompt="blur", seed=7, **changes).validated()
    return build_graph(params, plan_steps(params), "model.safetensors", ("euler", "normal"), (64, 48), "sketch.png")


def classes(graph):
    return sorted(node["class_type"] for node in graph.nodes.values())


def test_denoise_goes_to_ksampler_denoise():
    graph = graph_for(strength=0.5, steps=20)
    sampler = graph.nodes[graph.sampler_node]
    assert sampler["class_type"] == "KSampler"
    assert sampler["inputs"]["denoise"] == 0.5 and sampler["inputs"]["steps"] == 20
    assert sampler["inputs"]["seed"] == 7 and sampler["inputs"]["latent_image"] == ["5", 0]
    assert graph.nodes["5"]["class_type"] == "VAEEncode" and graph.nodes["4"]["inputs"]["image"] == "sketch.png"
    assert graph.nodes["3"]["inputs"]["text"] == "blur"


def test_a_denoise_below_the_schedule_cap_says_the_plan_outright():
    # 20 / 0.01 = 2000 steps, more than the model's 1000 timesteps: our plan caps at 1000
    params = GenerationParams("a cat", strength=0.01, steps=20, seed=7).validated()
    plan = plan_steps(params)
    graph = build_graph(params, plan, "m", ("euler", "normal"), (64, 64), "s.png")
    sampler = graph.nodes[graph.sampler_node]["inputs"]
    assert graph.nodes[graph.sampler_node]["class_type"] == "KSamplerAdvanced"
    assert (sampler["steps"], sampler["start_at_step"]) == (plan.schedule_steps, plan.first_step) == (1000, 980)


def test_start_at_step_goes_to_ksampler_advanced():
    graph = graph_for(strength=None, start_at_step=6, steps=10)
    sampler = graph.nodes[graph.sampler_node]
    assert sampler["class_type"] == "KSamplerAdvanced"
    assert sampler["inputs"]["steps"] == 10 and sampler["inputs"]["start_at_step"] == 6
    assert sampler["inputs"]["end_at_step"] >= 10 and sampler["inputs"]["add_noise"] == "enable"
    assert sampler["inputs"]["return_with_leftover_noise"] == "disable" and sampler["inputs"]["noise_seed"] == 7


@pytest.mark.parametrize("knob", [dict(strength=1.0), dict(strength=None, start_at_step=0)])
def test_full_denoise_is_text_to_image_from_an_empty_latent(knob):
    graph = graph_for(**knob)
    assert "LoadImage" not in classes(graph) and "VAEEncode" not in classes(graph)
    assert graph.nodes["5"] == {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}}
    assert graph.nodes[graph.sampler_node]["inputs"]["denoise"] == 1.0


def test_only_built_in_nodes_and_the_websocket_output():
    assert classes(graph_for(strength=0.5)) == sorted([
        "CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "LoadImage", "VAEEncode", "KSampler",
        "VAEDecode", "SaveImageWebsocket"])


def test_a_plan_that_runs_nothing_needs_no_graph():
    params = GenerationParams("a cat", strength=0.0, seed=1).validated()
    with pytest.raises(ValueError):
        build_graph(params, plan_steps(params), "m", ("euler", "normal"), (64, 64), "s.png")


def test_scheduler_names_map_to_comfyui_pairs():
    assert comfy_sampler("dpmpp_2m_karras", SAMPLERS, SCHEDULERS) == ("dpmpp_2m", "karras")
    assert comfy_sampler("euler_a", SAMPLERS, SCHEDULERS) == ("euler_ancestral", "normal")
    assert set(COMFY_SAMPLERS) == {"ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"}


def test_pndm_has_no_server_counterpart():
    with pytest.raises(SketchpadError, match="pndm scheduler has no ComfyUI counterpart"):
        comfy_sampler("pndm", SAMPLERS, SCHEDULERS)


def test_a_sampler_the_server_lacks_is_a_clear_error():
    with pytest.raises(SketchpadError, match=r"cannot run the lcm scheduler .*it can run: ddim, euler"):
        comfy_sampler("lcm", ["euler", "euler_ancestral", "dpmpp_2m", "ddim"], SCHEDULERS)


def test_credentials_never_stay_in_the_address():
    address = parse_server_url("https://ann:s3cret@gpu.example:8443/comfy/")
    assert address.base == "https://gpu.example:8443/comfy" and address.websocket_base.startswith("wss://")
    assert "s3cret" not in address.base and address.headers[0][0] == "Authorization"
    assert parse_server_url("http://h:1", token="tok").headers == (("Authorization", "Bearer tok"),)
    assert parse_server_url("127.0.0.1:8188").base == "http://127.0.0.1:8188"
    assert parse_server_url("ws://h:2").base == "http://h:2"


def test_a_bad_address_is_one_line_without_the_password():
    with pytest.raises(SketchpadError) as caught:
        parse_server_url("ftp://ann:s3cret@host")
    assert "s3cret" not in str(caught.value) and "http://" in str(caught.value)


def test_frames_round_trip_both_layouts():
    legacy = parse_frame(encode_image_frame(b"JPEGDATA", is_png=False))
    assert (legacy.image, legacy.is_png, legacy.prompt_id) == (b"JPEGDATA", False, None)
    tagged = parse_frame(encode_metadata_frame(b"PNG", {"prompt_id": "p", "node_id": "8", "image_type": "image/png"}))
    assert (tagged.image, tagged.is_png, tagged.prompt_id, tagged.node_id) == (b"PNG", True, "p", "8")
    assert parse_frame(b"\x00\x00\x00\x03abcdefgh") is None  # text frames are not ours
    assert parse_frame(b"\x00\x00") is None


def test_the_client_imports_neither_torch_nor_diffusers_nor_qt():
    code = ("import sys, json, sketchpad.backends.comfy, sketchpad.backends.comfy.client; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'diffusers', 'transformers', 'PySide6', 'shiboken6'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("module", ["sketchpad.ui.main_window", "sketchpad.ui.generation_panel"])
def test_the_window_loads_no_backend_module_nor_the_websocket_client(module):
    """Widgets take server addresses from core and the checkpoint lookup from the app: opening the
    window costs nothing of the ComfyUI client until a server is used."""
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('sketchpad.backends') "
            "or m.split('.')[0] == 'websocket')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("scheduler, knob, runs", [
    ("ddim", dict(strength=1.0), 8),  # ComfyUI's ddim_uniform: 7 asked, 8 run from pure noise
    ("ddim", dict(strength=None, start_at_step=2), 6),  # ... and from a start step: 8 - 2
    ("ddim", dict(strength=0.5), 7),  # a denoise below 1 runs the last 7 of a longer schedule
    ("euler", dict(strength=0.5), 7),
    ("euler", dict(strength=0.01), 7),  # the capped plan, said outright to KSamplerAdvanced
])
def test_the_graph_says_how_many_steps_the_server_runs(scheduler, knob, runs):
    params = GenerationParams("a cat", steps=7, seed=1, scheduler=scheduler, **knob).validated()
    graph = build_graph(params, plan_steps(params), "m", COMFY_SAMPLERS[scheduler], (64, 64), "s.png")
    assert graph.steps == runs


def test_the_graph_carries_its_controlnet_window_and_uploads_the_control_picture_only_when_it_steers():
    uploads = []

    def graph_with(start, end, strength=1.0):
        spec = ControlSpec("scribble.safetensors", strength, start, end)
        params = GenerationParams("a cat", strength=0.5, steps=4, seed=1, control=spec).validated()
        control = ServerControl("scribble.safetensors", lambda: uploads.append(1) or "hint.png")
        return build_graph(params, plan_steps(params), "m", ("euler", "normal"), (64, 64), "s.png", control=control)

    partial = graph_with(0.5, 1.0)
    apply = partial.nodes["22"]["inputs"]
    assert partial.control_window == (apply["start_percent"], apply["end_percent"]) and 0 < apply["start_percent"] < 1
    assert partial.nodes["21"]["inputs"]["image"] == "hint.png" and uploads == [1]
    for steers_nothing in (graph_with(0.8, 1.0), graph_with(0.0, 1.0, strength=0.0)):
        assert steers_nothing.control_window is None and "22" not in steers_nothing.nodes
    assert uploads == [1]


def test_the_nodes_that_load_model_files_are_named():
    params = GenerationParams("a cat", strength=0.5, steps=4, seed=1,
                              control=ControlSpec("scribble.safetensors")).validated()
    graph = build_graph(params, plan_steps(params), "m", ("euler", "normal"), (64, 64), "s.png",
                        loras=(("ink.safetensors", 0.5), ("lcm.safetensors", 1.0)),
                        control=ServerControl("scribble.safetensors", lambda: "hint.png"))
    assert graph.loader_nodes == {"1", "10", "11", "20"}
