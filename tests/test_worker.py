"""The worker thread on the tiny model: cancelling, stopping, loading during a run, closing during a load."""

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from sketchpad.backends import loading
from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import GenerationParams
from sketchpad.core.result_archive import ResultArchive
from sketchpad.core.storage import read_png_parameters
from sketchpad.core.errors import FailureKind
from sketchpad.qimages import pil_to_qimage
from sketchpad.worker import GenerationWorker

from slow_hub import SlowHub

WAIT_MS = 60_000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def sketch(stick_figure):
    return pil_to_qimage(stick_figure)


def params(steps=2, **changes):
    return GenerationParams(prompt="a knight", steps=steps, scheduler="euler", seed=7, **changes)


class Recorder:
    """Every worker signal as the GUI thread receives it, in order."""

    def __init__(self, worker):
        self.events = []
        worker.model_ready.connect(lambda name, device: self.events.append(("ready", name, device)))
        worker.model_failed.connect(lambda reason: self.events.append(("model_failed", reason)))
        worker.step_preview.connect(lambda rid, step, total, image: self.events.append(("step", rid, step)))
        worker.result_ready.connect(lambda outcome: self.events.append(("result", outcome.request_id, outcome)))
        worker.request_failed.connect(lambda rid, reason: self.events.append(("failed", rid, reason)))
        worker.request_cancelled.connect(lambda rid: self.events.append(("cancelled", rid)))
        worker.notice.connect(lambda text: self.events.append(("notice", text)))

    def of(self, kind, rid=None):
        return [e for e in self.events if e[0] == kind and (rid is None or e[1] == rid)]


@pytest.fixture
def worker(qtbot):
    made = GenerationWorker()
    yield made
    made.stop()


class GatedLoader:
    """The real loader, held at a gate until the test opens it: a load that takes as long as we like."""

    def __init__(self, monkeypatch):
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.opened = []  # every backend the real loader returned
        real = loading.open_backend

        def gated(*args, **kwargs):
            self.entered.set()
            self.gate.wait(30)
            backend = real(*args, **kwargs)
            self.opened.append(backend)
            return backend

        monkeypatch.setattr(loading, "open_backend", gated)


def load(qtbot, worker, model_dir):
    with qtbot.waitSignal(worker.model_ready, timeout=WAIT_MS):
        worker.load_model(str(model_dir), "cpu")


# --- stop() ------------------------------------------------------------------------------------------------


def test_stop_on_a_worker_that_never_ran_starts_no_thread(qtbot):
    worker = GenerationWorker()
    started = []
    worker.started.connect(lambda: started.append(1), Qt.ConnectionType.DirectConnection)
    worker.stop()
    assert started == [] and not worker.isFinished()  # finished would mean it was started to be stopped
    worker.request(params(), QImage(8, 8, QImage.Format.Format_RGB32))
    worker.load_model("anything", "cpu")
    assert started == [] and not worker.isRunning()  # a stopped worker stays stopped


def test_stop_during_a_slow_load_returns_at_once_and_the_late_model_is_closed(qtbot, monkeypatch, tiny_model_dir):
    loader = GatedLoader(monkeypatch)
    closed = []
    real_close = loading.close_backend
    monkeypatch.setattr(loading, "close_backend", lambda backend: (closed.append(backend), real_close(backend)))
    worker = GenerationWorker()
    events = Recorder(worker)
    worker.load_model(str(tiny_model_dir), "cpu")
    assert loader.entered.wait(10)
    began = time.monotonic()
    worker.stop()
    took = time.monotonic() - began
    assert took < 2.0 and not worker.isRunning()
    loader.gate.set()  # the load finishes after the window has gone
    qtbot.waitUntil(lambda: len(closed) == 1, timeout=WAIT_MS)
    assert closed == loader.opened  # the loaded-too-late model was closed, never used
    qtbot.wait(100)
    assert events.of("ready") == []


# --- cancel() ----------------------------------------------------------------------------------------------


def test_a_slot_on_request_cancelled_may_request_again(tmp_path):
    """cancel() used to emit while holding the mutex: a slot calling request() deadlocked the GUI.

    Run in a child process so that a deadlock fails the test instead of hanging the suite.
    """
    script = textwrap.dedent("""
        import threading
        from PySide6.QtGui import QGuiApplication, QImage
        from sketchpad.backends import loading
        from sketchpad.core.errors import SketchpadError
        from sketchpad.core.params import GenerationParams
        from sketchpad.worker import GenerationWorker

        app = QGuiApplication([])
        gate, entered = threading.Event(), threading.Event()
        def busy_loading(*args, **kwargs):  # keeps the worker busy so the request stays queued
            entered.set()
            gate.wait(30)
            raise SketchpadError("no model in this test")
        loading.open_backend = busy_loading
        worker = GenerationWorker()
        worker.load_model("x", "cpu")
        entered.wait(30)
        sketch = QImage(8, 8, QImage.Format.Format_RGB32)
        params = GenerationParams(prompt="a")
        again = []
        worker.request_cancelled.connect(lambda rid: again.append(worker.request(params, sketch)))
        first = worker.request(params, sketch)
        worker.cancel()
        print("requested again:", again, "after cancelling", first, flush=True)
        gate.set()
        worker.stop()
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    try:
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("cancel() deadlocked when a slot on request_cancelled called request()")
    assert done.returncode == 0, done.stderr
    assert "requested again: [2] after cancelling 1" in done.stdout


def test_cancelling_a_queued_request_says_so_once_and_it_never_runs(qtbot, monkeypatch, worker, tiny_model_dir, sketch):
    loader = GatedLoader(monkeypatch)
    events = Recorder(worker)
    worker.load_model(str(tiny_model_dir), "cpu")
    assert loader.entered.wait(10)
    queued = worker.request(params(), sketch)  # waits for the model
    worker.cancel()
    assert events.of("cancelled") == [("cancelled", queued)]  # said at once, by cancel() itself
    with qtbot.waitSignal(worker.model_ready, timeout=WAIT_MS):
        loader.gate.set()
    with qtbot.waitSignal(worker.result_ready, timeout=WAIT_MS):
        later = worker.request(params(), sketch)
    assert events.of("step", queued) == [] and events.of("result", queued) == []
    assert events.of("cancelled") == [("cancelled", queued)]
    assert [e[1] for e in events.of("result")] == [later]


def test_cancelling_a_run_in_flight_and_a_queued_one_cancels_each_once(qtbot, worker, tiny_model_dir, sketch):
    load(qtbot, worker, tiny_model_dir)
    events = Recorder(worker)
    with qtbot.waitSignal(worker.step_preview, timeout=WAIT_MS):
        running = worker.request(params(steps=300), sketch)
    queued = worker.request(params(steps=300), sketch)
    worker.cancel()
    qtbot.waitUntil(lambda: {e[1] for e in events.of("cancelled")} == {running, queued}, timeout=WAIT_MS)
    qtbot.wait(200)
    assert sorted(e[1] for e in events.of("cancelled")) == [running, queued]
    assert events.of("result") == []


# --- loading a model ---------------------------------------------------------------------------------------


def test_loading_a_model_during_a_run_abandons_it_and_a_request_made_meanwhile_runs_on_the_new_one(
        qtbot, worker, tiny_model_dir, sketch):
    load(qtbot, worker, tiny_model_dir)
    first_engine = weakref.ref(worker._engine)
    events = Recorder(worker)
    with qtbot.waitSignal(worker.step_preview, timeout=WAIT_MS):
        running = worker.request(params(steps=300), sketch)
    worker.load_model(str(tiny_model_dir), "cpu")
    waiting = worker.request(params(), sketch)  # made while the new model loads: it waits for it
    qtbot.waitUntil(lambda: bool(events.of("result")), timeout=WAIT_MS)
    kinds = [e[0] for e in events.events if e[0] != "step" or e[1] == waiting]
    assert kinds.index("cancelled") < kinds.index("ready") < kinds.index("result")
    assert events.of("cancelled") == [("cancelled", running)] and events.of("result")[0][1] == waiting
    assert events.of("ready") == [("ready", tiny_model_dir.name, "cpu (fp32)")]
    gc.collect()
    assert first_engine() is None  # the worker kept no reference to the old model


def test_switching_models_frees_the_old_weights_before_the_new_ones_load(qtbot, monkeypatch, worker,
                                                                          tiny_model_dir):
    order = []
    real_open, real_close = loading.open_backend, loading.close_backend

    def opening(*args, **kwargs):
        order.append("open")
        backend = real_open(*args, **kwargs)
        order.append("opened")
        return backend

    closing = lambda backend: (order.append("close"), real_close(backend))
    monkeypatch.setattr(loading, "open_backend", opening)
    monkeypatch.setattr(loading, "close_backend", closing)
    load(qtbot, worker, tiny_model_dir)
    old_unet = weakref.ref(worker._engine.pipe.unet)
    alive_when_the_next_load_began = []
    monkeypatch.setattr(loading, "open_backend", lambda *args, **kwargs: (
        alive_when_the_next_load_began.append(old_unet() is not None), opening(*args, **kwargs))[1])
    load(qtbot, worker, tiny_model_dir)
    assert order == ["open", "opened", "close", "open", "opened"]
    assert alive_when_the_next_load_began == [False]  # freed by reference counting alone, no collection


def test_a_model_that_fails_to_load_leaves_no_model_and_says_why(qtbot, worker, tiny_model_dir, tmp_path, sketch):
    load(qtbot, worker, tiny_model_dir)
    with qtbot.waitSignal(worker.model_failed, timeout=WAIT_MS) as failed:
        worker.load_model(str(tmp_path / "missing"), "cpu")
    assert "model not found" in failed.args[0].message and "\n" not in failed.args[0].message
    assert failed.args[0].kind is FailureKind.MODEL
    assert not worker.has_model()
    with qtbot.waitSignal(worker.request_failed, timeout=WAIT_MS) as refused:
        worker.request(params(), sketch)
    assert "no model" in refused.args[1].message and refused.args[1].kind is FailureKind.MODEL


def test_a_server_that_is_not_running_is_one_line():
    import socket

    with socket.socket() as probe:  # a port nothing listens on (8188 may hold a real server)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SketchpadError) as error:
        loading.open_backend(None, "cpu", lambda line: None, server=f"http://127.0.0.1:{port}")
    assert "\n" not in str(error.value) and f"127.0.0.1:{port}" in str(error.value)


# --- results kept --------------------------------------------------------------------------------------------


def test_each_result_is_kept_on_the_worker_thread_before_it_is_delivered(qtbot, tmp_path, tiny_model_dir, sketch):
    archive = ResultArchive(tmp_path / "kept", max_bytes=50_000_000)
    writers = []
    real_add = archive.add
    archive.add = lambda image, info, **kw: (writers.append(threading.get_ident()), real_add(image, info, **kw))[1]
    worker = GenerationWorker(archive=archive)
    try:
        load(qtbot, worker, tiny_model_dir)
        on_arrival = []
        worker.result_ready.connect(lambda outcome: on_arrival.append(outcome.archived.is_file()))
        with qtbot.waitSignal(worker.result_ready, timeout=WAIT_MS) as delivered:
            worker.request(params(), sketch)
    finally:
        worker.stop()
    outcome = delivered.args[0]
    assert on_arrival == [True]  # on disk by the time the window hears of it
    assert writers and writers[0] != threading.get_ident()  # PNG encoding never on the GUI thread
    assert archive.entries() == [outcome.archived]
    assert read_png_parameters(outcome.archived) == outcome.info


def test_a_result_that_cannot_be_kept_is_still_delivered_with_one_line_notice(qtbot, tmp_path, tiny_model_dir,
                                                                              sketch):
    blocked = tmp_path / "kept"
    blocked.write_bytes(b"a file where the folder should be")
    worker = GenerationWorker(archive=ResultArchive(blocked, max_bytes=50_000_000))
    events = Recorder(worker)
    try:
        load(qtbot, worker, tiny_model_dir)
        with qtbot.waitSignal(worker.result_ready, timeout=WAIT_MS) as delivered:
            worker.request(params(), sketch)
    finally:
        worker.stop()
    assert delivered.args[0].archived is None and not delivered.args[0].image.isNull()
    notices = [e[1] for e in events.of("notice")]
    assert len(notices) == 1 and "not kept" in notices[0] and "\n" not in notices[0]
    assert os.listdir(tmp_path) == ["kept"]


# --- quitting the real app during a download -------------------------------------------------------------------


def test_quitting_the_app_during_a_model_download_exits_promptly_and_cleanly(tmp_path):
    """The real entry (main.py) downloading a model from a Hub that trickles; the window is closed mid-download."""
    hub = SlowHub()
    # the real entry, with one addition: closing every window when the test says so, as Ctrl+Q does
    driver = textwrap.dedent("""
        import runpy, sys, threading, time
        from PySide6.QtCore import QObject, Qt, Signal
        from PySide6.QtWidgets import QApplication

        app = QApplication(["main.py"])
        class Closer(QObject):
            close_all = Signal()
        closer = Closer()
        closer.close_all.connect(app.closeAllWindows, Qt.ConnectionType.QueuedConnection)
        def wait_for_the_word():
            sys.stdin.readline()
            closer.close_all.emit()
        threading.Thread(target=wait_for_the_word, daemon=True).start()
        sys.argv = ["main.py", "--model", "someone/sd15", "--device", "cpu"]
        runpy.run_path("main.py", run_name="__main__")
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0",
               HF_HOME=str(tmp_path / "hf"), HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    app = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO, env=env, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.big_download_started.wait(120), "the app never started downloading"
        time.sleep(0.5)
        began = time.monotonic()
        app.stdin.write("close\n")
        app.stdin.flush()
        try:
            out, err = app.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the app did not quit while its model was downloading")
        took = time.monotonic() - began
    finally:
        app.kill()
        app.wait()
        hub.close()
    print(f"quit during a download took {took:.2f} s")
    assert app.returncode == 0, err
    assert "QThread: Destroyed" not in err and "Traceback" not in err and "Fatal" not in err
