"""The window's state lives in the session and the run controller: Generate and Live read the
session's request; a Live draft and its refine are one result; steps that are already on show are
not run again; every message goes when its cause does; Ctrl+S says which picture it saved."""

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QInputDialog

from sketchpad.core.params import GenerationParams
from sketchpad.core.storage import read_png_parameters
from sketchpad.ui.run_controller import RunController
from sketchpad.ui.session import Session
from sketchpad.worker import GenerationWorker
from window_harness import WAIT_MS, draw_line, generate_and_wait, make_window, window  # noqa: F401


def wait_until_idle(qtbot, window):
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)


def test_generate_runs_the_sessions_request_with_the_entry_being_typed(qtbot, window):
    window.session.load_request(window.session.request.replace(prompt="a castle", seed=77))
    window.panel.presets.lora_edit.setFocus()
    QTest.keyClicks(window.panel.presets.lora_edit, "no-such-lora.safetensors:0.5")  # typed, Enter not pressed
    with qtbot.waitSignal(window.worker.request_failed, timeout=WAIT_MS):
        window.generate()  # Ctrl+Return: the typed entry counts, and it names a missing file
    run = window.session.run
    assert run.params.prompt == "a castle" and run.params.seed == 77
    assert run.params.loras[0].source == "no-such-lora.safetensors"
    assert window.session.request == run.params  # one request, in the session


def test_runs_and_live_are_decided_beside_the_session_without_a_window(qtbot, tiny_model_dir):
    """The run controller and the session drive a real worker on their own: the window only wires."""
    session, worker = Session(), GenerationWorker()
    from sketchpad.ui.session import bind_worker

    bind_worker(session, worker)
    sketch = QImage(64, 64, QImage.Format.Format_RGB32)
    sketch.fill(Qt.GlobalColor.white)
    runs = RunController(session, worker, lambda: sketch)
    with qtbot.waitSignal(worker.model_ready, timeout=WAIT_MS):
        session.load_model(str(tiny_model_dir), "cpu")
    runs.set_live(True)
    with qtbot.waitSignal(worker.result_ready, timeout=WAIT_MS):
        session.edit_request(GenerationParams(prompt="a boat", steps=2, scheduler="euler", seed=5))
    qtbot.waitUntil(lambda: session.history() and not session.history()[0].draft, timeout=WAIT_MS)
    assert len(session.history()) == 1 and session.shown.info.params.prompt == "a boat"
    worker.stop()


def test_a_live_dial_turn_leaves_one_entry_and_only_the_refined_picture_is_kept(qtbot, window, tmp_path,
                                                                                 tiny_model_dir):
    window.panel.set_params(window.panel.params().replace(seed=1234))
    window.panel.set_live(True)
    window.panel.set_denoise(0.6)
    qtbot.waitUntil(lambda: window.session.shown is not None and not window.session.shown.draft, timeout=WAIT_MS)
    wait_until_idle(qtbot, window)
    assert len(window.session.history()) == 1 and window.history.count() == 1
    kept = window.session.archive.entries()
    assert len(kept) == 1 and read_png_parameters(kept[0]).params.strength == 0.6
    assert "draft" not in window.history.list_widget.item(0).toolTip()
    window.close()
    again = make_window(qtbot, tmp_path, str(tiny_model_dir))
    assert len(again.session.history()) == 1  # a draft was never kept, so never comes back
    again.worker.stop()


def test_dial_values_that_run_the_same_steps_are_one_picture(qtbot, window):
    """4 steps at denoise 0.75 and 0.80 both run the last 4 steps of a 5-step schedule."""
    window.panel.set_params(window.panel.params().replace(steps=4, seed=99, strength=0.75))
    outcome, _ = generate_and_wait(qtbot, window)
    runs = window.session.run.request_id
    window.panel.set_live(True)
    window.panel.set_denoise(0.8)
    qtbot.wait(400)  # past the debounce: nothing was sent
    assert window.session.run.request_id == runs and len(window.session.history()) == 1
    assert "same picture" in window.panel.denoise_label.text()
    window.panel.set_denoise(0.7)  # int(4 / 0.7) = 5 as well
    qtbot.wait(400)
    assert window.session.run.request_id == runs
    window.panel.set_denoise(0.5)  # 8 steps: another picture
    assert "same picture" not in window.panel.denoise_label.text()
    qtbot.waitUntil(lambda: window.session.run.request_id > runs, timeout=5000)
    wait_until_idle(qtbot, window)


def test_a_new_run_drops_the_old_cancelled_and_replay_marks_at_once(qtbot, window):
    generate_and_wait(qtbot, window)
    window.preview.scrubber.setValue(1)
    assert "replay" in window.preview.caption_text()
    window.panel.set_params(window.panel.params().replace(steps=60))
    window.generate()
    assert "replay" not in window.preview.caption_text()  # before its first step
    qtbot.waitUntil(lambda: window.session.run.step >= 1, timeout=WAIT_MS)
    window.cancel()
    wait_until_idle(qtbot, window)
    assert "cancelled" in window.preview.caption_text() and window.preview.is_cancelled()
    window.generate()
    assert "cancelled" not in window.preview.caption_text() and not window.preview.is_cancelled()
    window.cancel()
    wait_until_idle(qtbot, window)


def test_ctrl_s_over_a_cancelled_run_says_which_picture_it_saved(qtbot, window):
    outcome, _ = generate_and_wait(qtbot, window)
    window.panel.set_params(window.panel.params().replace(steps=60, prompt="a dragon"))
    window.generate()
    qtbot.waitUntil(lambda: window.session.run.step >= 1, timeout=WAIT_MS)
    window.cancel()
    wait_until_idle(qtbot, window)
    saved = window.files.save_result()
    message = window.statusBar().currentMessage()
    assert read_png_parameters(saved).params.seed == outcome.info.params.seed
    assert f"seed {outcome.info.params.seed}" in message and "a knight" in message
    assert "did not finish" in message
    window.session.show(window.session.history()[0])  # the finished picture on show: said plainly
    window.files.save_result()
    assert "did not finish" not in window.statusBar().currentMessage()


def test_a_budget_of_zero_after_a_restart_keeps_every_listed_picture(qtbot, window, tmp_path, tiny_model_dir,
                                                                    monkeypatch):
    """Reproduced: three results, a restart, budget set to 0: no files were left and the history's
    pictures (kept only on disk) were null images."""
    for prompt in ("a red barn", "a blue boat", "a green tree"):
        window.panel.set_params(window.panel.params().replace(prompt=prompt))
        generate_and_wait(qtbot, window)
    window.close()
    again = make_window(qtbot, tmp_path, str(tiny_model_dir))
    monkeypatch.setattr(QInputDialog, "getInt", lambda *args: (0, True))
    again.actions["kept_space"].trigger()
    assert again.session.archive.max_bytes == 0
    assert [entry.picture().isNull() for entry in again.session.history()] == [False] * 3
    again.worker.stop()


def test_live_on_the_dial_says_a_bad_entry_once_and_the_message_goes_when_fixed(qtbot, window):
    window.panel.lines.checkbox.setChecked(True)  # Keep my lines with no model yet
    window.panel.set_live(True)
    window.panel.set_denoise(0.5)
    qtbot.waitUntil(lambda: "ControlNet" in window.preview.error_text(), timeout=5000)
    window.panel.lines.checkbox.setChecked(False)
    assert window.preview.error_text() == "" and window.preview.error_bar.isHidden()
    wait_until_idle(qtbot, window)
