"""Opt-in: `generate --server` and the window against a real ComfyUI server, as a person uses them.
Collected only when SKETCHPAD_COMFY_URL names a server that nobody else is using (the tests look at
its whole queue). See the README."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest
from PIL import Image, ImageDraw

if not os.environ.get("SKETCHPAD_COMFY_URL"):
    pytest.skip("set SKETCHPAD_COMFY_URL to a ComfyUI server's address to run these", allow_module_level=True)

from sketchpad import cli  # noqa: E402
from sketchpad.core.storage import read_png_parameters  # noqa: E402
from tests.test_comfy_app import open_window  # noqa: E402
from tests.test_comfy_cli import ctrl_c_after_the_first_step, start_generate  # noqa: E402
from tests.window_harness import WAIT_MS, draw_line, generate_and_wait, started  # noqa: E402

URL = os.environ["SKETCHPAD_COMFY_URL"].rstrip("/")


def server_json(path: str):
    with urllib.request.urlopen(URL + path, timeout=10) as answer:
        return json.loads(answer.read())


def checkpoint() -> str:
    info = server_json("/object_info/CheckpointLoaderSimple")["CheckpointLoaderSimple"]
    names = info["input"]["required"]["ckpt_name"][0]
    return os.environ.get("SKETCHPAD_COMFY_MODEL") or names[0]


def queue_is_empty(limit: float = 15.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        queue = server_json("/queue")
        if not queue["queue_running"] and not queue["queue_pending"]:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def drawing(tmp_path):
    path = tmp_path / "sketch.png"
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).line((8, 56, 32, 8, 56, 56), fill="black", width=3)
    image.save(path)
    return path


def test_generate_saves_the_servers_picture_with_its_settings_and_a_preview_per_step(tmp_path, drawing):
    out, previews = tmp_path / "result.png", tmp_path / "steps"
    process = start_generate(str(drawing), "--prompt", "a tent", "--server", URL, "--model", checkpoint(),
                             "--steps", "4", "--strength", "0.6", "--seed", str(int(time.time())),
                             "--out", str(out), "--previews", str(previews))
    err = process.stderr.read()
    assert process.wait(120) == 0, err
    info = read_png_parameters(out)
    assert info.model_name == checkpoint() and info.params.steps == 4 and info.params.strength == 0.6
    assert sorted(p.name for p in previews.iterdir()) == [f"step-{n:03d}.png" for n in (1, 2, 3, 4)]
    assert "Traceback" not in err


def test_generate_with_a_checkpoint_the_server_lacks_is_one_line_and_exit_2(tmp_path, drawing):
    process = start_generate(str(drawing), "--prompt", "x", "--server", URL, "--model", "nope.safetensors",
                             "--out", str(tmp_path / "r.png"))
    err = process.stderr.read()
    assert process.wait(60) == cli.EXIT_ERROR and err.count("\n") == 1 and "nope.safetensors" in err
    assert not (tmp_path / "r.png").exists()


def test_generate_says_why_it_waits_and_takes_a_checkpoint_named_without_its_extension(tmp_path, drawing):
    from tests.test_comfy_real import someone_elses_job

    someone_elses_job(checkpoint(), steps=8)
    stem = checkpoint().rsplit("/", 1)[-1].rsplit(".", 1)[0]
    process = start_generate(str(drawing), "--prompt", "a tent", "--server", URL, "--model", stem, "--steps", "2",
                             "--seed", str(int(time.time())), "--out", str(tmp_path / "r.png"))
    err = process.stderr.read()
    assert process.wait(180) == 0, err
    lines = err.splitlines()
    assert lines.count("waiting: 1 job ahead on the server") == 1
    assert lines.index("waiting: 1 job ahead on the server") < lines.index("step 1/2")
    assert read_png_parameters(tmp_path / "r.png").model_name == checkpoint()


def test_ctrl_c_in_generate_leaves_nothing_on_the_server(tmp_path, drawing):
    process = start_generate(str(drawing), "--prompt", "x", "--server", URL, "--steps", "300",
                             "--seed", str(int(time.time())), "--out", str(tmp_path / "r.png"))
    rest = ctrl_c_after_the_first_step(process)
    assert process.wait(30) == cli.EXIT_INTERRUPTED and "Traceback" not in rest
    assert queue_is_empty() and not (tmp_path / "r.png").exists()


@pytest.fixture
def window(qtbot, tmp_path):
    made = started(qtbot, open_window(qtbot, tmp_path, server=URL, model=checkpoint()))
    yield made
    made.close()


def test_the_window_paints_on_the_server_with_a_preview_per_step_and_saves_it(qtbot, window):
    assert window.device_label.text().startswith(f"ComfyUI {URL} · ") and window.device_label.text().endswith("· ready")
    draw_line(qtbot, window.canvas, (5, 5), (50, 40))
    outcome, steps = generate_and_wait(qtbot, window)
    assert [s[1] for s in steps] == [1, 2, 3] and all(not s[3].isNull() for s in steps)
    saved = window.files.save_result()
    assert read_png_parameters(saved).model_name == checkpoint()


def test_live_newest_wins_and_esc_and_quit_leave_nothing_on_the_server(qtbot, window):
    window.panel.set_params(window.panel.params().replace(steps=300))  # long enough to be stopped mid-run
    draw_line(qtbot, window.canvas, (5, 5), (50, 40))
    with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
        window.generate()
    window.panel.set_params(window.panel.params().replace(steps=3))
    window.panel.set_live(True)
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS) as result:
        window.panel.dial.setValue(window.panel.dial.value() - 10)  # a newer request: the stale one stops
    assert result.args[0].request_id == window.session.run.request_id
    assert queue_is_empty()

    window.panel.set_live(False)
    window.panel.set_params(window.panel.params().replace(steps=300))
    with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
        window.generate()
    with qtbot.waitSignal(window.worker.request_cancelled, timeout=WAIT_MS):
        window.actions["cancel"].trigger()  # Esc
    assert queue_is_empty()

    with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
        window.generate()
    window.close()  # quitting mid-run
    assert queue_is_empty()
