"""Crash recovery with several windows: each keeps its own slot; what a killed window leaves is offered once."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtGui import QColor, QImage

from sketchpad.ui.autosave import SESSION_FILE, SKETCH_FILE, SketchAutosaver
from sketchpad.ui.canvas import SketchCanvas

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One window of the app, reduced to what recovery sees: a canvas, its autosaver and a session.
WINDOW = textwrap.dedent("""
    import json, sys, time
    from PySide6.QtGui import QColor, QImage
    from PySide6.QtWidgets import QApplication
    from sketchpad.ui.autosave import SketchAutosaver
    from sketchpad.ui.canvas import SketchCanvas

    state, color, prompt, ending = sys.argv[1:5]
    app = QApplication([])
    app.setApplicationName("Sketchpad")
    canvas = SketchCanvas(width=64, height=64)
    session = {"prompt": prompt, "negative_prompt": "blurry", "params": {"steps": 12, "cfg": 6.5}}
    saver = SketchAutosaver(canvas, state, session=lambda: session, interval_ms=60_000)
    if ending == "claim":  # a window that starts, is offered the orphans, and is killed before answering
        print("claimed", len(saver.orphans()), flush=True)
    else:
        picture = QImage(64, 64, QImage.Format.Format_RGB32)
        picture.fill(QColor(color))
        canvas.set_image(picture)
        saver.save_now()
        saver.wait()
        if ending == "clean":
            saver.discard()
        print("saved", saver.slot.name, flush=True)
    if ending != "clean":
        time.sleep(600)  # until the test kills it
""")


def start_window(state, color, prompt, ending="kill"):
    child = subprocess.Popen([sys.executable, "-c", WINDOW, str(state), color, prompt, ending], cwd=REPO,
                             env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    assert line.startswith(("saved", "claimed")), child.stderr.read() if child.poll() is not None else line
    child.announced = line.split()
    if ending == "clean":
        assert child.wait(30) == 0
    return child


def kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.fixture
def children():
    started = []
    yield started
    for child in started:
        if child.poll() is None:
            kill(child)


def filled(color, size=64):
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    return image


def colour_of(image):
    return image.pixelColor(10, 10).name()


def offered(saver):
    """What a starting window offers back, each answered (taken) at once, as the window does."""
    found = saver.orphans()
    for recovered in found:
        saver.take(recovered)
    return sorted((colour_of(r.image), r.session["prompt"] if r.session else None) for r in found)


def make_saver(qtbot, state, color=None, session=None):
    canvas = SketchCanvas(width=64, height=64)
    qtbot.addWidget(canvas)
    saver = SketchAutosaver(canvas, state, session=session, interval_ms=60_000)
    if color is not None:
        canvas.set_image(filled(color))
        saver.save_now()
        saver.wait()
    return saver


def test_two_windows_never_overwrite_each_other(qtbot, tmp_path):
    first = make_saver(qtbot, tmp_path, "#ff0000", session=lambda: {"prompt": "red"})
    second = make_saver(qtbot, tmp_path, "#0000ff", session=lambda: {"prompt": "blue"})
    assert first.slot != second.slot
    first.canvas.set_image(filled("#00ff00"))
    first.save_now()
    first.wait()
    assert colour_of(QImage(str(second.slot / SKETCH_FILE))) == "#0000ff"
    assert colour_of(QImage(str(first.slot / SKETCH_FILE))) == "#00ff00"
    assert json.loads((second.slot / SESSION_FILE).read_text()) == {"prompt": "blue"}
    third = make_saver(qtbot, tmp_path)
    assert third.orphans() == []  # both owners are running: nothing is theirs to offer
    for saver in (first, second, third):
        saver.discard()


def test_a_clean_quit_removes_its_own_slot_only(qtbot, tmp_path):
    leaving = make_saver(qtbot, tmp_path, "#ff0000")
    staying = make_saver(qtbot, tmp_path, "#0000ff")
    leaving.discard()
    assert not leaving.slot.exists()
    assert colour_of(QImage(str(staying.slot / SKETCH_FILE))) == "#0000ff"
    staying.discard()
    assert list((tmp_path / "recovery").iterdir()) == []


def test_prompt_and_settings_changes_are_snapshot_too(qtbot, tmp_path):
    session = {"prompt": "first"}
    saver = make_saver(qtbot, tmp_path, "#ff0000", session=lambda: dict(session))
    session["prompt"] = "a lighthouse at night"
    saver.mark_changed()  # the window calls this when the prompt or a setting changes
    saver.save_now()
    saver.wait()
    assert json.loads((saver.slot / SESSION_FILE).read_text())["prompt"] == "a lighthouse at night"
    saver.discard()


def test_a_killed_window_is_offered_back_once_with_its_session(qtbot, tmp_path, children):
    children.append(start_window(tmp_path, "#ff0000", "a red kite"))
    kill(children[-1])
    saver = make_saver(qtbot, tmp_path)
    found = saver.orphans()
    assert len(found) == 1
    assert colour_of(found[0].image) == "#ff0000"
    assert found[0].session == {"prompt": "a red kite", "negative_prompt": "blurry",
                                "params": {"steps": 12, "cfg": 6.5}}
    assert make_saver(qtbot, tmp_path).orphans() == []  # being offered by the first: not offered twice
    saver.take(found[0])
    assert not found[0].slot.exists()
    assert make_saver(qtbot, tmp_path).orphans() == []


def test_every_unsaved_drawing_comes_back_exactly_once_after_any_mix_of_quits_and_kills(qtbot, tmp_path, children):
    for color, prompt, ending in [("#ff0000", "red", "kill"), ("#00ff00", "green", "kill"),
                                  ("#0000ff", "blue", "kill"), ("#ffff00", "yellow", "clean"),
                                  ("#00ffff", "cyan", "kill")]:
        children.append(start_window(tmp_path, color, prompt, ending))
    red, green, blue, _yellow, cyan = children
    kill(red)
    kill(green)  # blue and cyan still run; yellow quit cleanly
    assert offered(make_saver(qtbot, tmp_path)) == [("#00ff00", "green"), ("#ff0000", "red")]
    assert offered(make_saver(qtbot, tmp_path)) == []
    kill(cyan)
    assert offered(make_saver(qtbot, tmp_path)) == [("#00ffff", "cyan")]
    kill(blue)
    later = make_saver(qtbot, tmp_path)
    assert offered(later) == [("#0000ff", "blue")]
    assert offered(later) == [] and offered(make_saver(qtbot, tmp_path)) == []


def test_a_window_killed_while_offering_leaves_the_drawing_to_be_offered_again(qtbot, tmp_path, children):
    children.append(start_window(tmp_path, "#ff0000", "red"))
    kill(children[-1])
    children.append(start_window(tmp_path, "", "", "claim"))  # claims it, then dies before answering
    assert children[-1].announced == ["claimed", "1"]
    assert make_saver(qtbot, tmp_path).orphans() == []  # the claimer still runs
    kill(children[-1])
    assert offered(make_saver(qtbot, tmp_path)) == [("#ff0000", "red")]


def test_a_slot_with_nothing_drawn_is_cleared_without_an_offer(qtbot, tmp_path, children):
    children.append(start_window(tmp_path, "", "", "claim"))  # a window that never drew, then killed
    kill(children[-1])
    assert make_saver(qtbot, tmp_path).orphans() == []
    assert len(list((tmp_path / "recovery").iterdir())) == 1  # only the slot of the window just made


def test_a_drawing_restored_onto_the_canvas_is_on_disk_before_its_old_slot_goes(qtbot, tmp_path, children):
    children.append(start_window(tmp_path, "#ff0000", "red"))
    kill(children[-1])
    saver = make_saver(qtbot, tmp_path)
    [recovered] = saver.orphans()
    saver.canvas.set_image(recovered.image)  # the person said yes
    saver.take(recovered)
    assert colour_of(QImage(str(saver.slot / SKETCH_FILE))) == "#ff0000"  # no moment without a copy
