"""Why a run on a ComfyUI server shows no step yet: the jobs ahead of ours in the server's queue (kept
current), or the server loading the model; and stopping a waiting prompt leaves running ones alone."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.core.backend import Waiting
from tests.comfy_standin import StandIn
from tests.test_comfy_client import MODEL, params, sketch, wait_for


def someone_elses_job(server, steps: int) -> str:
    return post_someone_elses_job(server.url, MODEL, steps)


def post_someone_elses_job(url: str, model: str, steps: int, size: int = 64) -> str:
    """A text-to-image job from another client on the same server (plain HTTP, as their own app would
    post it), its picture kept in the server's temp folder."""
    prompt_id = str(uuid.uuid4())
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "theirs", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["5", 0],
            "seed": int(time.time()), "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }
    body = json.dumps({"prompt": graph, "prompt_id": prompt_id, "client_id": "someone-else"}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/prompt", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    return prompt_id


@pytest.fixture
def server():
    with StandIn([MODEL], step_seconds=0.05) as running:
        yield running


def run_recording(backend, request, **options):
    """generate(), with every report in the order it came: ("waiting", Waiting) or ("step", n)."""
    events = []
    result = backend.generate(request, sketch(), on_step=lambda step: events.append(("step", step.step)),
                              on_waiting=lambda waiting: events.append(("waiting", waiting)), **options)
    return result, events


def test_behind_other_jobs_it_says_how_many_are_ahead_on_every_change_then_steps(server):
    backend = ComfyBackend(server.url, MODEL)
    someone_elses_job(server, steps=12)
    someone_elses_job(server, steps=6)
    assert wait_for(lambda: server.running is not None)
    result, events = run_recording(backend, params(steps=3))
    assert result is not None
    assert events == [("waiting", Waiting(jobs_ahead=2)), ("waiting", Waiting(jobs_ahead=1)),
                      ("waiting", Waiting()), ("step", 1), ("step", 2), ("step", 3)]


def test_a_server_with_nothing_else_to_do_and_its_model_loaded_reports_no_waiting(server):
    backend = ComfyBackend(server.url, MODEL)
    backend.generate(params(steps=1), sketch())  # loads the checkpoint
    result, events = run_recording(backend, params(steps=2, strength=0.6))
    assert result is not None and events == [("step", 1), ("step", 2)]


def test_the_first_run_says_the_server_is_loading_the_model_and_a_later_one_does_not():
    with StandIn([MODEL], load_seconds=0.3) as fresh:
        backend = ComfyBackend(fresh.url, MODEL)
        _, first = run_recording(backend, params(steps=2))
        assert first == [("waiting", Waiting(loading_model=True)), ("waiting", Waiting()), ("step", 1), ("step", 2)]
        _, second = run_recording(backend, params(steps=2, strength=0.6))  # the checkpoint stays loaded
        assert second == [("step", 1), ("step", 2)]


def test_our_own_stopped_prompt_is_not_counted_as_a_job_ahead(server):
    """Live: the stale prompt is being interrupted while the newest is posted; nobody else is there."""
    backend = ComfyBackend(server.url, MODEL)
    steps = []
    assert backend.generate(params(steps=40), sketch(), on_step=steps.append, should_stop=lambda: bool(steps)) is None
    result, events = run_recording(backend, params(steps=2, strength=0.6))
    assert result is not None and [kind for kind, _ in events] == ["step", "step"]


def test_stopping_a_waiting_prompt_removes_it_and_interrupts_nothing(server):
    backend = ComfyBackend(server.url, MODEL)
    theirs = someone_elses_job(server, steps=20)
    waited = []
    assert backend.generate(params(steps=3), sketch(), on_waiting=waited.append,
                            should_stop=lambda: bool(waited)) is None
    ours = server.prompts[-1]["prompt_id"]
    assert waited == [Waiting(jobs_ahead=1)] and ours in server.deleted
    assert server.interrupts == []  # a prompt that is not running is never interrupted (no line in the server's log)
    assert wait_for(lambda: (theirs, "success") in server.finished)


def test_stopping_a_running_prompt_interrupts_it_by_its_id(server):
    backend = ComfyBackend(server.url, MODEL)
    steps = []
    assert backend.generate(params(steps=40), sketch(), on_step=steps.append, should_stop=lambda: bool(steps)) is None
    ours = server.prompts[-1]["prompt_id"]
    assert server.interrupts == [ours]
    assert wait_for(lambda: (ours, "interrupted") in server.finished)


def test_closing_removes_a_stopped_prompt_without_interrupting_it_when_it_waits(server):
    backend = ComfyBackend(server.url, MODEL)
    someone_elses_job(server, steps=30)
    started = time.monotonic()
    assert backend.generate(params(steps=3), sketch(), should_stop=lambda: time.monotonic() - started > 0.3) is None
    backend.close()
    assert server.interrupts == [] and server.prompts[-1]["prompt_id"] not in server.queue_ids()
