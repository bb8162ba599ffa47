"""What outlives a window: every finished result (archive), the drawing and request of a window
that was killed (recovery, offered once), and nothing of our half-written files."""

import os
import shutil

from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QInputDialog

from sketchpad.core.storage import TEMP_PREFIX, TEMP_SUFFIX, read_png_parameters
from window_harness import WAIT_MS, draw_line, generate_and_wait, make_window, window  # noqa: F401


def started(qtbot, tmp_path, tiny_model_dir, name, **kwargs):
    made = make_window(qtbot, tmp_path, str(tiny_model_dir), settings_name=f"{name}.ini", **kwargs)
    made.confirm_discard = lambda: True
    with qtbot.waitSignal(made.worker.model_ready, timeout=WAIT_MS):
        made.start()
    return made


def test_results_are_kept_as_they_finish_and_come_back_after_a_restart(qtbot, window, tmp_path, tiny_model_dir):
    for prompt in ("a red barn", "a blue boat"):
        window.panel.set_params(window.panel.params().replace(prompt=prompt))
        generate_and_wait(qtbot, window)
    kept = window.session.archive.entries()
    assert len(kept) == 2 and all(entry.path in kept for entry in window.session.history())
    window.close()

    again = make_window(qtbot, tmp_path, str(tiny_model_dir))
    history = again.session.history()
    assert [entry.info.params.prompt for entry in history] == ["a blue boat", "a red barn"]  # newest first
    assert again.history.count() == 2 and "a blue boat" in again.history.list_widget.item(0).toolTip()
    assert all(entry.image is None for entry in history)  # thumbnails only until one is shown
    again.session.show(history[1])
    saved = again.files.save_result()  # Ctrl+S: the chosen one, into the output folder
    assert saved.parent == tmp_path / "out" and read_png_parameters(saved).params.prompt == "a red barn"
    assert again.preview.result_image().size() == history[1].picture().size()
    again.worker.stop()


def test_the_space_for_kept_results_is_a_setting(qtbot, window, tmp_path, tiny_model_dir, monkeypatch):
    generate_and_wait(qtbot, window)
    assert window.session.archive.max_bytes == 1 << 30  # 1 GiB unless chosen
    monkeypatch.setattr(QInputDialog, "getInt", lambda *args: (0, True))
    window.actions["kept_space"].trigger()
    assert window.session.archive.entries() == []  # nothing may be kept: the oldest (all) went
    window.close()
    again = make_window(qtbot, tmp_path, str(tiny_model_dir))
    assert again.session.archive.max_bytes == 0
    again.worker.stop()


def _leave_as_killed(window, tmp_path, name):
    """Copy a live window's recovery slot as a killed window leaves it: files, no owner."""
    slot = tmp_path / "state" / "recovery" / name
    shutil.copytree(window.autosaver.slot, slot, ignore=shutil.ignore_patterns("owner.lock*"))
    return slot


def test_a_killed_windows_drawing_comes_back_with_its_prompt_once(qtbot, tmp_path, tiny_model_dir):
    first = started(qtbot, tmp_path, tiny_model_dir, "first")
    first.canvas.resize_canvas(64, 64)
    draw_line(qtbot, first.canvas, (10, 10), (50, 10))
    first.panel.set_params(first.panel.params().replace(prompt="a red barn", negative_prompt="fog", cfg=5.0))
    first.autosaver.mark_changed()
    first.autosaver.save_now()
    first.autosaver.wait()
    drawn = first.canvas.image().convertToFormat(QImage.Format.Format_RGB32)
    _leave_as_killed(first, tmp_path, "1-dead0001")
    green = QImage(64, 64, QImage.Format.Format_RGB32)
    green.fill(QColor("green"))
    first.canvas.set_image(green)
    first.autosaver.mark_changed()
    first.autosaver.save_now()
    first.autosaver.wait()
    _leave_as_killed(first, tmp_path, "1-dead0002")
    first.close()

    second = make_window(qtbot, tmp_path, str(tiny_model_dir), settings_name="second.ini")
    second.confirm_discard = lambda: True
    offered = []
    second.ask_recover = lambda recovered, params: offered.append(params) or True
    with qtbot.waitSignal(second.worker.model_ready, timeout=WAIT_MS):
        second.start()
    assert [p.prompt for p in offered] == ["a red barn", "a red barn"]
    assert second.canvas.image().convertToFormat(QImage.Format.Format_RGB32) == drawn
    restored = second.panel.params()
    assert (restored.prompt, restored.negative_prompt, restored.cfg) == ("a red barn", "fog", 5.0)
    # the second drawing could not share the canvas: it was saved, and opening it restores its request
    (kept,) = (tmp_path / "out").glob("recovered-*.png")
    assert read_png_parameters(kept).params.prompt == "a red barn"
    assert QImage(str(kept)).pixelColor(3, 3) == QColor("green")
    second.close()

    third = make_window(qtbot, tmp_path, str(tiny_model_dir), settings_name="third.ini")
    third.ask_recover = lambda *args: offered.append("again") or True
    with qtbot.waitSignal(third.worker.model_ready, timeout=WAIT_MS):
        third.start()
    assert len(offered) == 2  # each was offered exactly once
    third.close()


def test_our_abandoned_temp_files_in_the_output_folder_go_at_start(qtbot, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    dead_pid = 2**22 + 12345  # above Linux's pid_max: no such process
    abandoned = out / f"{TEMP_PREFIX}{dead_pid}-abcd1234{TEMP_SUFFIX}"
    abandoned.write_bytes(b"half a picture")
    theirs = out / "notes.tmp"
    theirs.write_bytes(b"not ours")
    window = started(qtbot, tmp_path, tiny_model_dir, "clean")
    assert not abandoned.exists() and theirs.exists()
    assert os.listdir(out) == ["notes.tmp"]
    window.close()
