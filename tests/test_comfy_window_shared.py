"""The window on a shared ComfyUI server (the stand-in): it says why a run waits, offers the server's
own LoRAs and ControlNets, flags a name the server lacks as soon as it is typed, never pays twice for
the same picture, and the quit question says that closing stops the server's job."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.comfy_standin import StandIn
from tests.test_comfy_app import MODEL, open_window
from tests.test_comfy_waiting import someone_elses_job
from tests.window_harness import WAIT_MS, draw_line, generate_and_wait, started

LORAS = ("ink.safetensors", "styles/watercolour.safetensors")
CONTROLNETS = ("control_v11p_sd15_scribble.safetensors",)


@pytest.fixture
def server():
    with StandIn([MODEL], loras=LORAS, controlnets=CONTROLNETS, step_seconds=0.05) as running:
        yield running


def on_server(qtbot, tmp_path, server):
    return started(qtbot, open_window(qtbot, tmp_path, server=server.url, model=MODEL))


def test_a_run_behind_another_clients_jobs_says_how_many_are_ahead(qtbot, tmp_path, server):
    window = on_server(qtbot, tmp_path, server)
    someone_elses_job(server, steps=20)
    someone_elses_job(server, steps=4)
    qtbot.waitUntil(lambda: server.running is not None, timeout=WAIT_MS)
    said, captions = [], []
    window.session.status_changed.connect(said.append)
    window.session.run_changed.connect(lambda run: captions.append(window.preview.caption_text()))
    generate_and_wait(qtbot, window)
    waited = [line for line in said if line.startswith("waiting")]
    assert waited[:2] == ["waiting: 2 jobs ahead on the server", "waiting: 1 job ahead on the server"]
    assert "waiting: 2 jobs ahead on the server" in captions  # under the picture as well
    assert window.state_text().startswith("done")
    window.close()


def test_the_servers_loras_and_controlnets_are_offered_and_a_missing_one_is_flagged_when_typed(qtbot, tmp_path,
                                                                                               server):
    window = on_server(qtbot, tmp_path, server)
    panel = window.panel
    assert panel.presets.lora_edit.completer().model().stringList() == list(LORAS)
    panel.lines.checkbox.setChecked(True)
    offered = [action for action in panel.lines.choose_menu.actions() if action.isVisible()]
    assert [action.text() for action in offered] == list(CONTROLNETS)  # the server's files, not this computer's
    offered[0].trigger()
    assert panel.lines.model_edit.text() == CONTROLNETS[0]
    assert "server" in panel.lines.model_edit.placeholderText()
    # the completion finishes the entry after the last comma
    panel.presets.lora_edit.setFocus()
    QTest.keyClicks(panel.presets.lora_edit, "ink:0.5, water")
    completer = panel.presets.lora_edit.completer()
    assert completer.completionCount() == 1  # matched on "water", in a sub-folder
    assert completer.currentCompletion() == "ink:0.5, " + LORAS[1]  # the earlier entries kept
    # a LoRA the server lacks is said as soon as the entry is finished, before any Generate
    panel.presets.lora_edit.setText("")
    QTest.keyClicks(panel.presets.lora_edit, "charcoal:0.7")
    QTest.keyClick(panel.presets.lora_edit, Qt.Key.Key_Return)
    assert window.preview.error_text().startswith("the ComfyUI server has no LoRA charcoal; it has: ink.safetensors")
    assert window.session.run.request_id == 0  # nothing was sent
    panel.presets.lora_edit.setText("watercolour:0.7")  # found in its sub-folder, without the extension
    assert window.preview.error_text() == ""
    window.close()


def test_back_on_this_computer_the_fields_offer_files_again(qtbot, tmp_path, server, tiny_model_dir):
    window = on_server(qtbot, tmp_path, server)
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        window.session.load_model(str(tiny_model_dir), "cpu", server_url="")
    panel = window.panel
    assert panel.presets.lora_edit.completer() is None
    offered = [action.text() for action in panel.lines.choose_menu.actions() if action.isVisible()]
    assert offered == ["A .safetensors file…", "A diffusers folder…"]
    window.close()


def test_live_on_a_server_never_pays_twice_for_the_same_steps(qtbot, tmp_path, server):
    window = on_server(qtbot, tmp_path, server)
    window.panel.set_params(window.panel.params().replace(steps=4, seed=7, strength=0.75))
    draw_line(qtbot, window.canvas, (5, 5), (50, 40))
    generate_and_wait(qtbot, window)
    prompts = server.number
    window.panel.set_live(True)
    window.panel.set_denoise(0.8)  # the last 4 of 5 steps again: the same picture
    qtbot.wait(500)
    assert server.number == prompts and len(window.session.history()) == 1
    assert "same picture" in window.panel.denoise_label.text()
    window.close()


def test_the_quit_question_says_that_closing_stops_the_servers_job(qtbot, tmp_path):
    with StandIn([MODEL], step_seconds=0.5) as slow:
        window = started(qtbot, open_window(qtbot, tmp_path, server=slow.url, model=MODEL))
        assert "ComfyUI" not in window.discard_question().informativeText()
        window.panel.set_params(window.panel.params().replace(steps=20))
        with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
            window.generate()
        assert "stops it there" in window.discard_question().informativeText()
        window.close()


@pytest.fixture
def three_servers(monkeypatch):
    monkeypatch.setattr("sketchpad.backends.comfy.client.RECONNECT_DELAYS", (0.0, 0.05))
    with StandIn([MODEL], step_seconds=0.05) as first, StandIn([MODEL], step_seconds=0.05) as second, \
            StandIn(["other.safetensors"], step_seconds=0.05) as lacking:
        yield first, second, lacking


def sweep_on(qtbot, window, servers, values=(0.3, 0.5, 0.7, 0.9), seeds=2):
    with qtbot.waitSignal(window.session.sheet_changed, timeout=WAIT_MS,
                          check_params_cb=lambda sheet: not sheet.active):
        assert window.sweeps.run("denoise", values, seeds, servers=servers)
    return window.session.sheet


def test_a_sweep_shares_its_cells_with_the_servers_listed_and_says_which_cannot_help(qtbot, tmp_path,
                                                                                     three_servers):
    first, second, lacking = three_servers
    window = started(qtbot, open_window(qtbot, tmp_path, server=first.url, model=MODEL))
    window.panel.set_params(window.panel.params().replace(seed=21))
    draw_line(qtbot, window.canvas, (5, 5), (60, 60))
    said = []
    window.session.message.connect(said.append)
    sheet = sweep_on(qtbot, window, (second.url, lacking.url))
    assert len(sheet.done) == 8 and window.session.status_text().startswith("done · 8 pictures")
    assert len(first.finished) >= 2 and len(second.finished) >= 2 and not lacking.finished
    assert any("makes none of this sweep's pictures" in line and "other.safetensors" in line for line in said)
    # each cell is the picture one server alone makes of it
    for cell in (sheet.plan.cells[0], sheet.plan.cells[-1]):
        with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS) as result:
            window.worker.request(cell.params, sheet.sketch)
        assert result.args[0].image == sheet.done[cell].picture()
    window.close()


def test_when_a_listed_server_dies_mid_sweep_the_others_make_its_cells(qtbot, tmp_path, three_servers):
    first, second, _ = three_servers
    window = started(qtbot, open_window(qtbot, tmp_path, server=first.url, model=MODEL))
    window.panel.set_params(window.panel.params().replace(seed=5))
    said = []
    window.session.message.connect(said.append)

    def kill_second_in_its_second_cell():  # while it runs a prompt, so the loss falls on a cell of ours
        deadline = time.monotonic() + 30
        while not (second.finished and second.running) and time.monotonic() < deadline:
            time.sleep(0.005)
        second.kill()

    killer = threading.Thread(target=kill_second_in_its_second_cell)
    killer.start()
    try:
        sheet = sweep_on(qtbot, window, (second.url,))
    finally:
        killer.join()
    assert sheet.status.name == "FINISHED" and len(sheet.done) == len(sheet.plan.cells)  # nothing lost
    assert any("the other servers make its pictures" in line for line in said)
    window.close()


def test_the_servers_listed_for_sweeps_are_checked_and_remembered_without_credentials(qtbot, tmp_path, server):
    window = on_server(qtbot, tmp_path, server)
    dialog = window.sweeps.dialog
    dialog.prepare()
    assert dialog.servers_edit.isVisible() or not dialog.isVisible()
    dialog.servers_edit.setText("http://ann:secret@10.0.0.7:8188, " + server.url)
    dialog.servers_edit.textEdited.emit(dialog.servers_edit.text())
    assert dialog.servers() == ("http://ann:secret@10.0.0.7:8188",)  # the server in use is not listed twice
    assert "2 servers share them" in dialog.summary.text()
    dialog.servers_edit.setText("ftp://x")
    dialog.servers_edit.textEdited.emit("ftp://x")
    assert not dialog.run_button.isEnabled() and "no server address" in dialog.summary.text()
    dialog.servers_edit.setText("http://ann:secret@10.0.0.7:8188")
    window.close()
    settings = window.settings
    settings.sync()
    assert settings.value("sweep_servers") == "http://10.0.0.7:8188"
    reopened = open_window(qtbot, tmp_path)
    assert reopened.sweeps.dialog.servers_edit.text() == "http://10.0.0.7:8188"
    reopened.close()
