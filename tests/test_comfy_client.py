"""The ComfyUI client against the stand-in server: semantics, previews, uploads, cancelling, faults."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketchpad.backends.comfy.client import NO_PREVIEWS_HINT, ComfyBackend
from sketchpad.core.errors import FailureKind, MissingModel, ServerState, SketchpadError
from sketchpad.core.params import GenerationParams
from tests.comfy_standin import StandIn

MODEL = "standin-sd15.safetensors"


@pytest.fixture
def server():
    with StandIn([MODEL, "other-model.safetensors"]) as running:
        yield running


@pytest.fixture
def slow_server():
    with StandIn([MODEL], step_seconds=0.1) as running:
        yield running


def sketch(size=(64, 48), mark=0):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line((4, 4 + mark, 50, 40), fill="black", width=3)
    return image


def params(**changes):
    base = dict(prompt="a cat", strength=0.5, steps=4, seed=11)
    return GenerationParams(**{**base, **changes})


def sampler_inputs(server, index=-1):
    graph = server.prompts[index]["prompt"]
    node = graph["6"]
    return node["class_type"], node["inputs"], graph


def other_client_job(server, steps=3):
    """A job from someone else's client on the same server (plain HTTP, as their own app would)."""
    prompt_id = str(uuid.uuid4())
    graph = json.loads(json.dumps(server.prompts[-1]["prompt"]))
    graph["6"]["inputs"]["steps"] = steps
    graph["6"]["inputs"]["seed"] = 999
    body = json.dumps({"prompt": graph, "prompt_id": prompt_id, "client_id": "someone-else"}).encode()
    request = urllib.request.Request(server.url + "/prompt", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).read()
    return prompt_id


def wait_for(condition, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# -- semantics -------------------------------------------------------------------------------------
def test_denoise_runs_on_the_server_with_one_preview_per_step(server):
    backend = ComfyBackend(server.url, MODEL)
    steps = []
    result = backend.generate(params(strength=0.5, steps=4), sketch(), on_step=steps.append)
    kind, inputs, graph = sampler_inputs(server)
    assert kind == "KSampler" and inputs["denoise"] == 0.5 and inputs["steps"] == 4 and inputs["seed"] == 11
    assert [(s.step, s.total) for s in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(s.image is not None and s.image.shape == (64, 64, 3) for s in steps)
    assert result.image.size == (64, 48) and result.steps_run == 4 and result.sampler == "euler"
    assert server.prompts[-1]["client_id"] == backend._conn.client_id
    assert server.prompts[-1]["extra_data"] == {"preview_method": "latent2rgb"}
    assert graph["8"]["class_type"] == "SaveImageWebsocket"


def test_the_result_is_the_servers_picture_and_seeds_differ(server):
    backend = ComfyBackend(server.url, MODEL)
    first = np.asarray(backend.generate(params(seed=1), sketch()).image)
    again = np.asarray(backend.generate(params(seed=1), sketch()).image)
    other = np.asarray(backend.generate(params(seed=2), sketch()).image)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_start_at_step_runs_the_rest_of_the_schedule(server):
    backend = ComfyBackend(server.url, MODEL)
    steps = []
    backend.generate(params(strength=None, start_at_step=7, steps=10), sketch(), on_step=steps.append)
    kind, inputs, _ = sampler_inputs(server)
    assert kind == "KSamplerAdvanced" and inputs["start_at_step"] == 7 and inputs["steps"] == 10
    assert [(s.step, s.total) for s in steps] == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("knob", [dict(strength=0.0), dict(strength=None, start_at_step=4)])
def test_nothing_to_denoise_returns_the_sketch_without_the_server(server, knob):
    backend = ComfyBackend(server.url, MODEL)
    drawing = sketch()
    result = backend.generate(params(steps=4, **knob), drawing)
    assert np.array_equal(np.asarray(result.image), np.asarray(drawing)) and result.steps_run == 0
    assert server.prompts == [] and server.upload_requests == 0


@pytest.mark.parametrize("knob", [dict(strength=1.0), dict(strength=None, start_at_step=0)])
def test_full_denoise_is_text_to_image_and_uploads_nothing(server, knob):
    backend = ComfyBackend(server.url, MODEL)
    result = backend.generate(params(**knob), sketch())
    _, _, graph = sampler_inputs(server)
    assert graph["5"]["class_type"] == "EmptyLatentImage" and "4" not in graph
    assert (graph["5"]["inputs"]["width"], graph["5"]["inputs"]["height"]) == (64, 48) == result.image.size
    assert server.upload_requests == 0


def test_uploads_are_content_addressed_so_the_dial_uploads_nothing(server):
    backend = ComfyBackend(server.url, MODEL)
    for strength in (0.3, 0.5, 0.7):
        backend.generate(params(strength=strength), sketch())
    assert server.upload_requests == 1 and backend.uploads == 1
    names = {sampler_inputs(server, i)[2]["4"]["inputs"]["image"] for i in range(3)}
    assert len(names) == 1 and next(iter(names)).startswith("sketchpad-")
    backend.generate(params(), sketch(mark=5))  # a new stroke is a new sketch
    assert server.upload_requests == 2


def test_a_server_that_lost_the_sketch_gets_it_again(server):
    backend = ComfyBackend(server.url, MODEL)
    backend.generate(params(), sketch())
    server.uploads.clear()  # e.g. its input folder was cleaned
    assert backend.generate(params(strength=0.6), sketch()).image.size == (64, 48)
    assert server.upload_requests == 2


def test_untagged_frames_from_an_older_server_still_give_one_preview_per_step():
    with StandIn([MODEL], preview_metadata=False) as older:
        steps = []
        ComfyBackend(older.url, MODEL).generate(params(steps=3), sketch(), on_step=steps.append)
        assert [(s.step, s.image is not None) for s in steps] == [(1, True), (2, True), (3, True)]


def test_without_server_previews_steps_still_count_and_we_say_once_how_to_get_them():
    with StandIn([MODEL], previews=False) as quiet:
        said = []
        backend = ComfyBackend(quiet.url, MODEL, notify=said.append)
        for seed in (1, 2):  # an equal request would come from the server's cache, running no steps
            steps = []
            backend.generate(params(steps=3, seed=seed), sketch(), on_step=steps.append)
            assert [(s.step, s.image) for s in steps] == [(1, None), (2, None), (3, None)]
        assert said.count(NO_PREVIEWS_HINT) == 1 and "--preview-method latent2rgb" in NO_PREVIEWS_HINT


def test_a_server_without_the_websocket_output_node_returns_the_picture_from_its_temp_folder():
    with StandIn([MODEL], websocket_output=False) as plain:
        result = ComfyBackend(plain.url, MODEL).generate(params(), sketch())
        assert plain.prompts[-1]["prompt"]["8"]["class_type"] == "PreviewImage"
        assert result.image.size == (64, 48) and len(plain.temp_files) == 1


def test_model_and_device_names_and_the_checkpoint_picked_for_the_person_is_named(server):
    said = []
    backend = ComfyBackend(server.url, None, notify=said.append)
    assert backend.model_name == MODEL and backend.device_name == "standin"
    assert backend.checkpoints == [MODEL, "other-model.safetensors"]
    assert said == [f"No checkpoint chosen: using the server's first, {MODEL}"]


# -- wrong requests ----------------------------------------------------------------------------
def test_a_checkpoint_the_server_lacks_says_the_server_is_up_and_carries_its_checkpoints(server):
    with pytest.raises(MissingModel) as caught:
        ComfyBackend(server.url, "dreamshaper.safetensors")
    assert str(caught.value) == (f"the ComfyUI server at {server.url} is up but has no checkpoint "
                                 "'dreamshaper.safetensors'; it has: standin-sd15.safetensors, other-model.safetensors")
    assert caught.value.kind is FailureKind.MODEL
    assert caught.value.available == (MODEL, "other-model.safetensors")
    assert server.sockets == {}  # the connection it opened is closed again


def test_a_server_without_checkpoints_says_where_to_put_one():
    with StandIn([]) as empty, pytest.raises(MissingModel) as caught:
        ComfyBackend(empty.url, None)
    assert "is up but has no checkpoint at all: put an SD1.5 .safetensors checkpoint in its models/checkpoints" \
        in str(caught.value) and caught.value.available == ()


@pytest.mark.parametrize("asked", ["sd15-min320x1-random", "SD15-min320x1-random.safetensors",
                                   "~/models/sd15-min320x1-random.safetensors", "someone/sd15-min320x1-random"])
def test_checkpoints_match_by_name_as_loras_do_with_or_without_extension_and_in_subfolders(asked):
    on_server = "sd15/sd15-min320x1-random.safetensors"
    with StandIn(["other.ckpt", on_server]) as server:
        backend = ComfyBackend(server.url, asked)
        assert backend.model_name == on_server
        backend.generate(params(), sketch())
        assert server.prompts[-1]["prompt"]["1"]["inputs"]["ckpt_name"] == on_server
        assert ComfyBackend(server.url, "other").model_name == "other.ckpt"


def test_a_checkpoint_removed_after_connecting_is_the_same_line(server):
    backend = ComfyBackend(server.url, "other-model.safetensors")
    server.nodes["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [MODEL]
    with pytest.raises(MissingModel, match="has no checkpoint 'other-model.safetensors'; it has: standin-sd15") as caught:
        backend.generate(params(), sketch())
    assert caught.value.available == (MODEL,)


def test_node_errors_are_one_line(server):
    backend = ComfyBackend(server.url, MODEL)
    backend._samplers.append("no_such")  # the server's list changed under us
    from sketchpad.backends.comfy import workflow

    workflow.COMFY_SAMPLERS["euler"], saved = ("no_such", "normal"), workflow.COMFY_SAMPLERS["euler"]
    try:
        with pytest.raises(SketchpadError) as caught:
            backend.generate(params(), sketch())
    finally:
        workflow.COMFY_SAMPLERS["euler"] = saved
    assert str(caught.value) == ("the ComfyUI server rejected the request: KSampler: "
                                 "sampler_name: 'no_such' not in (list of length 42)")


def test_pndm_is_refused_before_anything_is_sent(server):
    backend = ComfyBackend(server.url, MODEL)
    with pytest.raises(SketchpadError, match="pndm"):
        backend.generate(params(scheduler="pndm"), sketch())
    assert server.prompts == []


def test_out_of_memory_on_the_server_is_said_plainly(server):
    backend = ComfyBackend(server.url, MODEL)
    server.fail_next_job("CUDA out of memory. Tried to allocate 2.00 GiB", "torch.OutOfMemoryError")
    with pytest.raises(SketchpadError, match="ran out of memory in KSampler"):
        backend.generate(params(), sketch())
    assert backend.generate(params(), sketch()).image.size == (64, 48)  # the next request works


def test_another_execution_error_names_the_node_and_the_reason(server):
    backend = ComfyBackend(server.url, MODEL)
    server.fail_next_job("mat1 and mat2 shapes cannot be multiplied\nmore detail", "RuntimeError")
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(), sketch())
    assert str(caught.value) == "the ComfyUI server failed in KSampler: mat1 and mat2 shapes cannot be multiplied"


# -- newest wins, politely -------------------------------------------------------------------------
def test_stop_interrupts_our_running_prompt_only(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)
    backend.generate(params(steps=1), sketch())
    theirs = other_client_job(slow_server, steps=3)  # queued behind ours
    steps = []
    result = backend.generate(params(steps=30), sketch(), on_step=steps.append, should_stop=lambda: len(steps) >= 1)
    assert result is None
    ours = slow_server.prompts[-1]["prompt_id"]
    assert wait_for(lambda: (ours, "interrupted") in slow_server.finished)
    assert (theirs, "success") in slow_server.finished
    assert slow_server.interrupts == [ours] and slow_server.deleted == []


def test_stop_while_waiting_removes_our_pending_prompt_and_leaves_theirs_running(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)
    backend.generate(params(steps=1), sketch())
    theirs = other_client_job(slow_server, steps=10)
    assert wait_for(lambda: slow_server.running is not None)
    started = time.monotonic()
    result = backend.generate(params(steps=5), sketch(), should_stop=lambda: time.monotonic() - started > 0.3)
    ours = slow_server.prompts[-1]["prompt_id"]
    assert result is None and ours in slow_server.deleted and ours not in slow_server.queue_ids()
    assert wait_for(lambda: (theirs, "success") in slow_server.finished)  # never interrupted
    assert all(finished[0] != ours for finished in slow_server.finished)


def test_the_next_request_after_a_stop_gets_only_its_own_previews(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)
    stale = []
    assert backend.generate(params(steps=30), sketch(), on_step=stale.append, should_stop=lambda: len(stale) >= 2) is None
    fresh = []
    result = backend.generate(params(steps=3, strength=0.8), sketch(), on_step=fresh.append)
    assert [(s.step, s.total) for s in fresh] == [(1, 3), (2, 3), (3, 3)] and result is not None
    # the picture arrives before the server's closing messages, so its queue empties a moment later
    assert wait_for(lambda: slow_server.queue_ids() == [], limit=2.0)


def test_ctrl_c_leaves_nothing_of_ours_on_the_server(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)

    def press_ctrl_c(step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backend.generate(params(steps=30), sketch(), on_step=press_ctrl_c)
    assert slow_server.queue_ids() == []
    assert slow_server.finished[-1][1] == "interrupted"


# -- faults ----------------------------------------------------------------------------------------
def test_a_server_that_is_down_is_one_line():
    with StandIn([MODEL]) as gone:
        url = gone.url
    with pytest.raises(SketchpadError) as caught:
        ComfyBackend(url, MODEL)
    assert str(caught.value).startswith(f"cannot reach the ComfyUI server at {url} (")
    assert str(caught.value).endswith("is it running?") and "\n" not in str(caught.value)


def test_a_server_killed_mid_run_is_one_line_and_the_next_request_works_once_it_is_back(slow_server, monkeypatch):
    monkeypatch.setattr("sketchpad.backends.comfy.client.RECONNECT_DELAYS", (0.0, 0.1, 0.2))
    states = []
    backend = ComfyBackend(slow_server.url, MODEL, on_state=states.append)
    steps = []

    def kill_after_first_step(step):
        steps.append(step)
        if len(steps) == 1:
            threading.Thread(target=slow_server.kill).start()

    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(steps=30), sketch(), on_step=kill_after_first_step)
    assert str(caught.value) == (f"lost the ComfyUI server at {slow_server.url} while generating (Connection refused); "
                                 "is it running?")  # the address once
    assert caught.value.kind is FailureKind.CONNECTION_LOST
    assert states[-2:] == [ServerState.RECONNECTING, ServerState.UNREACHABLE]
    slow_server.restart()
    result = backend.generate(params(steps=2), sketch())
    assert result is not None and backend.state is ServerState.READY and slow_server.upload_requests == 1


def test_a_dropped_connection_reconnects_and_the_job_finishes(slow_server):
    states = []
    backend = ComfyBackend(slow_server.url, MODEL, on_state=states.append)
    steps = []

    def drop_after_first_step(step):
        steps.append(step)
        if len(steps) == 1:
            slow_server.drop_sockets()

    result = backend.generate(params(steps=6), sketch(), on_step=drop_after_first_step)
    assert result is not None and result.image.size == (64, 48)
    assert ServerState.RECONNECTING in states and states[-1] is ServerState.READY
    assert len(slow_server.prompts) == 1  # the same job went on; nothing was sent twice


def test_a_server_that_stops_answering_mid_job_is_reported_with_the_time_that_passed(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL, http_timeout=1.0, answer_timeout=1.5)
    steps = []

    def hang_after_first_step(step):
        steps.append(step)
        if len(steps) == 1:
            slow_server.hang()

    started = time.monotonic()
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(steps=30), sketch(), on_step=hang_after_first_step)
    waited = time.monotonic() - started
    # at once after the answer timeout: no cancelling calls that would only wait again
    assert waited < 1.5 + 1.0
    assert caught.value.kind is FailureKind.NOT_ANSWERING and backend.state is ServerState.NOT_ANSWERING
    said = re.fullmatch(rf"the ComfyUI server at {slow_server.url} stopped answering \(nothing for (\d+) s, "
                        r"not even to a ping\)", str(caught.value))
    assert said and 1.5 - 0.5 <= int(said[1]) <= waited + 0.5  # the silence it really saw
    slow_server.unhang()


def test_a_server_known_not_to_answer_is_said_at_once_and_a_server_that_hangs_before_a_job_within_its_timeout(
        slow_server, monkeypatch):
    """The idle watcher saw it stop answering: Generate says so at once, with the time since it last
    answered. Before the watcher noticed, the first call that waits names the time it waited."""
    monkeypatch.setattr("sketchpad.backends.comfy.connection.PING_AFTER", 0.1)
    backend = ComfyBackend(slow_server.url, MODEL, http_timeout=1.0, answer_timeout=0.5)
    slow_server.hang()  # no pongs any more, nor HTTP answers
    started = time.monotonic()
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(), sketch())  # the upload waits for its answer
    assert time.monotonic() - started < 2.0 and caught.value.kind is FailureKind.NOT_ANSWERING
    assert str(caught.value) == f"the ComfyUI server at {slow_server.url} did not answer for 1 s"

    started = time.monotonic()
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(), sketch())
    assert time.monotonic() - started < 0.2 and caught.value.kind is FailureKind.NOT_ANSWERING
    assert str(caught.value).startswith(f"the ComfyUI server at {slow_server.url} is not answering (nothing from it "
                                        "for ")
    slow_server.unhang()
    assert wait_for(lambda: (backend.check_idle(), backend.state)[1] is ServerState.READY)
    assert backend.generate(params(steps=2), sketch()) is not None


def test_the_idle_watcher_finding_the_server_silent_makes_generate_fail_at_once(slow_server, monkeypatch):
    monkeypatch.setattr("sketchpad.backends.comfy.connection.PING_AFTER", 0.1)
    monkeypatch.setattr("sketchpad.backends.comfy.client.IDLE_CONNECT_TIMEOUT", 0.2)
    backend = ComfyBackend(slow_server.url, MODEL, answer_timeout=0.5)
    slow_server.hang()
    assert wait_for(lambda: (backend.check_idle(), backend.state)[1] is ServerState.NOT_ANSWERING, limit=5)
    for _ in range(3):  # looking again (a connection attempt) neither blocks long nor hides the state
        started = time.monotonic()
        backend.check_idle()
        assert time.monotonic() - started < 0.5 and backend.state is ServerState.NOT_ANSWERING
        time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(), sketch())
    assert time.monotonic() - started < 0.2 and caught.value.kind is FailureKind.NOT_ANSWERING
    assert slow_server.prompts == []
    slow_server.unhang()


def test_a_reconnect_to_a_server_that_takes_the_connection_and_says_nothing_gives_up_at_once(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL, http_timeout=1.0)
    steps = []

    def drop_and_hang_after_first_step(step):
        steps.append(step)
        if len(steps) == 1:
            slow_server.hang()
            slow_server.drop_sockets()

    started = time.monotonic()
    with pytest.raises(SketchpadError) as caught:
        backend.generate(params(steps=30), sketch(), on_step=drop_and_hang_after_first_step)
    assert time.monotonic() - started < 2.5  # one attempt of a second, not a backoff of them
    assert caught.value.kind is FailureKind.NOT_ANSWERING
    slow_server.unhang()


def test_bearer_token_and_url_credentials_are_sent_and_never_shown():
    with StandIn([MODEL], auth="Bearer tok-123") as guarded:
        backend = ComfyBackend(guarded.url, MODEL, token="tok-123")
        assert backend.generate(params(), sketch()) is not None
        with pytest.raises(SketchpadError, match="asks for credentials .* or a token in SKETCHPAD_SERVER_TOKEN"):
            ComfyBackend(guarded.url, MODEL)
        with pytest.raises(SketchpadError, match="refused the credentials"):
            ComfyBackend(guarded.url, MODEL, token="wrong")
    import base64

    with StandIn([MODEL], auth="Basic " + base64.b64encode(b"ann:s3cret").decode()) as basic:
        url = basic.url.replace("http://", "http://ann:s3cret@")
        backend = ComfyBackend(url, MODEL)
        assert backend.generate(params(), sketch()) is not None
        assert "s3cret" not in backend.server and "ann" not in backend.server
        with pytest.raises(SketchpadError) as caught:
            ComfyBackend(basic.url.replace("http://", "http://ann:wrong@"), MODEL)
        assert "wrong" not in str(caught.value) and "refused the credentials" in str(caught.value)


def test_closing_right_after_a_stop_leaves_nothing_of_ours(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)
    steps = []
    assert backend.generate(params(steps=40), sketch(), on_step=steps.append, should_stop=lambda: len(steps) >= 1) is None
    backend.close()
    assert slow_server.queue_ids() == []


def test_the_worker_opens_a_server_backend_through_open_backend(server):
    from sketchpad.backends.loading import close_backend, open_backend

    lines = []
    url = server.url.replace("http://", "http://ann:pw@")
    server.auth = "Basic " + __import__("base64").b64encode(b"ann:pw").decode()
    backend = open_backend(MODEL, "auto", lines.append, server=url)
    assert isinstance(backend, ComfyBackend) and backend.generate(params(), sketch()) is not None
    assert lines and all("pw" not in line for line in lines) and MODEL in lines[-1]
    close_backend(backend)
    assert backend.state is ServerState.CLOSED


def test_the_checkpoint_list_for_a_chooser_and_a_safe_address_for_the_status_bar(server):
    from sketchpad.backends.comfy.checkpoints import list_checkpoints
    from sketchpad.core.server_address import display_address

    assert list_checkpoints(server.url) == [MODEL, "other-model.safetensors"]
    assert display_address(server.url.replace("http://", "http://ann:pw@")) == server.url
    assert "pw" not in display_address("ftp://ann:pw@host")


def test_connection_state_changes_reach_the_worker_as_notices(slow_server, monkeypatch):
    from sketchpad.backends.loading import open_backend

    said = []
    backend = open_backend(MODEL, "auto", lambda line: None, server=slow_server.url, notify=said.append)
    steps = []

    def drop_after_first_step(step):
        steps.append(step)
        if len(steps) == 1:
            slow_server.drop_sockets()

    assert backend.generate(params(steps=5), sketch(), on_step=drop_after_first_step) is not None
    assert f"ComfyUI server {slow_server.url}: reconnecting" in said
    assert said[-1] == f"ComfyUI server {slow_server.url}: ready"


def test_previews_off_asks_the_server_for_none_and_decodes_nothing(server):
    steps = []
    ComfyBackend(server.url, MODEL).generate(params(steps=2, preview_method="none"), sketch(), on_step=steps.append)
    assert server.prompts[-1]["extra_data"] == {"preview_method": "none"}
    assert [(s.step, s.image) for s in steps] == [(1, None), (2, None)]


def test_the_picture_is_returned_without_waiting_for_the_servers_last_messages(server):
    backend = ComfyBackend(server.url, MODEL)
    server.release_end.clear()  # the server is slow to say execution_success (e.g. it collects garbage)
    done = []
    thread = threading.Thread(target=lambda: done.append(backend.generate(params(), sketch())))
    thread.start()
    thread.join(20)
    held = bool(done) and server.finished == []
    server.release_end.set()
    thread.join(20)
    assert held and done[0].image.size == (64, 48)
    assert wait_for(lambda: len(server.finished) == 1)
    assert backend.generate(params(strength=0.6), sketch()) is not None  # its late messages confuse nothing


def test_an_idle_client_notices_the_server_going_and_coming_back(slow_server, monkeypatch):
    monkeypatch.setattr("sketchpad.backends.comfy.client.IDLE_RETRY", 0.05)
    states = []
    backend = ComfyBackend(slow_server.url, MODEL, on_state=states.append)
    backend.check_idle()
    assert backend.state is ServerState.READY  # a quiet, healthy server stays connected
    slow_server.kill()
    assert wait_for(lambda: (backend.check_idle(), backend.state)[1] is ServerState.UNREACHABLE)
    slow_server.restart()
    assert wait_for(lambda: (backend.check_idle(), backend.state)[1] is ServerState.READY)
    assert states[-2:] == [ServerState.UNREACHABLE, ServerState.READY]
    assert backend.generate(params(steps=2), sketch()) is not None  # and it paints again


def test_an_idle_client_notices_a_server_that_stopped_answering(slow_server, monkeypatch):
    monkeypatch.setattr("sketchpad.backends.comfy.connection.PING_AFTER", 0.1)
    backend = ComfyBackend(slow_server.url, MODEL, answer_timeout=0.5)
    slow_server.hang()  # no pongs any more
    assert wait_for(lambda: (backend.check_idle(), backend.state)[1] is ServerState.NOT_ANSWERING, limit=5)
    slow_server.unhang()


def test_idle_reads_drain_a_stopped_jobs_tail_so_the_next_job_is_unaffected(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)
    steps = []
    assert backend.generate(params(steps=30), sketch(), on_step=steps.append, should_stop=lambda: len(steps) >= 1) is None
    for _ in range(20):
        backend.check_idle()
        time.sleep(0.02)
    fresh = []
    assert backend.generate(params(steps=3, seed=5), sketch(), on_step=fresh.append) is not None
    assert [s.step for s in fresh] == [1, 2, 3] and backend.state is ServerState.READY


def test_stopping_during_the_reconnect_backoff_returns_at_once(slow_server):
    backend = ComfyBackend(slow_server.url, MODEL)
    steps, asked = [], []

    def kill_after_first_step(step):
        steps.append(step)
        if len(steps) == 1:
            threading.Thread(target=slow_server.kill).start()

    def stop_soon_after_the_kill():
        if backend.state is ServerState.RECONNECTING and not asked:
            asked.append(time.monotonic())
        return bool(asked) and time.monotonic() - asked[0] > 0.3

    assert backend.generate(params(steps=30), sketch(), on_step=kill_after_first_step,
                            should_stop=stop_soon_after_the_kill) is None
    assert time.monotonic() - asked[0] < 1.0  # not the seven seconds the whole backoff takes
    backend.close()


@pytest.mark.parametrize("knobs, seen", [(dict(strength=1.0), 8), (dict(strength=None, start_at_step=3), 5),
                                         (dict(strength=0.5), 7)])
def test_ddim_counts_the_steps_the_server_really_runs(server, knobs, seen):
    """ComfyUI's ddim_uniform runs 8 steps for 7 from pure noise or a start step (not at denoise < 1)."""
    steps = []
    result = ComfyBackend(server.url, MODEL).generate(params(scheduler="ddim", steps=7, **knobs), sketch(),
                                                      on_step=steps.append)
    assert [(s.step, s.total) for s in steps] == [(n, seen) for n in range(1, seen + 1)]
    assert result.steps_run == seen
