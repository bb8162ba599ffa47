"""LoRAs and LoRA presets on a ComfyUI server (the stand-in, checked against a real server's LoRA job):
each LoRA is a chained LoraLoader naming a file the server has; one it lacks is one line; the saved
metadata records them as local results do."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from safetensors.numpy import save_file

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.core.errors import SketchpadError
from sketchpad.core.hashes import lora_short_hash
from sketchpad.core.params import GenerationParams, LoraSpec
from sketchpad.core.presets import apply_preset
from sketchpad.core.storage import ResultInfo, format_parameters, parse_parameters
from tests.comfy_standin import StandIn

MODEL = "standin-sd15.safetensors"
SERVER_LORAS = ["sketchpad-random-lora.safetensors", "styles\\ink-lines.safetensors",
                "lcm-lora-sdv1-5.safetensors", "a.safetensors", "b.safetensors", "c.safetensors"]


@pytest.fixture
def server():
    with StandIn([MODEL], loras=SERVER_LORAS) as running:
        yield running


def sketch():
    image = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(image).line((4, 4, 50, 40), fill="black", width=3)
    return image


def params(**changes):
    return GenerationParams(**{**dict(prompt="a cat", strength=0.5, steps=4, seed=11), **changes})


def lora_nodes(graph):
    return {node_id: node["inputs"] for node_id, node in graph.items() if node["class_type"] == "LoraLoader"}


def local_lora(folder, name):
    path = folder / name
    save_file({"lora_unet_x.lora_down.weight": np.ones((2, 2), np.float16)}, str(path))
    return path


def test_loras_are_chained_loaders_feeding_the_sampler_and_both_prompts(server, tmp_path):
    path = local_lora(tmp_path, "sketchpad-random-lora.safetensors")
    backend = ComfyBackend(server.url, MODEL)
    request = params(loras=(LoraSpec(str(path), 0.8), LoraSpec("ink-lines", -0.5)))
    result = backend.generate(request, sketch())
    graph = server.prompts[-1]["prompt"]
    loaders = lora_nodes(graph)
    assert loaders == {
        "10": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "sketchpad-random-lora.safetensors",
               "strength_model": 0.8, "strength_clip": 0.8},
        "11": {"model": ["10", 0], "clip": ["10", 1], "lora_name": "styles\\ink-lines.safetensors",
               "strength_model": -0.5, "strength_clip": -0.5},
    }
    assert graph["6"]["inputs"]["model"] == ["11", 0]
    assert graph["2"]["inputs"]["clip"] == graph["3"]["inputs"]["clip"] == ["11", 1]
    assert server.uploads and backend.uploads == 1  # the sketch went up; no LoRA file did
    # metadata as local results write it: <lora:name:weight> tags, the hash of the file we could read
    text = format_parameters(ResultInfo(result.params, 64, 48, backend.model_name, result.sampler))
    assert "<lora:sketchpad-random-lora:0.8> <lora:ink-lines:-0.5>" in text
    assert "Lora hashes" in text
    restored = parse_parameters(text).params
    assert [(lora.source, lora.weight, lora.short_hash) for lora in restored.loras] == \
        [(str(path), 0.8, lora_short_hash(path)), ("ink-lines", -0.5, None)]


def test_a_lora_changes_the_server_picture_and_weight_zero_adds_no_node(server):
    backend = ComfyBackend(server.url, MODEL)
    plain = np.asarray(backend.generate(params(), sketch()).image)
    with_lora = np.asarray(backend.generate(params(loras=(LoraSpec("a", 1.0),)), sketch()).image)
    assert not np.array_equal(plain, with_lora)
    zero = backend.generate(params(loras=(LoraSpec("a", 0.0),)), sketch())
    assert lora_nodes(server.prompts[-1]["prompt"]) == {}
    assert server.prompts[-1]["prompt"]["6"]["inputs"]["model"] == ["1", 0]
    assert np.array_equal(np.asarray(zero.image), plain)
    assert zero.params.loras == (LoraSpec("a", 0.0),)  # still recorded, as locally


def test_a_preset_with_a_hub_lora_runs_when_the_server_has_that_file(server):
    backend = ComfyBackend(server.url, MODEL)
    result = backend.generate(apply_preset(params(), "lcm"), sketch())
    graph = server.prompts[-1]["prompt"]
    assert [inputs["lora_name"] for inputs in lora_nodes(graph).values()] == ["lcm-lora-sdv1-5.safetensors"]
    sampler = graph["6"]["inputs"]
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["steps"], sampler["cfg"]) == \
        ("lcm", "sgm_uniform", 4, 1.0)
    text = format_parameters(ResultInfo(result.params, 64, 48, backend.model_name, result.sampler))
    assert "<lora:lcm-lora-sdv1-5:1.0>" in text and "lcm" in text.lower()


def test_a_lora_the_server_lacks_is_one_line_naming_it_and_nothing_is_sent(server):
    backend = ComfyBackend(server.url, MODEL)
    with pytest.raises(SketchpadError) as caught:
        backend.generate(apply_preset(params(), "hyper"), sketch())
    message = str(caught.value)
    assert "\n" not in message
    assert "no LoRA Hyper-SD15-8steps-lora (ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors)" in message
    assert "sketchpad-random-lora.safetensors" in message and "(and 1 more)" in message
    assert server.prompts == [] and server.upload_requests == 0


def test_a_lora_added_to_the_server_after_connecting_is_found(server):
    backend = ComfyBackend(server.url, MODEL)
    server.loras.append("new-style.safetensors")  # dropped into models/loras while we were connected
    backend.generate(params(loras=(LoraSpec("new-style", 0.7),)), sketch())
    assert [i["lora_name"] for i in lora_nodes(server.prompts[-1]["prompt"]).values()] == ["new-style.safetensors"]


def test_a_lora_removed_before_the_job_reaches_the_server_is_the_same_one_line(server):
    backend = ComfyBackend(server.url, MODEL)
    server.loras.remove("a.safetensors")  # the client still lists it; the server's validation refuses it
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(loras=(LoraSpec("a", 1.0),)), sketch())
    assert str(caught.value).startswith("the ComfyUI server has no LoRA a; it has: sketchpad-random-lora")
