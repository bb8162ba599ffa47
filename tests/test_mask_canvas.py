"""The mask on the canvas: its tools, its overlay, its undo steps and edits, and that it never
touches the sketch's pixels."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QInputDevice, QMouseEvent, QPointingDevice
from PySide6.QtWidgets import QApplication

from sketchpad.ui.canvas import SketchCanvas
from sketchpad.ui.canvas_undo import blank_image
from sketchpad.ui.mask_layer import MASK_COLOR, feathered, grown, mask_from_grey, mask_grey, shrunk
from sketchpad.ui.tool_bar import ToolPanel
from test_canvas import mouse, pen, stroke, tablet


@pytest.fixture
def canvas(qtbot):
    c = SketchCanvas(width=256, height=256)
    qtbot.addWidget(c)
    c.resize(256, 256)  # scale 1, offset 0: widget coords == image coords
    c.show()
    qtbot.waitExposed(c)
    return c


@pytest.fixture
def panel(canvas, qtbot):
    made = ToolPanel(canvas)
    qtbot.addWidget(made)
    made.show()
    return made


def drawn(canvas):
    """A sketch with a line on it, so an untouched sketch is not merely a blank one."""
    canvas.set_brush_size(6)
    stroke(canvas, [(20, 128), (236, 128)])
    return canvas.image()


def drag(canvas, points, modifiers=Qt.KeyboardModifier.NoModifier):
    """Press, move through the points, release, with modifiers held (image coords)."""
    left = Qt.MouseButton.LeftButton

    def send(kind, point, button, buttons):
        pos = canvas.image_to_widget(QPointF(*point))
        event = QMouseEvent(kind, pos, canvas.mapToGlobal(pos), button, buttons, modifiers)
        QApplication.sendEvent(canvas, event)

    send(QEvent.Type.MouseButtonPress, points[0], left, left)
    for point in points[1:]:
        send(QEvent.Type.MouseMove, point, Qt.MouseButton.NoButton, left)
    send(QEvent.Type.MouseButtonRelease, points[-1], left, Qt.MouseButton.NoButton)


def test_the_mask_tools_never_change_the_sketch(canvas, panel):
    sketch = drawn(canvas)
    sketch_changes, mask_changes = [], []
    canvas.content_changed.connect(lambda: sketch_changes.append(1))
    canvas.mask_changed.connect(lambda: mask_changes.append(1))
    panel.mask_row.tool_buttons["mask"].click()
    canvas.set_brush_size(20)
    stroke(canvas, [(40, 40), (200, 40)])
    panel.mask_row.tool_buttons["mask_box"].click()
    drag(canvas, [(30, 150), (90, 200), (120, 230)])
    panel.mask_row.tool_buttons["mask_lasso"].click()
    drag(canvas, [(150, 150), (240, 150), (240, 240), (150, 240)])
    panel.mask_row.tool_buttons["unmask"].click()
    stroke(canvas, [(100, 20), (100, 60)])
    for action in panel.mask_row.edit_actions.values():
        action.trigger()
    canvas.undo_stack().undo()  # the clear: there is a mask again
    assert canvas.image() == sketch and sketch_changes == []
    assert canvas.has_mask() and len(mask_changes) == 4 + 5 + 1


def test_a_mask_brush_stroke_is_one_undo_step_of_its_own(canvas, panel):
    sketch = drawn(canvas)
    canvas.set_tool("mask")
    canvas.set_brush_size(10)
    assert canvas.mask_bytes() is None and not canvas.has_mask()  # nothing painted: no mask
    stroke(canvas, [(40, 60), (200, 60)])
    values = canvas.mask_values()
    assert values[60, 40:200].min() == 255 and values[80, :].max() == 0 and values[60, 230] == 0
    assert canvas.mask_bytes() == values.tobytes()
    stack = canvas.undo_stack()
    assert stack.count() == 2 and stack.undoText() == "Mask"
    stack.undo()
    assert canvas.mask_bytes() is None and canvas.image() == sketch
    stack.redo()
    assert np.array_equal(canvas.mask_values(), values)
    stack.undo()
    stack.undo()  # then the sketch's own stroke
    assert canvas.image() == blank_image(256, 256) and canvas.mask_bytes() is None


def test_unmask_takes_the_mask_away_where_it_passes(canvas):
    canvas.set_tool("mask_box")
    drag(canvas, [(20, 20), (220, 220)])
    assert canvas.mask_values()[20:220, 20:220].min() == 255
    canvas.set_tool("unmask")
    canvas.set_brush_size(20)
    stroke(canvas, [(30, 120), (210, 120)])
    values = canvas.mask_values()
    assert values[120, 40:200].max() == 0 and values[60, 100] == 255
    assert canvas.undo_stack().undoText() == "Unmask"


def test_box_and_lasso_fill_their_outline_and_alt_takes_it_away(canvas):
    canvas.set_tool("mask_box")
    drag(canvas, [(40, 50), (100, 80), (160, 130)])  # only the corners count
    values = canvas.mask_values()
    assert values[51:129, 41:159].min() == 255
    assert values[:48, :].max() == 0 and values[132:, :].max() == 0 and values[:, 162:].max() == 0
    drag(canvas, [(60, 60), (140, 120)], Qt.KeyboardModifier.AltModifier)
    values = canvas.mask_values()
    assert values[62:118, 62:138].max() == 0 and values[55, 100] == 255
    assert canvas.undo_stack().undoText() == "Unmask box"

    canvas.set_tool("mask_lasso")
    drag(canvas, [(180, 180), (250, 180), (250, 250)])  # a triangle
    values = canvas.mask_values()
    assert values[185, 240] == 255 and values[245, 185] == 0
    assert canvas.undo_stack().undoText() == "Mask lasso"
    count = canvas.undo_stack().count()
    drag(canvas, [(10, 10), (10, 10)])  # a click: no area, no step
    assert canvas.undo_stack().count() == count


def test_the_mask_shows_as_a_translucent_overlay(canvas):
    drawn(canvas)
    before = canvas.grab().toImage()
    canvas.set_tool("mask_box")
    drag(canvas, [(0, 100), (256, 160)])
    shown = canvas.grab().toImage()
    inside, line, outside = shown.pixelColor(128, 110), shown.pixelColor(128, 128), shown.pixelColor(128, 40)
    assert outside == before.pixelColor(128, 40)  # nothing changes outside the mask
    assert inside.red() > inside.green() + 60 and inside.red() < 255  # tinted, not white and not opaque pink
    assert line.red() < inside.red() and line != before.pixelColor(128, 128)  # the line shows through


def test_the_edits_of_the_whole_mask(canvas, panel):
    row = panel.mask_row
    assert not row.edit_actions["grow_mask"].isEnabled()  # nothing to grow yet
    canvas.set_tool("mask_box")
    drag(canvas, [(100, 100), (156, 156)])
    square = canvas.mask_values()
    row.edit_actions["grow_mask"].trigger()
    assert np.array_equal(canvas.mask_values(), grown(square))
    assert canvas.mask_values()[100:156, 92].min() == 255 and canvas.mask_values()[128, 90] == 0
    row.edit_actions["shrink_mask"].trigger()
    row.edit_actions["shrink_mask"].trigger()
    assert canvas.mask_values()[128, 106] == 0 and canvas.mask_values()[128, 110] == 255
    row.edit_actions["invert_mask"].trigger()
    assert canvas.mask_values()[128, 128] == 0 and canvas.mask_values()[10, 10] == 255
    row.edit_actions["invert_mask"].trigger()
    before = canvas.mask_values()
    row.edit_actions["feather_mask"].trigger()
    soft = canvas.mask_values()
    assert np.array_equal(soft, feathered(before)) and 0 < soft[128, 110] < 255
    row.edit_actions["clear_mask"].trigger()
    assert canvas.mask_bytes() is None and not row.edit_actions["grow_mask"].isEnabled()
    texts = [canvas.undo_stack().text(i) for i in range(canvas.undo_stack().count())]
    assert texts == ["Mask box", "Grow mask", "Shrink mask", "Shrink mask", "Invert mask", "Invert mask",
                     "Feather mask", "Clear mask"]
    for _ in range(7):
        canvas.undo_stack().undo()
    assert np.array_equal(canvas.mask_values(), square)
    row.edit_actions["clear_mask"].trigger()
    row.edit_actions["clear_mask"].trigger()  # already clear: no step
    assert canvas.undo_stack().count() == 2


def test_grow_and_shrink_move_the_edge_evenly():
    dot = np.zeros((41, 41), np.uint8)
    dot[20, 20] = 255
    grew = grown(dot, 8)
    assert grew[20, 12] == grew[12, 20] == 255 and grew[20, 11] == 0  # 8 px straight out
    assert grew[14, 14] == 255 and grew[13, 13] == 0  # an octagon: diagonals reach less than a square
    assert np.array_equal(shrunk(grew, 8), dot)


def test_the_mask_follows_a_resize_and_a_new_picture(canvas):
    canvas.set_tool("mask_box")
    drag(canvas, [(200, 200), (256, 256)])
    square = canvas.mask_values()
    canvas.resize_canvas(320, 192)
    values = canvas.mask_values()
    assert values.shape == (192, 320) and np.array_equal(values[:192, :256], square[:192])
    assert values[:, 256:].max() == 0
    canvas.undo_stack().undo()
    assert np.array_equal(canvas.mask_values(), square)

    same_size = QImage(256, 256, QImage.Format.Format_RGB32)
    same_size.fill(QColor("green"))
    canvas.set_image(same_size)  # a picture of the page's size keeps the mask (use result as sketch)
    assert np.array_equal(canvas.mask_values(), square)
    canvas.set_image(same_size, mask=None)
    assert canvas.mask_bytes() is None
    canvas.undo_stack().undo()
    assert np.array_equal(canvas.mask_values(), square)
    other = same_size.scaled(128, 64)
    canvas.set_image(other)  # another size: the mask no longer fits it
    assert canvas.mask_bytes() is None and canvas.canvas_size() == QSize(128, 64)
    given = np.zeros((64, 128), np.uint8)
    given[10:20, 30:40] = 200
    canvas.set_image(other, mask=given)
    assert np.array_equal(canvas.mask_values(), given)
    with pytest.raises(ValueError):
        canvas.set_image(other, mask=np.zeros((5, 5), np.uint8))


def test_clearing_the_sketch_keeps_the_mask(canvas):
    drawn(canvas)
    canvas.set_tool("mask_box")
    drag(canvas, [(10, 10), (50, 50)])
    square = canvas.mask_values()
    canvas.clear()
    assert canvas.image() == blank_image(256, 256) and np.array_equal(canvas.mask_values(), square)


def test_undo_mid_gesture_drops_the_unfinished_box(canvas):
    canvas.set_tool("mask_box")
    drag(canvas, [(100, 100), (150, 150)])
    pos = canvas.image_to_widget(QPointF(10, 10))
    mouse(canvas, QEvent.Type.MouseButtonPress, pos)
    mouse(canvas, QEvent.Type.MouseMove, canvas.image_to_widget(QPointF(90, 90)))
    canvas.undo_stack().undo()
    mouse(canvas, QEvent.Type.MouseButtonRelease, canvas.image_to_widget(QPointF(90, 90)))
    assert canvas.mask_bytes() is None and canvas.undo_stack().index() == 0 and canvas.undo_stack().canRedo()


def test_the_tool_buttons_and_the_mask_state_follow_the_canvas(canvas, panel):
    row = panel.mask_row
    buttons = {"brush": panel.brush_button, "eraser": panel.eraser_button, **row.tool_buttons}
    for tool in buttons:
        canvas.set_tool(tool)
        assert [name for name, button in buttons.items() if button.isChecked()] == [tool]
    row.tool_buttons["mask"].click()
    row.tool_buttons["mask"].click()  # clicking the active tool keeps it
    assert canvas.tool() == "mask" and row.tool_buttons["mask"].isChecked()
    assert row.state_button.text() == "No mask ▾"
    stroke(canvas, [(50, 50), (60, 60)])
    assert row.state_button.text() == "Mask on ▾" and "only the masked part" in row.state_button.toolTip()
    clear = next(a for a in row.state_button.menu().actions() if a.text() == "&Clear mask")
    clear.trigger()
    assert row.state_button.text() == "No mask ▾" and canvas.mask_bytes() is None


def test_the_mask_layer_keeps_its_values_exactly():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    layer = mask_from_grey(values)
    assert np.array_equal(mask_grey(layer), values)
    assert layer.pixelColor(15, 15) == MASK_COLOR  # 255: the mask's colour itself


def test_a_lasso_crossing_itself_masks_all_it_encloses(canvas):
    """A star drawn in one go: its middle is enclosed twice, and is masked too."""
    corners = [(128 + 100 * np.sin(a), 128 - 100 * np.cos(a)) for a in np.radians([0, 144, 288, 72, 216, 0])]
    canvas.set_tool("mask_lasso")
    drag(canvas, corners)
    values = canvas.mask_values()
    assert values[128, 128] == 255 and values[60, 128] == 255 and values[20, 20] == 0


def test_a_pens_eraser_end_unmasks_with_a_mask_brush_and_a_box_is_dragged_as_with_a_mouse(canvas):
    sketch = drawn(canvas)
    canvas.set_tool("mask_box")
    T = QEvent.Type
    assert not tablet(canvas, pen(), T.TabletPress, QPointF(20, 20), 1.0)  # left to Qt to replay as a mouse
    drag(canvas, [(20, 20), (200, 200)])
    canvas.set_tool("mask")
    canvas.set_brush_size(20)
    eraser = QPointingDevice("test eraser", 4243, QInputDevice.DeviceType.Stylus, QPointingDevice.PointerType.Eraser,
                             QInputDevice.Capability.Position | QInputDevice.Capability.Pressure, 1, 3)
    assert tablet(canvas, eraser, T.TabletPress, QPointF(40, 100), 1.0)
    for x in range(50, 190, 10):
        tablet(canvas, eraser, T.TabletMove, QPointF(x, 100), 1.0)
    tablet(canvas, eraser, T.TabletRelease, QPointF(180, 100), 0.0)
    values = canvas.mask_values()
    assert values[100, 60:170].max() == 0 and values[50, 100] == 255
    assert canvas.undo_stack().undoText() == "Unmask" and canvas.image() == sketch
