"""Opt-in: the client against a real ComfyUI server. Collected only when SKETCHPAD_COMFY_URL names one
(SKETCHPAD_COMFY_MODEL picks the checkpoint; default: the server's first). The stopped-server test
also needs the server's process id in SKETCHPAD_COMFY_PID (it stops the process with SIGSTOP for a
few seconds). See the README."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.core.backend import Waiting
from sketchpad.core.errors import FailureKind, MissingModel, ServerState, SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec
from sketchpad.core.server_files import file_stem
from tests.test_comfy_waiting import post_someone_elses_job

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


def test_a_missing_checkpoint_is_one_line_carrying_the_servers_checkpoints(backend):
    with pytest.raises(MissingModel, match=f"at {URL.rstrip('/')} is up but has no checkpoint "
                                           "'no-such-model.safetensors'; it has: ") as caught:
        ComfyBackend(URL, "no-such-model.safetensors")
    assert caught.value.available == tuple(backend.checkpoints)


def test_a_checkpoint_named_without_its_extension_is_the_servers_file(backend):
    named = ComfyBackend(URL, file_stem(backend.model_name))
    assert named.model_name == backend.model_name
    assert named.generate(params(steps=1), sketch()) is not None
    named.close()


def someone_elses_job(model: str, steps: int) -> str:
    return post_someone_elses_job(URL, model, steps, size=192)


def test_behind_another_clients_job_it_says_one_job_is_ahead_then_steps(backend):
    someone_elses_job(backend.model_name, steps=8)
    events = []
    result = backend.generate(params(seed=int(time.time()) + 3), sketch(mark=4),
                              on_step=lambda step: events.append(("step", step.step)),
                              on_waiting=lambda waiting: events.append(("waiting", waiting)))
    assert result is not None
    waits = [event[1] for event in events if event[0] == "waiting"]
    assert waits[:1] == [Waiting(jobs_ahead=1)] and Waiting(jobs_ahead=1) in waits
    assert events.index(("waiting", Waiting(jobs_ahead=1))) < events.index(("step", 1))


def test_a_stopped_server_is_reported_within_seconds_and_then_at_once():
    """SIGSTOP, as a hung server: the idle watcher finds it silent within its answer timeout; Generate
    then says so at once; after SIGCONT the watcher finds it ready and it paints again."""
    if not os.environ.get("SKETCHPAD_COMFY_PID"):
        pytest.skip("set SKETCHPAD_COMFY_PID to the server's process id to stop it for this test")
    pid = int(os.environ["SKETCHPAD_COMFY_PID"])
    client = ComfyBackend(URL, MODEL, answer_timeout=4.0)
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        while client.state is not ServerState.NOT_ANSWERING and time.monotonic() - stopped < 15:
            client.check_idle()
            time.sleep(0.2)
        noticed = time.monotonic() - stopped
        started = time.monotonic()
        with pytest.raises(SketchpadError) as caught:
            client.generate(params(), sketch())
        answered = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert client.state is ServerState.NOT_ANSWERING and noticed < 4.0 + 3.0
    assert answered < 0.5 and caught.value.kind is FailureKind.NOT_ANSWERING and "is not answering" in str(caught.value)
    deadline = time.monotonic() + 15
    while client.state is not ServerState.READY and time.monotonic() < deadline:
        client.check_idle()
        time.sleep(0.2)
    assert client.generate(params(steps=1, seed=int(time.time())), sketch()) is not None
    client.close()


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


def test_two_denoises_that_run_the_same_steps_give_the_same_picture(backend):
    """4 steps at denoise 0.75 and 0.80 both run a 5-step schedule's last 4: the same plan, so a caller
    that compares plans may reuse the first picture instead of paying for a second run."""
    from sketchpad.core.schedule import plan_steps

    first, second = params(steps=4, strength=0.75, seed=51), params(steps=4, strength=0.80, seed=51)
    assert plan_steps(first) == plan_steps(second)
    one, other = backend.generate(first, sketch(mark=6)), backend.generate(second, sketch(mark=6))
    assert np.array_equal(np.asarray(one.image), np.asarray(other.image))
