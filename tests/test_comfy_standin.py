"""The stand-in must behave as the real ComfyUI server did: the recorder that wrote
tests/comfy_recordings/ from a real server runs here against the stand-in, and every scenario's
messages, frames and answers must have the same shape as the recording."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.comfy_recordings.record import (Recorder, record_all, record_control, record_lora, record_masks,
                                            record_stopped, record_waiting, sketch_png)
from tests.comfy_standin import StandIn

RECORDINGS = Path(__file__).resolve().parent / "comfy_recordings"
CHECKPOINT = "sketchpad-tiny-sd15.safetensors"  # the one the real server had when recording
LORA = "sketchpad-random-lora.safetensors"  # the LoRA in its models/loras (make_server_lora.py)
CONTROLNET = "sketchpad-random-controlnet.safetensors"  # in its models/controlnet (make_server_controlnet.py)
# the checkpoints the real server had when recording the masks (make_server_checkpoint.py, with --inpainting)
MASK_CHECKPOINTS = ("sd15-min320x1-random.safetensors", "sd15-min320x1-inpainting-random.safetensors")
MASK_JOBS = ("mask_img2img", "mask_txt2img", "inpainting_model_img2img", "inpainting_model_txt2img")
JOBS = ("img2img_first", "img2img_denoise_only", "img2img_legacy_frames", "txt2img", "advanced_start_at_step",
        "preview_image_output", "execution_error_out_of_memory")
REJECTED = ("error_400_missing_checkpoint", "error_400_unknown_sampler", "error_400_unknown_node",
            "error_400_missing_image")
STEP_KINDS = {"progress", "progress_state", "binary"}


def recorded(name: str) -> dict:
    return json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replayed():
    records = {}
    with StandIn([CHECKPOINT], step_seconds=0.02) as server:
        # through JSON as the fixtures went, so tuples and lists compare alike
        record_all(server.url, CHECKPOINT, "stand-in",
                   sink=lambda name, record: records.__setitem__(name, json.loads(json.dumps(record))))
        # the stand-in's own out-of-memory: the real server failed allocating a huge latent
        assert "execution_error_out_of_memory" in records
    return records


def _number(value):
    return float(value) if isinstance(value, (int, float)) else value


def shape(message: dict):
    """What must match between servers: kinds, nodes, steps, frame layout; not ids or timings."""
    if "binary" in message:
        b = message["binary"]
        meta = b.get("metadata") or {}
        return ("binary", b["event"], b.get("format"), meta.get("node_id"), meta.get("image_type"),
                sorted(meta), (b.get("image") or {}).get("format"))
    kind, data = message.get("type"), message.get("data") or {}
    if kind == "progress_state":
        return (kind, tuple(sorted((n, s["state"], _number(s["value"]), _number(s["max"])) for n, s in data["nodes"].items())))
    if kind == "execution_cached":
        return (kind, sorted(data["nodes"]), sorted(data))
    if kind == "executed":
        return (kind, data["node"], sorted(data["output"]), sorted(data))
    if kind == "execution_error":
        return (kind, data["node_id"], data["node_type"], sorted(data))
    return (kind, data.get("node"), data.get("value"), data.get("max"), sorted(data))


def sequence(messages, skip=("status",)):
    # queue "status" broadcasts depend on every client's timing; their own test is below
    return [shape(m) for m in messages if ("binary" if "binary" in m else m.get("type")) not in skip]


@pytest.mark.parametrize("name", JOBS)
def test_job_messages_match_the_real_server(replayed, name):
    real, standin = recorded(name), replayed[name]
    assert standin["response"]["status"] == real["response"]["status"]
    assert sorted(standin["response"]["body"]) == sorted(real["response"]["body"])
    assert sequence(standin["messages"]) == sequence(real["messages"])


@pytest.mark.parametrize("name", JOBS)
def test_each_job_ends_like_the_real_server(replayed, name):
    """After the last node: success (or error), a queue status, then `executing` with node None."""
    def tail(messages):
        return [m.get("type") for m in messages[-3:]]

    assert tail(replayed[name]["messages"]) == tail(recorded(name)["messages"])


@pytest.mark.parametrize("name", REJECTED)
def test_rejected_prompts_get_the_same_answer(replayed, name):
    real, standin = recorded(name)["response"], replayed[name]["response"]
    assert standin == real


def test_hello_and_feature_flags_match(replayed):
    real, standin = recorded("hello"), replayed["hello"]
    for key in ("with_preview_metadata", "without"):
        assert [m["type"] for m in standin[key]] == [m["type"] for m in real[key]]
        assert sorted(standin[key][0]["data"]) == sorted(real[key][0]["data"])  # status and our sid
    assert standin["with_preview_metadata"][1] == real["with_preview_metadata"][1]


def test_uploads_deduplicate_and_rename_like_the_real_server(replayed):
    def names(record):
        stem = record["filename"].rpartition(".")[0]
        flat = json.dumps({k: v for k, v in record.items() if k not in ("filename", "comfyui_commit")})
        return re.sub(re.escape(stem), "STEM", flat)

    assert names(replayed["upload"]) == names(recorded("upload"))


def test_queue_delete_and_targeted_interrupt_match(replayed):
    real, standin = recorded("queue_and_interrupt"), replayed["queue_and_interrupt"]

    def roles(record, key):
        ids = {record["running"]: "running", record["pending"]: "pending", record["other_clients_job"]: "other"}
        ours = record["client_id"]
        return {lane: [(ids.get(item[1]), item[2] == ours, item[3]) for item in items]
                for lane, items in record[key]["body"].items()}

    for key in ("queue_before", "queue_after_interrupt_not_running", "queue_after_delete", "queue_at_end"):
        assert roles(standin, key) == roles(real, key), key
    for key in ("interrupt_not_running", "delete_pending", "interrupt_running"):
        assert standin[key] == real[key], key
    assert sequence(standin["messages_until_step_2"]) == sequence(real["messages_until_step_2"])
    # how many steps still run after the interrupt is timing; what ends the job is not
    assert sequence(standin["messages_after_interrupt"], skip=STEP_KINDS | {"status"}) == \
        sequence(real["messages_after_interrupt"], skip=STEP_KINDS | {"status"})
    assert sequence(standin["other_client_messages"]) == sequence(real["other_client_messages"])


@pytest.fixture(scope="module")
def replayed_lora():
    records = {}
    with StandIn([CHECKPOINT], loras=[LORA], step_seconds=0.02) as server:
        record_lora(server.url, CHECKPOINT, "stand-in", LORA,
                    sink=lambda name, record: records.__setitem__(name, json.loads(json.dumps(record))))
    return records


def test_lora_loader_is_listed_like_the_real_server(replayed_lora):
    assert replayed_lora["object_info_lora"]["body"] == recorded("object_info_lora")["body"]


def test_a_job_through_chained_lora_loaders_matches_the_real_server(replayed_lora):
    real, standin = recorded("lora_img2img"), replayed_lora["lora_img2img"]
    assert standin["response"]["status"] == real["response"]["status"] == 200
    assert sequence(standin["messages"]) == sequence(real["messages"])


def test_a_missing_lora_gets_the_same_answer(replayed_lora):
    assert replayed_lora["error_400_missing_lora"]["response"] == recorded("error_400_missing_lora")["response"]


@pytest.fixture(scope="module")
def replayed_control():
    records = {}
    with StandIn([CHECKPOINT], controlnets=[CONTROLNET], step_seconds=0.02) as server:
        # the real server had the checkpoint and both prompts cached from a job before: so does this one
        warm = Recorder(server.url, CHECKPOINT, "stand-in")
        name = warm.upload("warm.png", sketch_png(1))[1]["name"]
        ws, _ = warm.connect("warm-up", preview_metadata=True)
        warm.post_prompt(warm.graph(name, {"seed": 1, "steps": 1, "denoise": 0.5}), "warm-up-job", "warm-up")
        warm.until_done(ws, "warm-up-job")
        ws.close()
        record_control(server.url, CHECKPOINT, "stand-in", CONTROLNET,
                       sink=lambda name, record: records.__setitem__(name, json.loads(json.dumps(record))))
    return records


def test_controlnet_nodes_are_listed_like_the_real_server(replayed_control):
    assert replayed_control["object_info_control"]["body"] == recorded("object_info_control")["body"]


def test_a_controlnet_job_matches_the_real_server(replayed_control):
    real, standin = recorded("control_img2img"), replayed_control["control_img2img"]
    assert standin["response"]["status"] == real["response"]["status"] == 200
    assert sequence(standin["messages"]) == sequence(real["messages"])


def test_a_missing_controlnet_gets_the_same_answer(replayed_control):
    assert replayed_control["error_400_missing_controlnet"]["response"] == \
        recorded("error_400_missing_controlnet")["response"]


@pytest.fixture(scope="module")
def replayed_masks():
    records = {}
    with StandIn(MASK_CHECKPOINTS, step_seconds=0.02) as server:
        record_masks(server.url, MASK_CHECKPOINTS[0], "stand-in", MASK_CHECKPOINTS[1],
                     sink=lambda name, record: records.__setitem__(name, json.loads(json.dumps(record))))
    return records


def test_mask_nodes_are_listed_like_the_real_server(replayed_masks):
    assert replayed_masks["object_info_masks"]["body"] == recorded("object_info_masks")["body"]


@pytest.mark.parametrize("name", MASK_JOBS)
def test_a_masked_job_matches_the_real_server(replayed_masks, name):
    """Noise masks and inpainting conditioning, from a picture or an empty latent: the same nodes run
    in the same order, the same ones come from the cache, with the same steps and frames."""
    real, standin = recorded(name), replayed_masks[name]
    assert standin["response"]["status"] == real["response"]["status"] == 200
    assert sequence(standin["messages"]) == sequence(real["messages"])


def test_a_missing_mask_picture_gets_the_same_answer(replayed_masks):
    assert replayed_masks["error_400_missing_mask"]["response"] == recorded("error_400_missing_mask")["response"]


@pytest.fixture(scope="module")
def replayed_waiting():
    records = {}
    # the real server loaded its checkpoint for about a second, and ran the other client's job for 15 s
    with StandIn([CHECKPOINT], step_seconds=0.05, load_seconds=0.5) as server:
        record_waiting(server.url, CHECKPOINT, "stand-in", other_steps=12,
                       sink=lambda name, record: records.__setitem__(name, json.loads(json.dumps(record))))
    return records


def queue_lengths(messages) -> list[int]:
    return [m["data"]["status"]["exec_info"]["queue_remaining"] for m in messages if m.get("type") == "status"]


def test_a_job_behind_another_clients_gets_the_same_messages_as_on_the_real_server(replayed_waiting):
    """While someone else's job runs ours hears only the queue's length changing; then its own job."""
    real, standin = recorded("queue_waiting"), replayed_waiting["queue_waiting"]
    assert sequence(standin["messages"]) == sequence(real["messages"])
    assert queue_lengths(standin["messages"]) == queue_lengths(real["messages"]) == [1, 1, 2, 1, 1, 0]

    def roles(record):
        names = {record["theirs"]: "theirs", record["ours"]: "ours"}
        return {lane: [names[item[1]] for item in items] for lane, items in record["queue_after_post"]["body"].items()}

    assert roles(standin) == roles(real) == {"queue_running": ["theirs"], "queue_pending": ["ours"]}
    for record in (real, standin):  # POST /prompt numbers the queue: ours comes after theirs
        assert record["our_answer"]["body"]["number"] > record["their_answer"]["body"]["number"]


def test_the_first_job_loads_the_checkpoint_like_the_real_server(replayed_waiting):
    """Nothing is cached yet: the checkpoint loader runs first, and it is what takes the time."""
    real, standin = recorded("model_loading"), replayed_waiting["model_loading"]
    assert sequence(standin["messages"]) == sequence(real["messages"])

    def slowest_node_before_the_first_step(messages):
        timed = [(m["t"], m) for m in messages if "binary" not in m]
        first_step = next(t for t, m in timed if m.get("type") == "progress")
        nodes = [(t, m["data"]["node"]) for t, m in timed if m.get("type") == "executing" and t < first_step]
        gaps = [(later[0] - earlier[0], earlier[1]) for earlier, later in zip(nodes, nodes[1:] + [(first_step, None)])]
        return max(gaps)[1]

    assert slowest_node_before_the_first_step(standin["messages"]) == "1"
    assert slowest_node_before_the_first_step(real["messages"]) == "1"


def test_a_stopped_server_answers_nothing_and_goes_on_like_the_real_one():
    """hang() is what the client tests use for a server stopped with SIGSTOP: the connection is taken,
    nothing is answered (not even a ping), and all of it is answered once it goes on."""
    with StandIn([CHECKPOINT]) as server:
        records = {}
        record_stopped(server.url, CHECKPOINT, "stand-in", stop=server.hang, resume=server.unhang, wait=1.0,
                       sink=records.__setitem__)
    real, standin = recorded("stopped_server"), records["stopped_server"]

    def outcomes(record):
        return {key: {k: v for k, v in value.items() if k != "seconds"}
                for key, value in record.items() if isinstance(value, dict)}

    assert outcomes(standin) == outcomes(real)
    assert outcomes(real)["tcp_connect"] == {"result": "connected"}
    assert outcomes(real)["open_websocket_after_sigcont"] == {"result": {"pong": "stopped?"}}
