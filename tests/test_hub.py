"""Hub weights without a network, as a real person meets it: HF_HUB_OFFLINE unset and the Hub
unreachable (a port that never answers, one that refuses). Within PROBE_SECONDS, one line says which
weights are missing and how to get them; nothing retries. Downloaded weights need no network at all."""

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import constants
from PIL import Image

from sketchpad.core import hub
from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams, LoraSpec
from sketchpad.core.presets import LCM_LORA, apply_preset
from sketchpad.core.families import SD15
from sketchpad.core.sources import (LORA_HUB_FILE, TAESD_HUB_ID, hub_reference, resolve_control_source,
                                    resolve_lora_source, resolve_model_source, taesd_source)
from unreachable_hub import put_in_cache, refusing_endpoint, silent_endpoint

ROOT = Path(__file__).resolve().parent.parent
SCRIBBLE = "lllyasviel/control_v11p_sd15_scribble"
ENDPOINTS = {"never answers": silent_endpoint, "refuses": refusing_endpoint}
SLACK = 0.5  # seconds for the work around the probe on a busy machine


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """As every real user: HF_HUB_OFFLINE unset, an empty Hugging Face cache; `use(endpoint)` points
    the Hub there. (The libraries read HF_HUB_OFFLINE once at import; the gate decides before them.)"""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return lambda endpoint: monkeypatch.setattr(constants, "ENDPOINT", endpoint)


# ---- one resolver ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,reference", [
    ("owner/name", ("owner/name", None)),
    ("owner/name/sub/file.safetensors", ("owner/name", "sub/file.safetensors")),
    ("owner/name/notes.txt", None), ("folder/file.safetensors", None), ("/abs/owner/name", None),
    ("./owner/name", None), ("~/owner/name", None), ("C:/models/x", None), ("owner\\name", None), ("name", None),
])
def test_one_rule_says_what_is_a_hugging_face_id(text, reference):
    assert hub_reference(text) == reference


def test_every_kind_of_weights_reads_an_id_the_same_way(tmp_path, monkeypatch):
    assert resolve_model_source("owner/name").kind == resolve_control_source("owner/name").kind == "hub"
    assert resolve_lora_source("owner/name").files == (LORA_HUB_FILE,)
    assert taesd_source(TAESD_HUB_ID).kind == "hub"
    (tmp_path / "owner").mkdir()  # a folder here: "owner/name" is a missing path, for every kind alike
    monkeypatch.chdir(tmp_path)
    for resolve in (resolve_model_source, resolve_lora_source, resolve_control_source, taesd_source):
        with pytest.raises(SketchpadError, match="not found") as raised:
            resolve("owner/name")
        assert raised.value.kind is FailureKind.MODEL


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".pkl"])
def test_every_kind_refuses_the_same_pickles(suffix):
    for resolve in (resolve_model_source, resolve_lora_source, resolve_control_source):
        with pytest.raises(SketchpadError, match="pickled") as raised:
            resolve(f"weights{suffix}")
        assert raised.value.kind is FailureKind.MODEL
    for spec in (LoraSpec(f"style{suffix.upper()}"), ControlSpec(f"lines{suffix}")):
        with pytest.raises(SketchpadError, match="pickled"):
            spec.validated()


# ---- no network ------------------------------------------------------------------------------------------------


def _missing(error: SketchpadError, name: str) -> str:
    message = str(error)
    assert error.kind is FailureKind.NEEDS_DOWNLOAD, message
    assert name in message and "cannot be reached" in message and "connect" in message and "\n" not in message
    return message


def _timed(call):
    started = time.monotonic()
    try:
        call()
    except SketchpadError as error:
        return error, time.monotonic() - started
    raise AssertionError("no error")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_missing_download_is_one_line_within_the_probe_time(engine, no_network, stick_figure, endpoint,
                                                                   tmp_path):
    from sketchpad.backends.local.models import load_pipeline
    from sketchpad.backends.local.taesd import load_taesd

    request = GenerationParams("a knight", steps=2, seed=1)
    with ENDPOINTS[endpoint]() as url:
        no_network(url)
        error, took = _timed(lambda: engine.generate(apply_preset(request, "lcm"), stick_figure))
        assert "about 135 MB" in _missing(error, LCM_LORA) and took < hub.PROBE_SECONDS + SLACK
        started = time.monotonic()  # the Hub's answer is remembered: the rest need no second wait
        error, _ = _timed(lambda: engine.generate(request.replace(control=ControlSpec(SCRIBBLE)), stick_figure))
        _missing(error, SCRIBBLE)
        error, _ = _timed(lambda: load_pipeline(resolve_model_source("someone/sd15"), torch.device("cpu")))
        _missing(error, "someone/sd15")
        beside_no_taesd = SimpleNamespace(name_or_path=str(tmp_path))  # the tiny model has a taesd folder
        model, problem = load_taesd(beside_no_taesd, SD15, torch.device("cpu"), torch.float32)
        assert model is None and TAESD_HUB_ID in problem and "cannot be reached" in problem
        assert time.monotonic() - started < SLACK * 4


def test_the_hubs_silence_is_found_once_and_remembered(no_network):
    with silent_endpoint() as url:
        no_network(url)
        started = time.monotonic()
        assert not hub.hub_reachable()
        first = time.monotonic() - started
        assert not hub.hub_reachable()
        again = time.monotonic() - started - first
    assert hub.PROBE_SECONDS - SLACK < first < hub.PROBE_SECONDS + SLACK and again < 0.05


def test_a_hub_that_answers_lets_the_download_go_ahead(no_network):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        no_network(f"http://127.0.0.1:{server.server_address[1]}")
        assert hub.local_files_only(resolve_lora_source(LCM_LORA)) is False  # go and download it
    finally:
        server.shutdown()
        server.server_close()


def test_downloaded_weights_need_no_network_and_are_ready(tiny_model_dir, no_network, tiny_lora_file, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline

    # its own pipeline: a LoRA loaded into the shared one would change it for the tests after this one
    engine = Img2ImgEngine(load_pipeline(resolve_model_source(str(tiny_model_dir)), torch.device("cpu")))
    put_in_cache(Path(constants.HF_HUB_CACHE), LCM_LORA, LORA_HUB_FILE, tiny_lora_file)
    with silent_endpoint() as url:
        no_network(url)
        assert hub.preset_readiness("lcm") == "ready"
        result = engine.generate(apply_preset(GenerationParams("a knight", seed=1), "lcm"), stick_figure)
        assert url not in hub._probes  # not even a probe: the cache was enough
    assert [lora.source for lora in result.params.loras] == [LCM_LORA] and result.params.loras[0].short_hash


def test_offline_set_by_the_person_is_said_without_a_probe(monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with silent_endpoint() as url:
        monkeypatch.setattr(constants, "ENDPOINT", url)
        error, took = _timed(lambda: hub.local_files_only(resolve_control_source(SCRIBBLE)))
    assert error.kind is FailureKind.NEEDS_DOWNLOAD and "HF_HUB_OFFLINE" in str(error) and took < 0.5


@pytest.mark.parametrize("endpoint,args,names", [
    ("never answers", ["--preset", "lcm"], [LCM_LORA, "about 135 MB"]),
    ("refuses", ["--preset", "hyper"], ["ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors", "about 269 MB"]),
    ("refuses", ["--control", SCRIBBLE], [SCRIBBLE]),
])
def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path, tiny_model_dir, stick_figure, endpoint, args,
                                                         names):
    stick_figure.save(tmp_path / "stick.png")
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    with ENDPOINTS[endpoint]() as url:
        env.update(HF_ENDPOINT=url, HF_HOME=str(tmp_path / "hf"))
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "generate", str(tmp_path / "stick.png"), "--prompt", "x",
             "--model", str(tiny_model_dir), "--device", "cpu", "--out", str(tmp_path / "out.png"), *args],
            capture_output=True, text=True, timeout=120, env=env,
        )
        took = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert all(name in lines[0] for name in names), lines[0]
    assert not (tmp_path / "out.png").exists()
    print(f"{endpoint}: said in {took:.1f} s, the interpreter's start included")
    assert took < hub.PROBE_SECONDS + 7  # before: 25 s of retries when refused, a hang when silent


# ---- the window's readiness line -------------------------------------------------------------------------------


def test_the_preset_row_says_whether_its_lora_needs_a_download(qtbot, no_network, tiny_lora_file):
    from sketchpad.ui.fast_live_controls import PresetRow

    row = PresetRow()
    qtbot.addWidget(row)
    row.show()
    assert row.readiness_label.isHidden()  # Custom: no LoRA to fetch
    row.set_preset("lcm")
    assert row.readiness_label.text() == "↓ 135 MB" and row.readiness_label.isVisible()
    assert row.readiness_label.toolTip().startswith("Needs a download: about 135 MB.")
    row.set_preset("hyper")
    assert row.readiness_label.text() == "↓ 269 MB"
    row.set_preset("quality")
    assert row.readiness_label.isHidden()
    put_in_cache(Path(constants.HF_HUB_CACHE), LCM_LORA, LORA_HUB_FILE, tiny_lora_file)
    row.set_preset("lcm")
    assert row.readiness_label.text() == "ready"


def test_the_readiness_check_loads_neither_torch_nor_a_backend_nor_the_network(tmp_path):
    code = ("import sys; from sketchpad.ui.fast_live_controls import PresetRow; from sketchpad.core.hub import "
            "preset_readiness; print(preset_readiness('lcm')); "
            "assert not [m for m in sys.modules if m == 'torch' or m.startswith('sketchpad.backends')], 'loaded'")
    with silent_endpoint() as url:
        env = dict(os.environ, HF_ENDPOINT=url, HF_HOME=str(tmp_path / "hf"), QT_QPA_PLATFORM="offscreen")
        env.pop("HF_HUB_OFFLINE")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "needs a download: about 135 MB" and time.monotonic() - started < 15
