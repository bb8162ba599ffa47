"""SketchCanvas and ToolPanel: strokes, tablet pressure, undo/redo with a byte bound, sizes."""

import pytest
from PySide6.QtCore import QEvent, QPointF, QSize, Qt
from PySide6.QtGui import (QColor, QImage, QInputDevice, QMouseEvent, QPainter, QPointingDevice,
                           QTabletEvent)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from sketchpad.ui.canvas import SketchCanvas, pressure_to_width
from sketchpad.ui.canvas_undo import StrokeCommand, blank_image
from sketchpad.ui.tool_bar import ToolPanel

WHITE = QColor(Qt.GlobalColor.white)
RED = QColor(255, 0, 0)


@pytest.fixture
def canvas(qtbot):
    c = SketchCanvas()
    qtbot.addWidget(c)
    c.resize(512, 512)  # scale 1, offset 0: widget coords == image coords
    c.show()
    qtbot.waitExposed(c)
    return c


def mouse(widget, etype, pos, button=Qt.MouseButton.LeftButton, buttons=None):
    """Send a QMouseEvent directly: QTest.mouseMove does not carry held buttons everywhere."""
    if buttons is None:
        buttons = Qt.MouseButton.NoButton if etype == QEvent.Type.MouseButtonRelease else button
    if etype == QEvent.Type.MouseMove:
        button = Qt.MouseButton.NoButton
    ev = QMouseEvent(etype, QPointF(pos), QPointF(widget.mapToGlobal(QPointF(pos))),
                     button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def stroke(canvas, points, steps=8, button=Qt.MouseButton.LeftButton):
    """Press at the first image point, move through the others (interpolated), release."""
    pts = [QPointF(*p) for p in points]
    to_w = canvas.image_to_widget
    mouse(canvas, QEvent.Type.MouseButtonPress, to_w(pts[0]), button)
    for a, b in zip(pts, pts[1:]):
        for i in range(1, steps + 1):
            mouse(canvas, QEvent.Type.MouseMove, to_w(a + (b - a) * (i / steps)), button)
    mouse(canvas, QEvent.Type.MouseButtonRelease, to_w(pts[-1]), button)


def pen():
    return QPointingDevice("test pen", 4242, QInputDevice.DeviceType.Stylus,
                           QPointingDevice.PointerType.Pen,
                           QInputDevice.Capability.Position | QInputDevice.Capability.Pressure,
                           1, 3)


def tablet(widget, device, etype, pos, pressure):
    left = Qt.MouseButton.LeftButton
    held = Qt.MouseButton.NoButton if etype == QEvent.Type.TabletRelease else left
    ev = QTabletEvent(etype, device, QPointF(pos), QPointF(widget.mapToGlobal(QPointF(pos))),
                      pressure, 0.0, 0.0, 0.0, 0.0, 0.0, Qt.KeyboardModifier.NoModifier, left, held)
    QApplication.sendEvent(widget, ev)
    return ev.isAccepted()


def painted_rows(img, x):
    """How many pixels of column x are not white."""
    return sum(img.pixelColor(x, y) != WHITE for y in range(img.height()))


def test_defaults(canvas):
    img = canvas.image()
    assert canvas.canvas_size() == QSize(512, 512)
    assert img.format() == QImage.Format.Format_RGB32 and not img.hasAlphaChannel()
    assert img == blank_image(512, 512)
    assert not canvas.is_modified()
    assert canvas.sizeHint() == QSize(512, 512)
    assert (canvas.tool(), canvas.undo_stack().count()) == ("brush", 0)


def test_stroke_paints_the_line_only(canvas, qtbot):
    canvas.set_color(RED)
    canvas.set_brush_size(6)
    changed, finished = [], []
    canvas.content_changed.connect(lambda: changed.append(1))
    canvas.stroke_finished.connect(lambda: finished.append(1))
    stroke(canvas, [(100, 100), (400, 100)])
    img = canvas.image()
    for x in range(100, 401, 10):
        assert img.pixelColor(x, 100) == RED, x
    for p in [(250, 110), (250, 90), (50, 50), (450, 100), (250, 400)]:
        assert img.pixelColor(*p) == WHITE, p
    assert (len(changed), len(finished)) == (1, 1)
    assert canvas.undo_stack().count() == 1
    assert canvas.is_modified()


def test_other_buttons_do_not_draw(canvas):
    stroke(canvas, [(100, 100), (200, 100)], button=Qt.MouseButton.RightButton)
    assert canvas.image() == blank_image(512, 512)
    assert canvas.undo_stack().count() == 0


def test_eraser_restores_white(canvas):
    canvas.set_brush_size(10)
    stroke(canvas, [(100, 200), (400, 200)])
    assert canvas.image().pixelColor(250, 200) == QColor(Qt.GlobalColor.black)
    canvas.set_tool("eraser")
    canvas.set_brush_size(30)
    stroke(canvas, [(100, 200), (400, 200)])
    assert painted_rows(canvas.image(), 250) == 0
    assert canvas.undo_stack().undoText() == "Erase"
    with pytest.raises(ValueError):
        canvas.set_tool("spray")


def test_undo_redo_exact_one_command_per_stroke(canvas):
    blank = canvas.image()
    stroke(canvas, [(50, 50), (300, 200), (100, 400)])
    after1 = canvas.image()
    canvas.set_color(QColor("#1976d2"))
    canvas.set_brush_size(25)
    stroke(canvas, [(60, 300), (450, 60)])
    after2 = canvas.image()
    stack = canvas.undo_stack()
    assert stack.count() == 2
    changed = []
    canvas.content_changed.connect(lambda: changed.append(1))
    stack.undo()
    assert canvas.image() == after1
    stack.undo()
    assert canvas.image() == blank
    stack.redo()
    assert canvas.image() == after1
    stack.redo()
    assert canvas.image() == after2
    assert len(changed) == 4
    # Painting after an undo must not alter what the commands hold (copy-on-write).
    stack.undo()
    stroke(canvas, [(10, 500), (500, 500)])
    stack.undo()
    assert canvas.image() == after1
    stack.undo()
    assert canvas.image() == blank


def test_stroke_command_stores_only_touched_rect(canvas):
    canvas.set_brush_size(4)
    stroke(canvas, [(100, 100), (120, 104)])
    cmd = canvas.undo_stack().command(0)
    assert isinstance(cmd, StrokeCommand)
    assert cmd.rect.contains(100, 100) and cmd.rect.contains(120, 104)
    assert cmd.rect.width() < 40 and cmd.rect.height() < 20
    whole = canvas.image().sizeInBytes()
    assert canvas.undo_history_bytes() == cmd.byte_size() < whole // 50


def test_byte_budget_drops_oldest(qtbot):
    c = SketchCanvas(undo_budget_bytes=10**9)
    qtbot.addWidget(c)
    c.resize(512, 512)
    stroke(c, [(20, 20), (60, 20)])
    per = c.undo_history_bytes()
    c.undo_stack().undo()
    c.set_undo_budget_bytes(per * 3 + per // 2)  # room for three identical strokes
    states = [c.image()]
    for i in range(5):
        y = 40 + 60 * i
        stroke(c, [(20, y), (60, y)])  # same shape, so same byte cost
        states.append(c.image())
        if i == 3:
            c.set_modified(False)  # clean state on stroke 4, inside the kept window
    stack = c.undo_stack()
    assert stack.count() == 3
    assert c.undo_history_bytes() == 3 * per <= c.undo_budget_bytes()
    assert stack.canUndo() and not stack.canRedo() and c.is_modified()
    stack.undo()
    assert c.image() == states[4] and not c.is_modified()  # clean index survived the trim
    stack.undo()
    stack.undo()
    assert c.image() == states[2]  # strokes 1 and 2 are no longer undoable
    assert not stack.canUndo() and c.is_modified()
    for i in (3, 4, 5):
        stack.redo()
        assert c.image() == states[i]


def test_newest_command_kept_even_over_budget(qtbot):
    c = SketchCanvas(undo_budget_bytes=1)
    qtbot.addWidget(c)
    c.resize(512, 512)
    for y in (100, 200, 300):
        stroke(c, [(50, y), (400, y)])
    assert c.undo_stack().count() == 1
    c.undo_stack().undo()
    assert painted_rows(c.image(), 200) > 0 and c.image().pixelColor(200, 300) == WHITE


def test_set_image_any_size_composited_on_white(canvas):
    img = QImage(100, 37, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.fillRect(0, 0, 10, 10, RED)
    p.fillRect(20, 0, 10, 10, QColor(255, 0, 0, 128))
    p.end()
    canvas.set_image(img)  # not a multiple of 8: kept as given (the app rounds sizes itself)
    out = canvas.image()
    assert canvas.canvas_size() == QSize(100, 37) and out.size() == QSize(100, 37)
    assert not out.hasAlphaChannel()
    assert out.pixelColor(5, 5) == RED
    assert out.pixelColor(50, 20) == WHITE
    half = out.pixelColor(25, 5)
    assert half.red() == 255 and 120 <= half.green() <= 135 and half.green() == half.blue()
    assert canvas.undo_stack().undoText() == "Load image"
    canvas.undo_stack().undo()
    assert canvas.canvas_size() == QSize(512, 512) and canvas.image() == blank_image(512, 512)
    canvas.undo_stack().redo()
    assert canvas.image() == out
    for bad in (QImage(), QImage(4, 4, QImage.Format.Format_RGB32),
                QImage(5000, 16, QImage.Format.Format_RGB32)):
        with pytest.raises(ValueError):
            canvas.set_image(bad)


def test_resize_canvas(canvas):
    for w, h in [(100, 512), (32, 512), (512, 4096), (513, 512), (2056, 64), (512.0, 512)]:
        with pytest.raises(ValueError):
            canvas.resize_canvas(w, h)
    canvas.set_color(RED)
    canvas.set_brush_size(10)
    stroke(canvas, [(100, 100), (500, 100)])
    before = canvas.image()
    canvas.resize_canvas(640, 256)
    out = canvas.image()
    assert canvas.canvas_size() == QSize(640, 256)
    assert out.pixelColor(200, 100) == RED and out.pixelColor(502, 100) == RED
    assert out.pixelColor(600, 100) == WHITE and out.pixelColor(200, 200) == WHITE
    canvas.undo_stack().undo()
    assert canvas.image() == before
    canvas.undo_stack().redo()
    assert canvas.image() == out
    canvas.resize_canvas(64, 64)  # shrinking crops
    assert canvas.canvas_size() == QSize(64, 64)


def test_clear_is_undoable(canvas):
    canvas.clear()  # blank already: nothing to undo
    assert canvas.undo_stack().count() == 0
    stroke(canvas, [(100, 100), (300, 300)])
    drawn = canvas.image()
    canvas.clear()
    assert canvas.image() == blank_image(512, 512)
    canvas.undo_stack().undo()
    assert canvas.image() == drawn


def test_tablet_pressure_sets_width(canvas):
    assert pressure_to_width(40, 1.0) == 40
    assert pressure_to_width(40, 0.5) == 20
    assert pressure_to_width(40, 0.0) == pressure_to_width(40, 0.01) == 4  # light touch draws
    canvas.set_brush_size(40)
    dev = pen()
    T = QEvent.Type
    widths = {}
    for pressure, y in [(0.2, 150), (1.0, 350)]:
        assert tablet(canvas, dev, T.TabletPress, QPointF(100, y), pressure)
        for x in range(110, 410, 10):
            assert tablet(canvas, dev, T.TabletMove, QPointF(x, y), pressure)
        assert tablet(canvas, dev, T.TabletRelease, QPointF(400, y), 0.0)
        col = [canvas.image().pixelColor(250, yy) != WHITE for yy in range(y - 30, y + 30)]
        widths[pressure] = sum(col)
    assert 6 <= widths[0.2] <= 10 and 38 <= widths[1.0] <= 42
    assert canvas.undo_stack().count() == 2  # accepted: not replayed as mouse strokes


def test_widget_resize_keeps_image_size(canvas, qtbot):
    canvas.resize(1024, 600)
    qtbot.waitUntil(lambda: canvas.width() == 1024)
    assert canvas.canvas_size() == QSize(512, 512)
    s = 600 / 512
    top_left = canvas.image_to_widget(QPointF(0, 0))
    assert top_left.x() == pytest.approx((1024 - 512 * s) / 2) and top_left.y() == pytest.approx(0)
    back = canvas.widget_to_image(canvas.image_to_widget(QPointF(123, 45)))
    assert (back.x(), back.y()) == pytest.approx((123, 45))
    canvas.set_color(RED)
    canvas.set_brush_size(8)
    stroke(canvas, [(100, 256), (400, 256)])  # image coords, sent through the zoomed view
    img = canvas.image()
    assert img.pixelColor(250, 256) == RED and img.pixelColor(250, 280) == WHITE
    shot = canvas.grab().toImage()
    assert QColor(shot.pixel(10, 300)).lightness() < 80  # dark margin beside the page
    assert shot.pixelColor(512, 100) == WHITE  # the page, centred


def test_modified_follows_clean_state(canvas):
    seen = []
    canvas.modified_changed.connect(seen.append)
    stroke(canvas, [(100, 100), (200, 100)])
    assert canvas.is_modified() and seen == [True]
    canvas.set_modified(False)
    assert not canvas.is_modified()
    stroke(canvas, [(100, 200), (200, 200)])
    assert canvas.is_modified()
    canvas.undo_stack().undo()
    assert not canvas.is_modified()
    canvas.set_modified(True)
    assert canvas.is_modified()
    assert seen == [True, False, True, False, True]


def test_undo_mid_stroke_cancels_the_stroke(canvas):
    stroke(canvas, [(100, 100), (300, 100)])
    mouse(canvas, QEvent.Type.MouseButtonPress, QPointF(100, 300))
    mouse(canvas, QEvent.Type.MouseMove, QPointF(300, 300))
    canvas.undo_stack().undo()
    mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(300, 300))
    assert canvas.image() == blank_image(512, 512)
    assert canvas.undo_stack().count() == 1 and canvas.undo_stack().index() == 0


def test_bracket_keys_and_grow_shrink(canvas):
    canvas.set_brush_size(20)
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size() == 22
    QTest.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size() == 20
    canvas.set_brush_size(1)
    canvas.shrink_brush()
    assert canvas.brush_size() == 1
    canvas.grow_brush()
    assert canvas.brush_size() == 2
    canvas.set_brush_size(500)
    assert canvas.brush_size() == 200
    canvas.grow_brush()
    assert canvas.brush_size() == 200


def test_tool_panel_follows_canvas(canvas, qtbot):
    panel = ToolPanel(canvas)
    qtbot.addWidget(panel)
    panel.show()
    panel.size_slider.setValue(50)
    assert canvas.brush_size() == 50 and panel.size_label.text() == "50 px"
    canvas.set_brush_size(20)
    assert panel.size_slider.value() == 20 and panel.size_label.text() == "20 px"
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert panel.size_slider.value() == 22 and panel.size_label.text() == "22 px"

    panel.eraser_button.click()
    assert canvas.tool() == "eraser" and not panel.brush_button.isChecked()
    canvas.set_tool("brush")
    assert panel.brush_button.isChecked() and not panel.eraser_button.isChecked()

    assert not panel.undo_button.isEnabled() and not panel.redo_button.isEnabled()
    stroke(canvas, [(100, 100), (200, 100)])
    assert panel.undo_button.isEnabled()
    panel.undo_button.click()
    assert canvas.image() == blank_image(512, 512)
    assert panel.redo_button.isEnabled() and not panel.undo_button.isEnabled()
    panel.redo_button.click()
    panel.clear_button.click()
    assert canvas.image() == blank_image(512, 512) and canvas.undo_stack().count() == 2


def test_tool_panel_colours(canvas, qtbot):
    panel = ToolPanel(canvas)
    qtbot.addWidget(panel)
    recents = panel.recent_colors()
    assert len(recents) == 8 and recents[0] == QColor(Qt.GlobalColor.black)
    panel.recent_buttons[4].click()
    assert canvas.color() == recents[4]
    panel.choose_color(QColor("#00ffaa"))
    assert canvas.color() == QColor("#00ffaa")
    assert panel.recent_colors()[0] == QColor("#00ffaa") and len(panel.recent_colors()) == 8
    panel.choose_color(recents[2])  # already there: moves to the front, no duplicate
    names = [c.name() for c in panel.recent_colors()]
    assert names[:2] == [recents[2].name(), "#00ffaa"] and len(set(names)) == 8


def _mean_rgb(widget):
    image = widget.grab().toImage()
    pixels = [image.pixelColor(x, y) for x in range(2, image.width() - 2, 2) for y in range(2, image.height() - 2, 2)]
    return [sum(getattr(p, channel)() for p in pixels) / len(pixels) for channel in ("red", "green", "blue")]


def test_the_active_tool_is_unmistakable(canvas, qtbot):
    """Brush and Eraser looked alike whichever was active (a grey a few levels apart)."""
    panel = ToolPanel(canvas)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    for active, idle in (("brush", panel.eraser_button), ("eraser", panel.brush_button)):
        canvas.set_tool(active)
        on = _mean_rgb(panel.brush_button if active == "brush" else panel.eraser_button)
        off = _mean_rgb(idle)
        assert on[2] - on[0] > 60, on  # the active one is filled with the highlight colour
        assert abs(off[2] - off[0]) < 15, off  # the other stays neutral
