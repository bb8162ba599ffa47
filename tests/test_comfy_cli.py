"""`generate --server`: the same saving code and metadata as local runs, one line and exit 2 on faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from sketchpad import cli
from sketchpad.core.storage import read_png_parameters
from tests.comfy_standin import StandIn

MODEL = "standin-sd15.safetensors"
ROOT = Path(__file__).resolve().parent.parent


def sigint_as_at_a_terminal() -> None:
    """A child started from a background job inherits an ignored SIGINT, and Python then never raises
    KeyboardInterrupt: give it Ctrl+C's default, as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_generate(*args: str) -> subprocess.Popen:
    """`main.py generate ARGS` in a child process, offline, its stderr read as text."""
    return subprocess.Popen([sys.executable, "main.py", "generate", *args], cwd=ROOT,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"), stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_at_a_terminal)


def ctrl_c_after_the_first_step(process: subprocess.Popen) -> str:
    """Press Ctrl+C once the first step is reported; what it printed after that."""
    for line in process.stderr:
        if line.startswith("step 1/"):
            break
    process.send_signal(signal.SIGINT)
    return process.stderr.read()


@pytest.fixture
def drawing(tmp_path):
    path = tmp_path / "sketch.png"
    Image.new("RGB", (64, 64), "white").save(path)
    return path


def test_generate_on_a_server_saves_with_a1111_metadata_and_previews(tmp_path, drawing, capsys):
    with StandIn([MODEL]) as server:
        url = server.url.replace("http://", "http://ann:s3cret@")
        server.auth = "Basic YW5uOnMzY3JldA=="  # ann:s3cret
        out, previews = tmp_path / "result.png", tmp_path / "steps"
        code = cli.main(["generate", str(drawing), "--prompt", "a cat", "--server", url, "--model", MODEL,
                         "--steps", "3", "--strength", "0.6", "--seed", "5", "--out", str(out),
                         "--previews", str(previews)])
    assert code == 0
    info = read_png_parameters(out)
    assert info.model_name == MODEL and info.params.seed == 5 and info.params.steps == 3 and info.sampler == "euler"
    assert sorted(p.name for p in previews.iterdir()) == ["step-001.png", "step-002.png", "step-003.png"]
    with Image.open(out) as saved:
        text = saved.text["parameters"]
    printed = capsys.readouterr()
    assert "s3cret" not in text and "s3cret" not in printed.err and "ann" not in text


def test_a_server_that_is_down_exits_2_with_one_line_and_writes_nothing(tmp_path, drawing, capsys):
    with StandIn([MODEL]) as server:
        url = server.url
    out = tmp_path / "result.png"
    code = cli.main(["generate", str(drawing), "--prompt", "a cat", "--server", url, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and err.startswith(f"error: cannot reach the ComfyUI server at {url}")


def test_a_checkpoint_the_server_lacks_exits_2(tmp_path, drawing, capsys):
    with StandIn([MODEL]) as server:
        code = cli.main(["generate", str(drawing), "--prompt", "a cat", "--server", server.url,
                         "--model", "nope.safetensors", "--out", str(tmp_path / "r.png")])
    assert code == 2 and capsys.readouterr().err == (f"error: the ComfyUI server at {server.url} is up but has no "
                                                     f"checkpoint 'nope.safetensors'; it has: {MODEL}\n")


def test_a_checkpoint_named_without_its_extension_is_found_and_saved_by_its_server_name(tmp_path, drawing):
    with StandIn([MODEL]) as server:
        code = cli.main(["generate", str(drawing), "--prompt", "a cat", "--server", server.url,
                         "--model", "standin-sd15", "--steps", "2", "--out", str(tmp_path / "r.png")])
    assert code == 0 and read_png_parameters(tmp_path / "r.png").model_name == MODEL


def test_why_nothing_happens_yet_is_said_once_per_change(tmp_path, drawing, capsys):
    from tests.test_comfy_waiting import someone_elses_job

    with StandIn([MODEL], step_seconds=0.05, load_seconds=0.3) as server:
        someone_elses_job(server, steps=10)  # loads the checkpoint, then keeps the server busy
        assert wait_for_running(server)
        code = cli.main(["generate", str(drawing), "--prompt", "a cat", "--server", server.url, "--steps", "2",
                         "--out", str(tmp_path / "r.png")])
    lines = capsys.readouterr().err.splitlines()
    assert code == 0
    assert lines[lines.index("waiting: 1 job ahead on the server") + 1] == "step 1/2"
    with StandIn([MODEL], load_seconds=0.3) as fresh:
        cli.main(["generate", str(drawing), "--prompt", "a cat", "--server", fresh.url, "--steps", "2",
                  "--out", str(tmp_path / "fresh.png")])
    lines = capsys.readouterr().err.splitlines()
    assert lines[-4:-1] == ["the server is loading the model…", "step 1/2", "step 2/2"]
    assert lines[0] == f"No checkpoint chosen: using the server's first, {MODEL}"


def wait_for_running(server, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while server.running is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.running is not None


def test_ctrl_c_removes_our_prompt_from_the_server(tmp_path, drawing):
    with StandIn([MODEL], step_seconds=0.2) as server:
        process = start_generate(str(drawing), "--prompt", "a cat", "--server", server.url, "--steps", "50",
                                 "--out", str(tmp_path / "r.png"))
        rest = ctrl_c_after_the_first_step(process)
        assert process.wait(30) == cli.EXIT_INTERRUPTED and "Traceback" not in rest
        assert server.queue_ids() == [] and server.finished[-1][1] == "interrupted"
        assert not (tmp_path / "r.png").exists()


def test_generate_on_a_server_never_imports_torch(tmp_path, drawing):
    with StandIn([MODEL]) as server:
        code = ("import sys, runpy; sys.argv = ['main.py', 'generate', %r, '--prompt', 'x', '--server', %r, "
                "'--steps', '2', '--out', %r]\n"
                "from sketchpad import cli\n"
                "code = cli.main(sys.argv[1:])\n"
                "assert code == 0, code\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'PySide6')))"
                % (str(drawing), server.url, str(tmp_path / "r.png")))
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
