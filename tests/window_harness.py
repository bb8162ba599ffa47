"""A real MainWindow on a real GenerationWorker and the tiny model, and a person's gestures."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from sketchpad.ui.main_window import MainWindow
from sketchpad.worker import GenerationWorker

WAIT_MS = 60_000


def unanswered(path, carried):
    """The restore question is modal: a test that opens a PNG carrying its sketch answers it itself."""
    raise AssertionError(f"{path} carries its sketch: answer the restore question in the test")


def answer_restore(window, restore: bool) -> None:
    window.files.ask_restore_sketch = lambda path, carried: restore


def make_window(qtbot, tmp_path, model, settings_name="settings.ini", **kwargs):
    """A window over its own settings file and state folder in tmp_path (not yet started)."""
    settings = QSettings(str(tmp_path / settings_name), QSettings.Format.IniFormat)
    kwargs.setdefault("output_dir", tmp_path / "out")
    made = MainWindow(GenerationWorker(), model=model, device="cpu", settings=settings,
                      state_dir=kwargs.pop("state_dir", tmp_path / "state"), **kwargs)
    qtbot.addWidget(made)
    made.files.ask_restore_sketch = unanswered
    return made


@pytest.fixture
def window(qtbot, tmp_path, tiny_model_dir):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    worker = GenerationWorker()
    made = MainWindow(worker, model=str(tiny_model_dir), device="cpu", output_dir=tmp_path / "out",
                      settings=settings, state_dir=tmp_path / "state")
    qtbot.addWidget(made)
    made.confirm_discard = lambda: True  # no modal question when the test closes a drawn-on window
    made.files.ask_restore_sketch = unanswered
    made.canvas.resize_canvas(64, 64)  # the tiny model's native size keeps every run fast
    made.canvas.set_modified(False)
    made.panel.set_params(made.panel.params().replace(steps=3, scheduler="euler", prompt="a knight"))
    made.show()
    with qtbot.waitSignal(worker.model_ready, timeout=WAIT_MS):
        made.start()
    yield made
    made.close()
    assert not worker.isRunning()


def draw_line(qtbot, canvas, start, end):
    """A stroke as a person makes it: press, a few moves, release (image coordinates)."""
    to_widget = lambda p: canvas.image_to_widget(QPointF(*p)).toPoint()
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, to_widget(start))
    for t in np.linspace(0, 1, 6)[1:]:
        point = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        _move(canvas, to_widget(point))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, to_widget(end))


def _move(widget, pos: QPoint):
    event = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(pos), widget.mapToGlobal(QPointF(pos)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def generate_and_wait(qtbot, window):
    steps = []
    window.worker.step_preview.connect(lambda *args: steps.append(args))
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS) as result:
        request = window.generate()
    outcome = result.args[0]
    assert outcome.request_id == request
    return outcome, [s for s in steps if s[0] == request]


def open_window(qtbot, tmp_path, **kwargs) -> MainWindow:
    """A window over its own settings file in tmp_path (not yet started)."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(GenerationWorker(), device="cpu", output_dir=tmp_path / "out", settings=settings,
                        state_dir=tmp_path / "state", **kwargs)
    qtbot.addWidget(window)
    window.confirm_discard = lambda: True
    window.files.ask_restore_sketch = unanswered
    window.canvas.resize_canvas(64, 64)
    window.canvas.set_modified(False)
    window.panel.set_params(window.panel.params().replace(steps=3, scheduler="euler", prompt="a knight"))
    window.show()
    return window


def started(qtbot, window) -> MainWindow:
    """The window started, its model (or server) ready."""
    with qtbot.waitSignal(window.worker.model_ready, timeout=WAIT_MS):
        window.start()
    return window
