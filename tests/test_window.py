"""The window on the tiny model: Live follows every change of the sketch and skips repeats, a PNG
with unreadable settings still opens, saving says what it saved, dialogs start where the pictures
are, and the run's state and step count are said once, in terms a person recognises."""

import struct
import zlib

from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from sketchpad.core.storage import read_png_parameters
from window_harness import WAIT_MS, draw_line, generate_and_wait, window  # noqa: F401  (window: a fixture)


def wait_for_new_run(qtbot, window, after: int) -> int:
    qtbot.waitUntil(lambda: window.session.run.request_id > after, timeout=5000)
    return window.session.run.request_id


def wait_until_idle(qtbot, window):
    qtbot.waitUntil(lambda: not window.session.run.active, timeout=WAIT_MS)


def test_live_regenerates_on_every_change_of_the_sketch(qtbot, window, tmp_path):
    window.panel.set_live(True)
    draw_line(qtbot, window.canvas, (10, 10), (50, 50))
    last = wait_for_new_run(qtbot, window, 0)
    picture = tmp_path / "other.png"
    QImage(64, 64, QImage.Format.Format_RGB32).save(str(picture))
    clip = QImage(64, 64, QImage.Format.Format_RGB32)
    clip.fill(QColor("navy"))
    changes = {
        "undo": window.actions["undo"].trigger,
        "redo": window.actions["redo"].trigger,
        "clear": window.actions["clear"].trigger,
        "paste": lambda: (QGuiApplication.clipboard().setImage(clip), window.actions["paste"].trigger()),
        "open": lambda: window.files.open_sketch(picture),
        "resize": lambda: window.canvas.resize_canvas(64, 72),
    }
    for name, change in changes.items():
        wait_until_idle(qtbot, window)
        change()
        try:
            last = wait_for_new_run(qtbot, window, last)
        except Exception:
            raise AssertionError(f"{name} did not regenerate in Live mode") from None


def test_live_skips_a_request_equal_to_the_shown_or_running_one(qtbot, window):
    window.panel.set_live(True)
    window.panel.set_params(window.panel.params().replace(seed=1234))  # locked: a concrete seed
    draw_line(qtbot, window.canvas, (10, 10), (50, 50))
    first = wait_for_new_run(qtbot, window, 0)
    wait_until_idle(qtbot, window)
    assert window.session.shown.request_id == first
    window.actions["undo"].trigger()
    window.actions["redo"].trigger()  # back to the same sketch within the debounce: nothing to do
    window.panel.cfg_spin.setValue(6.0)
    window.panel.cfg_spin.setValue(7.5)  # and back, within the debounce
    qtbot.wait(400)
    assert window.session.run.request_id == first
    # a real change still runs; asking again while it runs does not start it twice
    window.panel.set_params(window.panel.params().replace(steps=60))
    running = window.generate(live=True)
    assert running > first and window.generate(live=True) == 0
    window.cancel()
    wait_until_idle(qtbot, window)


def _png_with_chunk(source, kind: bytes, data: bytes, crc_ok: bool = True) -> bytes:
    raw = source.read_bytes()
    crc = zlib.crc32(kind + data) ^ (0 if crc_ok else 0xFFFFFFFF)
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    return raw[:33] + chunk + raw[33:]  # right after IHDR


def test_a_png_with_unreadable_settings_opens_as_a_sketch_and_says_so_once(qtbot, window, tmp_path):
    plain = tmp_path / "plain.png"
    drawn = QImage(64, 64, QImage.Format.Format_RGB32)
    drawn.fill(QColor("darkred"))
    drawn.save(str(plain))
    broken = {  # a compressed text chunk too large to unpack; a text chunk with a bad checksum; gibberish settings
        "bomb.png": _png_with_chunk(plain, b"zTXt", b"parameters\0\0" + zlib.compress(b"x" * (3 << 20))),
        "crc.png": _png_with_chunk(plain, b"tEXt", b"parameters\0Steps: 20, Sampler: Euler", crc_ok=False),
        "odd.png": _png_with_chunk(plain, b"tEXt", b"parameters\0Steps: lots, Sampler: Euler, Size: big"),
    }
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)
        window.canvas.clear()
        said = []
        window.session.message.connect(said.append)
        assert window.files.open_sketch(tmp_path / name), name
        window.session.message.disconnect()
        assert window.canvas.image().pixelColor(5, 5) == QColor("darkred"), name
        assert said == [f"Opened {name} as a sketch; its settings could not be read"], name
        assert window.session.problem == ""


def test_ctrl_s_while_replaying_a_step_says_it_saved_the_finished_picture(qtbot, window):
    outcome, _ = generate_and_wait(qtbot, window)
    window.preview.scrubber.setValue(2)  # a person drags the scrubber back to step 2
    assert window.session.replay_step == 2
    saved = window.files.save_result()
    message = window.statusBar().currentMessage()
    assert "finished picture" in message and "step 2" in message and str(saved) in message
    assert read_png_parameters(saved).params.seed == outcome.info.params.seed
    window.preview.scrubber.setValue(window.preview.scrubber.maximum())  # back on the result
    assert window.session.replay_step is None
    window.files.save_result()
    assert "step" not in window.statusBar().currentMessage()


def test_file_dialogs_start_in_the_output_folder_then_the_last_one_used(qtbot, window, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda parent, title, folder, *rest: asked.append(folder) or ("", ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, title, start, *rest: asked.append(start) or ("", ""))
    window.session.output_dir.mkdir(parents=True)
    window.files.open_sketch_dialog()
    assert asked[-1] == str(window.session.output_dir)
    elsewhere = tmp_path / "drawings"
    elsewhere.mkdir()
    QImage(64, 64, QImage.Format.Format_RGB32).save(str(elsewhere / "cat.png"))
    window.files.open_sketch(elsewhere / "cat.png")
    window.files.open_sketch_dialog()
    window.files.save_sketch_dialog()
    assert asked[-2:] == [str(elsewhere), str(elsewhere / "sketch.png")]


def test_history_and_caption_name_the_prompt_and_the_canvas_size_is_shown(qtbot, window):
    assert window.canvas_size_label.text() == "Canvas 64 × 64"
    window.actions["size_768x512"].trigger()
    assert window.canvas_size_label.text() == "Canvas 768 × 512"
    window.canvas.resize_canvas(64, 64)
    window.panel.set_params(window.panel.params().replace(prompt="a knight on a horse under a stormy sky, "
                                                                 "woodcut, high contrast"))
    generate_and_wait(qtbot, window)
    tooltip = window.history.list_widget.item(0).toolTip()
    assert tooltip.startswith("“a knight on a horse under a stormy") and "…”" in tooltip
    assert "a knight on a horse" in window.preview.caption_text()


def test_plms_counts_steps_out_of_the_steps_box(qtbot, window):
    window.panel.set_params(window.panel.params().replace(scheduler="pndm", steps=4, strength=1.0))
    shown = []
    window.panel.progress_bar.valueChanged.connect(lambda _: shown.append(window.state_text()))
    _, raw = generate_and_wait(qtbot, window)
    assert len(raw) == 5  # PLMS evaluates the model once more than the steps it runs
    counts = [text for text in shown if text.startswith("step")]
    assert counts == ["step 1 / 4", "step 2 / 4", "step 3 / 4", "step 4 / 4"]
    assert window.preview.scrubber.maximum() == 5  # 4 steps + the result, no warm-up position


def test_one_state_while_the_model_loads(qtbot, tmp_path, tiny_model_dir):
    from window_harness import make_window

    window = make_window(qtbot, tmp_path, str(tiny_model_dir))
    window.start()
    assert window.state_text() == "loading model…"  # the panel said "idle" here
    window.generate()  # waits for the model in the worker: still loading, said once
    assert window.state_text() == "loading model…"
    assert "idle" not in window.state_text() and window.statusBar().currentMessage() == ""
    qtbot.waitUntil(lambda: window.state_text().startswith("done"), timeout=WAIT_MS)
    window.close()


def test_nothing_per_result_outlives_the_history_bound(qtbot, window, monkeypatch):
    import gc

    from sketchpad.ui import history as history_module
    from sketchpad.worker import Outcome

    monkeypatch.setattr(history_module, "MAX_HISTORY", 3)
    window.panel.set_params(window.panel.params().replace(steps=1))
    for _ in range(6):
        generate_and_wait(qtbot, window)
    assert len(window.session.history()) == 3 and window.history.count() == 3
    gc.collect()
    # the worker's outcomes (picture + sketch) are not kept: the session keeps its own bounded entries
    assert len([o for o in gc.get_objects() if type(o) is Outcome]) <= 1  # the last signal's, at most


def test_live_dial_turn_shows_a_draft_then_refines_it_with_the_full_vae(qtbot, window):
    finished = []
    window.worker.result_ready.connect(lambda outcome: finished.append(window.session.run.params))
    window.panel.set_live(True)
    window.panel.set_denoise(0.6)  # a dial turn
    first = wait_for_new_run(qtbot, window, 0)
    assert window.session.run.params.draft is True  # while the dial moves: the tiny decoder
    qtbot.waitUntil(lambda: any(p is not None and not p.draft for p in finished), timeout=WAIT_MS)
    draft, refined = finished[0], finished[-1]
    assert draft.draft and not refined.draft
    assert refined == draft.replace(draft=False)  # the same request, only decoded in full
    wait_until_idle(qtbot, window)
    assert window.session.run.request_id > first and not window.session.shown.key.params.draft
    qtbot.wait(600)  # at rest nothing more is sent
    assert len(finished) == 2


def test_a_plain_generate_is_never_a_draft(qtbot, window):
    window.panel.set_live(True)
    assert window.generate() > 0
    assert window.session.run.params.draft is False
    wait_until_idle(qtbot, window)
