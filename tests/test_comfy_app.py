"""The window on a ComfyUI server: a real MainWindow and GenerationWorker against the stand-in
(real HTTP and websocket on 127.0.0.1), driven through the panel's controls as a person would."""

from __future__ import annotations

import time

import pytest
from PIL import Image
from PySide6.QtCore import QTimer

from sketchpad.backends.comfy.checkpoints import list_checkpoints
from sketchpad.core.errors import FailureKind
from sketchpad.core.storage import read_png_parameters
from tests import window_harness
from tests.comfy_standin import StandIn
from tests.window_harness import WAIT_MS, draw_line, generate_and_wait, started

MODEL = "standin-sd15.safetensors"
SECOND = "second.safetensors"


@pytest.fixture
def server():
    with StandIn([MODEL, SECOND]) as running:
        yield running


def open_window(qtbot, tmp_path, **kwargs):
    """A window as the app makes it: the ComfyUI client's checkpoint lookup handed in."""
    return window_harness.open_window(qtbot, tmp_path, lookup_checkpoints=list_checkpoints, **kwargs)


def choose_server(qtbot, window, url):
    picker = window.panel.backend_picker
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        picker.combo.setCurrentIndex(picker.combo.findData("comfyui"))
        picker.combo.activated.emit(picker.combo.currentIndex())  # as a click on the item does
        if picker.url_edit.text() != url:
            picker.url_edit.setText(url)
            picker.connect_button.click()


def listed(window) -> list[str]:
    combo = window.panel.model_picker.combo
    return [combo.itemData(i) for i in range(combo.count())]


def test_choose_a_server_in_the_panel_and_generate_on_its_checkpoint(qtbot, tmp_path, server, tiny_model_dir):
    window = started(qtbot, open_window(qtbot, tmp_path, model=str(tiny_model_dir)))
    assert window.panel.backend_picker.combo.currentText() == "This computer"
    choose_server(qtbot, window, server.url)
    assert listed(window) == [MODEL, SECOND]  # the server's checkpoints, not this computer's models
    assert window.device_label.text() == f"ComfyUI {server.url} · standin · ready"

    combo = window.panel.model_picker.combo  # pick the second checkpoint in the model control
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        combo.setCurrentIndex(1)
        combo.activated.emit(1)
    draw_line(qtbot, window.canvas, (5, 5), (50, 40))
    outcome, steps = generate_and_wait(qtbot, window)
    assert [s[1] for s in steps] == [1, 2, 3]
    assert len(window.preview.step_images()) == 3  # a preview per step, in the preview panel
    assert server.prompts[-1]["prompt"]["1"]["inputs"]["ckpt_name"] == SECOND
    saved = window.files.save_result()
    assert f"Model: {SECOND}" in Image.open(saved).text["parameters"]
    assert read_png_parameters(saved).model_name == SECOND
    window.close()
    assert server.queue_ids() == []


def test_back_to_this_computer_loads_the_local_model_again(qtbot, tmp_path, server, tiny_model_dir):
    window = started(qtbot, open_window(qtbot, tmp_path, model=str(tiny_model_dir)))
    choose_server(qtbot, window, server.url)
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS) as ready:
        picker = window.panel.backend_picker
        picker.combo.setCurrentIndex(picker.combo.findData("local"))
        picker.combo.activated.emit(picker.combo.currentIndex())
    assert window.session.model.loaded_name == tiny_model_dir.name and ready.args[1] == "cpu (fp32)"
    assert window.session.model.model == str(tiny_model_dir)
    assert window.device_label.text() == "Device: cpu (fp32)" and listed(window)[0] == str(tiny_model_dir)
    outcome, _ = generate_and_wait(qtbot, window)
    assert outcome.info.model_name == tiny_model_dir.name
    window.close()


def test_the_server_is_remembered_but_its_credentials_are_never_shown_nor_saved(qtbot, tmp_path):
    with StandIn([MODEL, SECOND], auth="Basic YWxpY2U6czNjcmV0") as server:  # alice:s3cret
        url = server.url.replace("http://", "http://alice:s3cret@")
        window = started(qtbot, open_window(qtbot, tmp_path, server=url, model=SECOND))
        shown = [window.device_label.text(), window.model_label.text(), window.panel.backend_picker.url_edit.text(),
                 window.state_text(), window.statusBar().currentMessage()]
        assert not any("s3cret" in text or "alice" in text for text in shown)
        window.close()

        saved = (tmp_path / "settings.ini").read_text()
        assert server.url in saved and "s3cret" not in saved and "alice" not in saved  # the address, never the password

        again = open_window(qtbot, tmp_path)  # no --server: the remembered one, which asks who we are
        with qtbot.waitSignal(again.worker.model_failed, timeout=WAIT_MS) as failed:
            again.start()
        assert failed.args[0].kind is FailureKind.REFUSED
        assert failed.args[0].message == (f"the ComfyUI server at {server.url} asks for credentials (HTTP 401): put "
                                  "user:password@ in the address or a token in SKETCHPAD_SERVER_TOKEN")
        assert again.session.model.server_model == SECOND  # remembered, for when the credentials come
        again.close()

        third = open_window(qtbot, tmp_path, server=url)  # given again: the remembered checkpoint loads
        with qtbot.waitSignal(third.worker.model_ready, timeout=WAIT_MS) as ready:
            third.start()
        assert ready.args[0] == SECOND and third.device_label.text().startswith(f"ComfyUI {server.url} ·")
        third.close()


def test_a_remembered_server_that_is_down_says_so_and_offers_this_computer(qtbot, tmp_path, tiny_model_dir):
    with StandIn([MODEL]) as gone:
        url = gone.url
    window = open_window(qtbot, tmp_path, server=url)
    window.session.configure_model()  # the local model stays what settings/--model would say
    window.session.restore_model(model=str(tiny_model_dir))
    with qtbot.waitSignal(window.worker.model_failed, timeout=WAIT_MS):
        window.start()
    picker = window.panel.backend_picker
    assert picker.problem_row.isVisibleTo(window) and picker.local_button.isVisibleTo(window)
    assert picker.problem_label.text() == "The server cannot be reached."
    assert window.preview.error_text().startswith(f"cannot reach the ComfyUI server at {url}")
    assert window.state_text() == "error: server unreachable"
    assert window.device_label.text() == f"ComfyUI {url} · unreachable"
    draw_line(qtbot, window.canvas, (5, 5), (60, 60))  # the window is usable
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        picker.local_button.click()
    assert window.session.model.loaded_name == tiny_model_dir.name and not picker.problem_row.isVisibleTo(window)
    window.close()


def test_a_server_killed_mid_run_is_one_line_and_the_next_request_works(qtbot, tmp_path):
    with StandIn([MODEL], step_seconds=0.3) as server:
        window = started(qtbot, open_window(qtbot, tmp_path, server=server.url))
        draw_line(qtbot, window.canvas, (5, 5), (50, 40))
        drawing = window.canvas.image().copy()
        with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
            request = window.generate()
        with qtbot.waitSignal(window.worker.request_failed, timeout=WAIT_MS) as failed:
            server.kill()
        failure = failed.args[1]
        assert failed.args[0] == request and "\n" not in failure.message and failure.kind.server_gone
        assert failure.message.startswith(f"lost the ComfyUI server at {server.url}")
        assert window.canvas.image() == drawing and window.canvas.is_modified()
        assert window.preview.error_text() == failure.message
        assert window.device_label.text() == f"ComfyUI {server.url} · standin · unreachable"

        server.restart()
        server.step_seconds = 0.01
        outcome, steps = generate_and_wait(qtbot, window)
        assert len(steps) == 3 and outcome.info.model_name == MODEL
        assert window.device_label.text() == f"ComfyUI {server.url} · standin · ready"
        window.close()


def test_live_through_the_server_newest_wins_and_esc_leaves_nothing_queued(qtbot, tmp_path):
    with StandIn([MODEL], step_seconds=0.3) as server:
        window = started(qtbot, open_window(qtbot, tmp_path, server=server.url))
        window.panel.set_live(True)
        draw_line(qtbot, window.canvas, (5, 5), (50, 40))
        with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
            pass  # the stroke started a live run
        stale = server.queue_ids()
        assert len(stale) == 1
        server.step_seconds = 0.01
        with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS) as result:
            window.panel.dial.setValue(window.panel.dial.value() - 10)  # turning the dial: a newer request
        assert result.args[0].request_id == window.session.run.request_id
        assert stale[0] in server.interrupts + server.deleted  # the stale job was stopped, by its id
        assert None not in server.interrupts  # never a global interrupt

        server.step_seconds = 0.3
        with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
            window.generate()
        running = server.queue_ids()
        with qtbot.waitSignal(window.worker.request_cancelled, timeout=WAIT_MS):
            window.actions["cancel"].trigger()  # Esc
        qtbot.waitUntil(lambda: server.queue_ids() == [], timeout=WAIT_MS)
        assert running[0] in server.interrupts + server.deleted

        with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
            window.generate()
        window.close()  # quitting mid-run
        assert server.queue_ids() == []


def test_the_app_takes_a_server_on_its_command_line(capsys):
    from sketchpad.app import parse_app_args

    args = parse_app_args(["--server", "http://127.0.0.1:8188", "--model", MODEL])
    assert (args.server, args.model) == ("http://127.0.0.1:8188", MODEL)
    with pytest.raises(SystemExit):
        parse_app_args(["--help"])
    assert "--server URL" in capsys.readouterr().out


def test_a_server_gone_while_idle_shows_unreachable_and_offers_this_computer(qtbot, tmp_path):
    with StandIn([MODEL]) as server:
        window = started(qtbot, open_window(qtbot, tmp_path, server=server.url))
        server.kill()  # between two pictures: the idle worker notices without being asked
        unreachable = f"ComfyUI {server.url} · standin · unreachable"
        qtbot.waitUntil(lambda: window.device_label.text() == unreachable, timeout=WAIT_MS)
        picker = window.panel.backend_picker
        assert picker.problem_row.isVisibleTo(window) and picker.local_button.isVisibleTo(window)
        with qtbot.waitSignal(window.worker.request_failed, timeout=WAIT_MS):
            window.generate()
        assert window.device_label.text() == unreachable
        assert len(window.state_text()) < 60  # the progress bar's one line, the whole error is above it

        server.restart()  # back without a request, too: the status line says so by itself
        qtbot.waitUntil(lambda: window.device_label.text() == f"ComfyUI {server.url} · standin · ready",
                        timeout=WAIT_MS)
        assert not picker.problem_row.isVisibleTo(window)
        generate_and_wait(qtbot, window)
        window.close()


def test_connecting_to_a_server_that_is_down_changes_nothing(qtbot, tmp_path, tiny_model_dir):
    with StandIn([MODEL]) as gone:
        url = gone.url
    window = started(qtbot, open_window(qtbot, tmp_path, model=str(tiny_model_dir)))
    picker = window.panel.backend_picker
    picker.combo.setCurrentIndex(picker.combo.findData("comfyui"))
    picker.combo.activated.emit(picker.combo.currentIndex())
    picker.url_edit.setText(url)
    picker.connect_button.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith(f"cannot reach the ComfyUI server at {url}"),
                    timeout=WAIT_MS)
    assert not window.session.model.on_server and window.session.model.loaded_name == tiny_model_dir.name
    assert picker.combo.currentData() == "local" and window.device_label.text() == "Device: cpu (fp32)"
    window.close()


def test_a_model_folder_from_the_file_menu_on_a_server_paints_on_this_computer(qtbot, tmp_path, server,
                                                                                 tiny_model_dir, monkeypatch):
    window = started(qtbot, open_window(qtbot, tmp_path, server=server.url))
    monkeypatch.setattr("sketchpad.ui.window_menus.QFileDialog.getExistingDirectory",
                        lambda *args, **kwargs: str(tiny_model_dir))
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        window.actions["model_folder"].trigger()
    assert window.session.model.loaded_name == tiny_model_dir.name and not window.session.model.on_server
    assert window.session.model.server_model == ""  # the server's checkpoint was not overwritten by a path
    window.close()


def test_live_on_a_server_sends_no_draft_so_a_dial_turn_runs_once(qtbot, tmp_path):
    with StandIn([MODEL]) as server:
        window = started(qtbot, open_window(qtbot, tmp_path, server=server.url))
        window.panel.set_live(True)
        with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS):
            window.panel.dial.setValue(window.panel.dial.value() - 10)
        assert window.session.run.params.draft is False
        qtbot.wait(800)  # past the local engine's refine delay: the server's picture is already final
        assert server.number == 1 and not window.session.run.active
        window.close()


def test_connect_never_freezes_the_window_while_a_server_is_slow_to_answer(qtbot, tmp_path, tiny_model_dir):
    with StandIn([MODEL]) as server:
        window = started(qtbot, open_window(qtbot, tmp_path, model=str(tiny_model_dir)))
        picker = window.panel.backend_picker
        picker.combo.setCurrentIndex(picker.combo.findData("comfyui"))
        picker.url_edit.setText(server.url)
        server.hang()  # it holds every HTTP answer
        clicked = time.monotonic()
        picker.connect_button.click()
        assert time.monotonic() - clicked < 0.5  # the click returned; the question waits on its own thread
        assert window.statusBar().currentMessage() == f"Asking {server.url} for its checkpoints…"
        ticks = []
        QTimer.singleShot(50, lambda: ticks.append(1))
        qtbot.waitUntil(lambda: ticks == [1], timeout=1000)  # the window's event loop keeps running
        with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
            server.unhang()
        assert window.session.model.on_server and listed(window) == [MODEL]
        window.close()


def test_only_the_newest_connect_is_answered(qtbot, tmp_path, tiny_model_dir):
    with StandIn([MODEL]) as first, StandIn([SECOND]) as second:
        window = started(qtbot, open_window(qtbot, tmp_path, model=str(tiny_model_dir)))
        first.hang()
        window.choose_server(first.url)  # slow to answer
        with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS) as ready:
            window.choose_server(second.url)  # the person changed their mind
        assert ready.args[0] == SECOND
        first.unhang()
        qtbot.wait(300)  # the first server's late answer arrives and is dropped
        assert window.session.model.server_url == second.url and listed(window) == [SECOND]
        window.close()


def test_the_connection_going_and_coming_back_leaves_the_shown_result_and_its_caption(qtbot, tmp_path):
    with StandIn([MODEL]) as server:
        window = started(qtbot, open_window(qtbot, tmp_path, server=server.url))
        generate_and_wait(qtbot, window)
        caption = window.preview.caption_text()
        assert caption.startswith("result · ")
        server.kill()
        qtbot.waitUntil(lambda: window.device_label.text().endswith("· unreachable"), timeout=WAIT_MS)
        assert window.preview.caption_text() == caption
        server.restart()
        qtbot.waitUntil(lambda: window.device_label.text().endswith("· ready"), timeout=WAIT_MS)
        assert window.preview.caption_text() == caption
        window.close()


def test_a_server_that_connects_is_on_disk_at_once_so_a_killed_window_starts_there_again(qtbot, tmp_path, server,
                                                                                          tiny_model_dir):
    window = started(qtbot, open_window(qtbot, tmp_path, model=str(tiny_model_dir)))
    choose_server(qtbot, window, server.url)
    on_disk = (tmp_path / "settings.ini").read_text().splitlines()  # what a fresh process reads
    assert {"backend=comfyui", f"server_url={server.url}", f"server_model={MODEL}"} <= set(on_disk)
    window.close()
