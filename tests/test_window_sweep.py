"""Generate → Sweep… in a real window on the tiny model: the sheet fills in as cells finish, equal
values run once, Cancel and a new request keep the finished cells, a click on a cell makes it the
result, the sheet saves as one PNG, and saved pictures carry (or, by choice, leave out) their sketch."""

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog

from sketchpad.core.contact_sheet import read_sheet
from sketchpad.core.params import RANDOM_SEED
from sketchpad.core.storage import read_embedded_sketch, read_png_parameters
from sketchpad.core.sweep import DENOISE, START
from sketchpad.qimages import qimage_to_pil
from sketchpad.ui.session_state import RunStatus
from window_harness import WAIT_MS, draw_line, make_window, started, window  # noqa: F401  (fixture)


def pixels(image: QImage) -> np.ndarray:
    return np.asarray(qimage_to_pil(image).convert("RGB"))


def sweep_and_wait(qtbot, window, axis, values, seeds=1):  # noqa: F811
    with qtbot.waitSignal(window.session.sheet_changed, timeout=WAIT_MS,
                          check_params_cb=lambda sheet: sheet.status is not RunStatus.GENERATING):
        request = window.sweeps.run(axis, values, seeds)
    assert request
    return window.session.sheet


def seeded(window, seed=11, **changes):  # noqa: F811
    window.panel.set_params(window.panel.params().replace(seed=seed, **changes))


def single_run(qtbot, window, params, sketch: QImage) -> np.ndarray:  # noqa: F811
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS) as result:
        window.worker.request(params, sketch)
    return pixels(result.args[0].image)


def test_every_cell_is_bit_for_bit_a_run_of_its_own_and_an_ordinary_result(qtbot, window):  # noqa: F811
    draw_line(qtbot, window.canvas, (10, 10), (50, 50))
    seeded(window)
    sheet = sweep_and_wait(qtbot, window, DENOISE, (0.4, 1.0), seeds=2)
    assert sheet.status is RunStatus.FINISHED and len(sheet.done) == len(sheet.plan.cells) == 4
    assert window.results.showing_sheet()
    for cell, entry in sheet.done.items():
        assert entry.info.params.seed == cell.params.seed and entry.info.params.strength == cell.params.strength
        assert np.array_equal(pixels(entry.picture()), single_run(qtbot, window, cell.params, sheet.sketch))
        assert entry in window.session.history() and entry.path is not None  # kept like any result
    assert window.session.status_text().startswith("done · 4 pictures")


def test_values_that_run_the_same_steps_are_one_cell_that_runs_once(qtbot, window):  # noqa: F811
    seeded(window, steps=4)
    made = []
    window.worker.cell_ready.connect(lambda cell, outcome: made.append(cell))
    sheet = sweep_and_wait(qtbot, window, DENOISE, (0.75, 0.8, 0.3))
    assert len(made) == len(sheet.plan.cells) == 2  # 0.75 and 0.8 both run steps 2–5 of 5
    assert sheet.plan.merged[0].values == (0.75, 0.8)
    assert "0.75, 0.80" in window.sheet.caption.text() or "share a cell" in window.sheet.caption.text()


def test_a_cell_whose_picture_is_on_show_joins_the_sheet_without_running(qtbot, window):  # noqa: F811
    seeded(window, strength=0.6)
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS):
        window.generate()
    shown = window.session.shown
    made = []
    window.worker.cell_ready.connect(lambda cell, outcome: made.append(cell))
    sheet = sweep_and_wait(qtbot, window, DENOISE, (0.3, 0.6))
    assert len(made) == 1 and sheet.done[sheet.plan.cell_for(0.6)] is shown


def test_cancel_stops_the_rest_and_keeps_the_finished_cells(qtbot, window):  # noqa: F811
    seeded(window)
    window.worker.cell_ready.connect(lambda cell, outcome: window.cancel())
    sheet = sweep_and_wait(qtbot, window, DENOISE, (0.4, 0.6, 0.8, 1.0))
    assert sheet.status is RunStatus.CANCELLED
    assert 1 <= len(sheet.done) < 4
    assert window.session.status_text() == f"cancelled · {len(sheet.done)} of 4 pictures made"
    assert f"{len(sheet.done)} of 4 made" in window.sheet.caption.text()
    window.sheet.view.grab()  # the unfinished cells draw as "not run" without a picture


def test_a_new_generate_wins_over_the_sweep_and_the_finished_cells_stay(qtbot, window):  # noqa: F811
    seeded(window)
    first = []

    def generate_once(cell, outcome):
        if not first:
            first.append(cell)
            window.panel.set_params(window.panel.params().replace(prompt="a castle"))
            window.generate()

    window.worker.cell_ready.connect(generate_once)
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS,
                          check_params_cb=lambda outcome: outcome.info.params.prompt == "a castle"):
        window.sweeps.run(DENOISE, (0.4, 0.6, 0.8, 1.0))
    sheet = window.session.sheet
    assert sheet.status is RunStatus.CANCELLED and first[0] in sheet.done and len(sheet.done) < 4
    assert window.session.shown.info.params.prompt == "a castle"
    assert not window.results.showing_sheet()  # the new run's steps show in the picture


def test_clicking_a_cell_makes_it_the_result_and_turns_the_dial_to_it(qtbot, window):  # noqa: F811
    seeded(window, strength=0.5)
    sheet = sweep_and_wait(qtbot, window, DENOISE, (0.3, 0.9))
    cell = sheet.plan.cell_for(0.9)
    view = window.sheet.view
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view.picture_rect(cell).center())
    assert window.session.shown is sheet.done[cell] and view.current() is cell
    assert window.panel.params().strength == 0.9 and window.session.request.strength == 0.9
    assert window.runs.generate() == 0  # that picture is on show: nothing to run
    QTest.mouseDClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      view.picture_rect(sheet.plan.cell_for(0.3)).center())
    assert not window.results.showing_sheet() and window.panel.params().strength == 0.3


def test_a_cell_of_a_start_step_sweep_sets_the_start_step_and_a_random_seed_stays_random(qtbot, window):  # noqa: F811
    window.panel.set_params(window.panel.params().replace(seed=RANDOM_SEED, steps=4))
    sheet = sweep_and_wait(qtbot, window, START, (0, 2), seeds=2)
    cell = sheet.plan.cell_for(2, sheet.plan.seeds[1])
    window.sweeps.take_cell(cell)
    request = window.session.request
    assert request.start_at_step == 2 and request.strength is None and request.seed == RANDOM_SEED
    assert window.session.live_request().seed == sheet.plan.seeds[1]  # Live goes on from that picture


def test_the_sheet_saves_as_one_png_listing_every_cell_with_the_sketch_inside(qtbot, window):  # noqa: F811
    draw_line(qtbot, window.canvas, (5, 40), (60, 40))
    seeded(window)
    sheet = sweep_and_wait(qtbot, window, DENOISE, (0.4, 0.8))
    window.sheet.save_button.click()
    saved = sorted((window.session.output_dir).glob("sheet*.png"))
    assert len(saved) == 1
    record = read_sheet(saved[0])
    assert [c.label for c in record.cells] == [c.label for c in sheet.plan.cells]
    assert [c.info.params for c in record.cells] == [sheet.done[c].info.params for c in sheet.plan.cells]
    assert np.array_equal(np.asarray(read_embedded_sketch(saved[0]).convert("RGB")), pixels(sheet.sketch))


def test_saving_with_nothing_to_save_says_so_and_writes_nothing(qtbot, window):  # noqa: F811
    messages = []
    window.session.message.connect(messages.append)
    assert window.files.save_sheet() is None
    assert "no contact sheet" in messages[-1] and not list(window.session.output_dir.glob("*.png"))


def test_the_dialog_runs_what_it_says_and_refuses_values_that_make_no_sweep(qtbot, window):  # noqa: F811
    seeded(window, steps=4)
    dialog = window.sweeps.dialog
    dialog.prepare()
    assert dialog.axis_combo.currentData() == DENOISE and dialog.values_edit.text() == "0.20, 0.40, 0.60, 0.80, 1.00"
    assert dialog.summary.text().startswith("5 pictures at seed 11") and dialog.run_button.isEnabled()
    dialog.values_edit.setText("0.75, 0.8")
    dialog.values_edit.textEdited.emit("0.75, 0.8")
    assert "run the same steps: one picture" in dialog.summary.text()
    for bad in ("0.3, 1.7", "", "0.3,,0.5", "soft"):
        dialog.values_edit.setText(bad)
        dialog.values_edit.textEdited.emit(bad)
        assert not dialog.run_button.isEnabled() and "\n" not in dialog.summary.text() and dialog.summary.text()
    dialog.values_edit.setText("0.4, 0.8")
    dialog.values_edit.textEdited.emit("0.4, 0.8")
    dialog.seeds_spin.setValue(2)
    dialog.exec = lambda: QDialog.DialogCode.Accepted  # the person presses Run sweep
    with qtbot.waitSignal(window.session.sheet_changed, timeout=WAIT_MS,
                          check_params_cb=lambda sheet: not sheet.active):
        assert window.sweeps.ask()
    assert len(window.session.sheet.done) == 4
    dialog.prepare()  # edited values are kept between openings
    assert dialog.values_edit.text() == "0.4, 0.8"


def test_saved_pictures_carry_their_sketch_unless_told_not_to_and_the_choice_is_remembered(
        qtbot, window, tmp_path):  # noqa: F811
    draw_line(qtbot, window.canvas, (10, 50), (50, 10))
    sketch = pixels(window.canvas.image())
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS):
        window.generate()
    with_sketch = window.files.save_result()
    assert np.array_equal(np.asarray(read_embedded_sketch(with_sketch).convert("RGB")), sketch)
    assert np.array_equal(np.asarray(read_embedded_sketch(window.session.shown.path).convert("RGB")), sketch)
    window.actions["embed_sketch"].trigger()  # off
    assert not window.session.embed_sketch
    without = window.files.save_result()
    assert read_embedded_sketch(without) is None and read_png_parameters(without) is not None
    window.canvas.clear()
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS):
        window.generate()
    assert read_embedded_sketch(window.session.shown.path) is None  # the kept copy leaves it out too
    window.close()
    reopened = make_window(qtbot, tmp_path, None, state_dir=tmp_path / "state2")
    assert not reopened.session.embed_sketch and not reopened.actions["embed_sketch"].isChecked()


def test_opening_a_picture_that_carries_its_sketch_offers_to_restore_it(qtbot, window):  # noqa: F811
    draw_line(qtbot, window.canvas, (10, 10), (60, 30))
    sketch = pixels(window.canvas.image())
    seeded(window, seed=123, strength=0.55, prompt="a lighthouse")
    with qtbot.waitSignal(window.worker.result_ready, timeout=WAIT_MS):
        window.generate()
    saved = window.files.save_result()
    picture = pixels(window.session.shown.picture())
    window.canvas.clear()
    window.panel.set_params(window.panel.params().replace(prompt="something else", strength=0.9))
    asked = []
    window.files.ask_restore_sketch = lambda path, carried: asked.append(path) or True
    assert window.files.open_sketch(saved)
    assert asked == [saved]
    assert np.array_equal(pixels(window.canvas.image()), sketch)
    request = window.session.request
    assert (request.prompt, request.strength, request.seed) == ("a lighthouse", 0.55, 123)
    window.files.ask_restore_sketch = lambda path, carried: False  # No: the picture itself is the sketch
    assert window.files.open_sketch(saved)
    assert np.array_equal(pixels(window.canvas.image()), picture)
