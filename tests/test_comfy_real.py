"""Opt-in: the client against a real ComfyUI server. Collected only when SKETCHPAD_COMFY_URL names one
(SKETCHPAD_COMFY_MODEL picks the checkpoint; default: the server's first). See the README."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec

if not os.environ.get("SKETCHPAD_COMFY_URL"):  # only when this file is named on the command line
    pytest.skip("set SKETCHPAD_COMFY_URL to a ComfyUI server's address to run these", allow_module_level=True)
URL = os.environ["SKETCHPAD_COMFY_URL"]
MODEL = os.environ.get("SKETCHPAD_COMFY_MODEL") or None


@pytest.fixture(scope="module")
def backend():
    client = ComfyBackend(URL, MODEL)
    yield client
    client.close()


def sketch(mark=0):
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((8 + mark, 8, 56, 56), outline="black", width=3)
    return image


def params(**changes):
    return GenerationParams(**{"prompt": "a cat", "strength": 0.5, "steps": 3, "seed": 3, **changes})


def test_img2img_gives_a_preview_per_step_and_the_picture(backend):
    steps = []
    result = backend.generate(params(seed=int(time.time())), sketch(), on_step=steps.append)
    assert [(s.step, s.total) for s in steps] == [(1, 3), (2, 3), (3, 3)]
    assert all(s.image is not None for s in steps), "start the server with --preview-method latent2rgb"
    assert result.image.size == (64, 64)


def test_a_dial_only_change_uploads_nothing(backend):
    backend.generate(params(strength=0.4), sketch(mark=1))
    uploads = backend.uploads
    backend.generate(params(strength=0.7), sketch(mark=1))
    assert backend.uploads == uploads


def test_start_at_step_and_text_to_image(backend):
    steps = []
    backend.generate(params(strength=None, start_at_step=3, steps=5), sketch(), on_step=steps.append)
    assert [(s.step, s.total) for s in steps] == [(1, 2), (2, 2)]
    assert backend.generate(params(strength=1.0, seed=8), sketch()).image.size == (64, 64)


def test_denoise_zero_returns_the_sketch(backend):
    drawing = sketch()
    assert np.array_equal(np.asarray(backend.generate(params(strength=0.0), drawing).image), np.asarray(drawing))


def test_stopping_leaves_nothing_of_ours_on_the_server(backend):
    steps = []
    assert backend.generate(params(steps=200, seed=int(time.time()) + 1), sketch(), on_step=steps.append,
                            should_stop=lambda: len(steps) >= 1) is None
    prompt_id = backend._stopped[-1]
    deadline = time.monotonic() + 30
    while backend._is_queued(prompt_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not backend._is_queued(prompt_id)


def test_a_missing_checkpoint_is_one_line():
    with pytest.raises(SketchpadError, match="has no checkpoint 'no-such-model.safetensors'; it has: "):
        ComfyBackend(URL, "no-such-model.safetensors")


def test_a_lora_on_the_server_changes_the_picture(backend):
    """Needs one LoRA in the server's models/loras (tests/comfy_recordings/make_server_lora.py makes one)."""
    if not backend.loras:
        pytest.fail("put a LoRA matching the checkpoint into the server's models/loras folder")
    lora = LoraSpec(backend.loras[0], 1.0)
    plain = backend.generate(params(seed=21), sketch())
    with_lora = backend.generate(params(seed=21, loras=(lora,)), sketch())
    assert not np.array_equal(np.asarray(plain.image), np.asarray(with_lora.image))
    assert with_lora.params.loras == (lora,)


def test_a_lora_the_server_lacks_is_one_line(backend):
    with pytest.raises(SketchpadError, match="has no LoRA no-such-lora; it has"):
        backend.generate(params(loras=(LoraSpec("no-such-lora", 1.0),)), sketch())


def test_the_controlnet_on_the_server_changes_the_picture_and_strength_zero_does_not(backend):
    """Needs one ControlNet matching the checkpoint in the server's models/controlnet
    (tests/comfy_recordings/make_server_controlnet.py makes one)."""
    if not backend.controlnets:
        pytest.fail("put a ControlNet matching the checkpoint into the server's models/controlnet folder")
    plain = backend.generate(params(seed=31), sketch())
    steered = backend.generate(params(seed=31, control=ControlSpec(backend.controlnets[0], 1.0)), sketch())
    zero = backend.generate(params(seed=31, control=ControlSpec(backend.controlnets[0], 0.0)), sketch())
    assert not np.array_equal(np.asarray(plain.image), np.asarray(steered.image))
    assert np.array_equal(np.asarray(plain.image), np.asarray(zero.image))


def test_a_controlnet_range_steers_only_its_steps_on_the_server(backend):
    """4 steps at denoise 0.5 (the last 4 of an 8-step schedule): 0.8:1 steers none of them (exactly the
    picture without a ControlNet), 0.5:1 the last two (a picture unlike both the full range and none).
    Sent as they are, ComfyUI's percents would steer the last two and all four steps instead."""
    if not backend.controlnets:
        pytest.fail("put a ControlNet matching the checkpoint into the server's models/controlnet folder")
    model = backend.controlnets[0]
    request = dict(seed=41, steps=4)
    plain = backend.generate(params(**request), sketch())
    full = backend.generate(params(**request, control=ControlSpec(model, 1.0)), sketch())
    none = backend.generate(params(**request, control=ControlSpec(model, 1.0, 0.8, 1.0)), sketch())
    late = backend.generate(params(**request, control=ControlSpec(model, 1.0, 0.5, 1.0)), sketch())
    assert np.array_equal(np.asarray(none.image), np.asarray(plain.image))
    assert not np.array_equal(np.asarray(full.image), np.asarray(plain.image))
    assert not np.array_equal(np.asarray(late.image), np.asarray(plain.image))
    assert not np.array_equal(np.asarray(late.image), np.asarray(full.image))


def test_ddim_runs_the_steps_comfyui_schedules_and_the_previews_count_them(backend):
    steps = []
    backend.generate(params(scheduler="ddim", steps=7, strength=1.0, seed=int(time.time()) + 7), sketch(), on_step=steps.append)
    assert [(s.step, s.total) for s in steps] == [(n, 8) for n in range(1, 9)]  # ddim_uniform: 7 asked, 8 run
    steps.clear()
    backend.generate(params(scheduler="ddim", steps=7, strength=None, start_at_step=3, seed=int(time.time()) + 8), sketch(),
                     on_step=steps.append)
    assert [(s.step, s.total) for s in steps] == [(n, 5) for n in range(1, 6)]  # from step 3 of those 8
