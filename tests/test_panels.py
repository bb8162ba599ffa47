"""GenerationPanel, PreviewPanel and HistoryStrip: values, signals, enabling, replay."""

import math

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog

from sketchpad.core.params import MAX_SEED, RANDOM_SEED, GenerationParams
from sketchpad.core.registry import SCHEDULERS
from sketchpad.ui.denoise_dial import band_arcs
from text_layout import command_lines
from sketchpad.ui.denoise_dial import BANDS, denoise_band
from sketchpad.ui.generation_panel import GenerationPanel
from sketchpad.ui.history_strip import MAX_ENTRIES, HistoryStrip
from sketchpad.ui.preview_panel import PreviewPanel


@pytest.fixture
def panel(qtbot):
    p = GenerationPanel()
    qtbot.addWidget(p)
    return p


def solid(color: str, w: int = 8, h: int = 8) -> QImage:
    image = QImage(w, h, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    return image


def type_seed(panel, text: str) -> None:
    box = panel.seed_box
    box.lineEdit().selectAll()
    box.lineEdit().insert(text)  # as typed: the spin box validates and emits valueChanged
    box.interpretText()


# ---- GenerationPanel: the denoise dial ------------------------------------------------------
def test_defaults(panel):
    p = panel.params()
    assert (p.strength, p.start_at_step, p.steps, p.cfg, p.seed) == (0.75, None, 20, 7.5, RANDOM_SEED)
    assert (p.scheduler, p.preview_method) == (None, "latent2rgb")
    assert panel.denoise_label.text() == "0.75 · restyle"


@pytest.mark.parametrize("dial, strength", [(0, 0.0), (7, 0.07), (33, 0.33), (75, 0.75), (100, 1.0)])
def test_dial_is_denoise_is_strength(panel, dial, strength):
    panel.dial.setValue(dial)
    assert panel.denoise() == strength
    assert panel.params().strength == strength
    assert panel.denoise_label.text().startswith(f"{strength:.2f} · ")


def test_set_denoise_moves_dial_in_hundredths(panel):
    panel.set_denoise(0.333)
    assert panel.dial.value() == 33 and panel.denoise() == 0.33
    panel.set_denoise(7)  # clamped
    assert panel.denoise() == 1.0


@pytest.mark.parametrize("value, band", [
    (0.0, "unchanged"), (0.01, "subtle"), (0.2, "subtle"), (0.4, "subtle"), (0.41, "restyle"),
    (0.45, "restyle"), (0.5, "restyle"), (0.7, "restyle"), (0.75, "restyle"), (0.76, "reimagine"),
    (0.77, "reimagine"), (0.8, "reimagine"), (1.0, "reimagine"),
])
def test_denoise_band(value, band):
    assert denoise_band(value) == band


LEGEND_RANGES = {"subtle": "0.01–0.40", "restyle": "0.41–0.75", "reimagine": "≥ 0.76"}


def test_every_dial_position_has_one_range_and_label_legend_and_arcs_agree(panel):
    """The issue's gaps: 0.4-0.5 belonged to no range, 0.75 read restyle and 0.77 reimagine
    while the legend said 0.5-0.7 and 0.8-1.0."""
    arcs = {name: (start, end) for name, start, end in band_arcs()}
    ordered = list(arcs.values())
    assert 0.0 < ordered[0][0] < 0.01 and ordered[-1][1] == 1.0  # only 0.00 (unchanged) outside
    assert all(a[1] == b[0] for a, b in zip(ordered, ordered[1:]))  # the arcs touch: no gap
    for hundredths in range(1, 101):
        panel.dial.setValue(hundredths)
        owners = [name for name, low, high, _ in BANDS if low <= hundredths <= high]
        assert len(owners) == 1, hundredths
        name = owners[0]
        assert panel.denoise_label.text() == f"{hundredths / 100:.2f} · {name}"
        assert [n for n, label in panel._legend.items() if "<b>" in label.text()] == [name]
        assert LEGEND_RANGES[name] in panel._legend[name].text()  # the legend says the range
        start, end = arcs[name]
        assert start < hundredths / 100 <= end  # drawn inside its own arc


def test_range_label_follows_dial(panel):
    for dial, band in ((30, "subtle"), (60, "restyle"), (90, "reimagine")):
        panel.dial.setValue(dial)
        assert panel.denoise_label.text() == f"{dial / 100:.2f} · {band}"
        assert "<b>" in panel._legend[band].text()  # the current range is highlighted
        assert sum("<b>" in label.text() for label in panel._legend.values()) == 1


# ---- the two knobs ---------------------------------------------------------------------------
def test_knob_switch(panel):
    assert panel.dial.isEnabled() and not panel.start_spin.isEnabled()
    panel.start_radio.click()
    assert not panel.dial.isEnabled() and panel.start_spin.isEnabled()
    p = panel.params()
    assert p.strength is None and p.start_at_step == 5  # 0.75 of 20 steps carried over
    panel.start_spin.setValue(10)
    panel.denoise_radio.click()
    assert panel.dial.isEnabled() and not panel.start_spin.isEnabled()
    p = panel.params()
    assert p.start_at_step is None and p.strength == 0.5


def test_start_step_maximum_follows_steps(panel):
    panel.start_radio.click()
    panel.start_spin.setValue(15)
    panel.steps_spin.setValue(10)
    assert panel.start_spin.maximum() == 10 and panel.params().start_at_step == 10
    panel.steps_spin.setValue(40)
    assert panel.start_spin.maximum() == 40
    panel.start_spin.setValue(40)
    assert panel.params().start_at_step == 40


def test_steps_change_params_valid_inside_signal(panel, qtbot):
    panel.start_radio.click()
    panel.start_spin.setValue(20)
    seen = []
    panel.params_changed.connect(lambda: seen.append(panel.params()))  # must not raise
    panel.steps_spin.setValue(8)
    assert [p.start_at_step for p in seen] == [8]


# ---- the panel edits the session ------------------------------------------------------------
def test_every_edit_is_the_sessions_request(panel, qtbot):
    """The session holds the one request: Generate, Live, autosave and settings read it there."""
    session = panel.session
    assert session.request == panel.params()  # the defaults, from the start
    changes = []
    session.request_changed.connect(changes.append)
    qtbot.keyClicks(panel.prompt_edit, "a cat")
    panel.dial.triggerAction(panel.dial.SliderAction.SliderPageStepAdd)
    assert session.request.prompt == "a cat" and session.request.strength == 0.85 and changes[-1] == session.request
    # a LoRA being typed counts once finished; a finished entry that makes no request says why
    panel.presets.lora_edit.setFocus()
    qtbot.keyClicks(panel.presets.lora_edit, "ink:")
    assert session.request.loras == () and session.request_problem == ""
    panel.finish_editing()  # what Generate does first
    assert "ink:" in session.request_problem and session.request.prompt == "a cat"
    panel.presets.lora_edit.setText("ink:0.5")
    assert session.request_problem == "" and session.request.loras[0].weight == 0.5
    # a request from outside (a PNG, the history) is shown, and is the session's
    session.load_request(GenerationParams(prompt="a dog", seed=12, strength=0.3))
    assert panel.prompt_edit.toPlainText() == "a dog" and panel.seed() == 12
    assert session.request == panel.params()


# ---- params_changed ------------------------------------------------------------------------
def test_params_changed_on_prompt_edit(panel, qtbot):
    panel.prompt_edit.setFocus()
    with qtbot.waitSignal(panel.params_changed, timeout=1000):
        qtbot.keyClicks(panel.prompt_edit, "a cat")
    assert panel.params().prompt == "a cat"


def test_params_changed_on_dial_turn(panel, qtbot):
    with qtbot.waitSignal(panel.params_changed, timeout=1000):
        panel.dial.triggerAction(panel.dial.SliderAction.SliderPageStepAdd)
    assert panel.params().strength == 0.85


@pytest.mark.parametrize("change", [
    lambda p: p.negative_edit.setPlainText("blurry"), lambda p: p.steps_spin.setValue(30),
    lambda p: p.cfg_spin.setValue(5.0), lambda p: p.scheduler_combo.setCurrentIndex(2),
    lambda p: p.preview_combo.setCurrentIndex(1), lambda p: p.start_radio.click(),
    lambda p: p.dice_button.click(), lambda p: p.lock_button.click(), lambda p: p.seed_box.setValue(99),
])
def test_each_change_emits_once(panel, change):
    seen = []
    panel.params_changed.connect(lambda: seen.append(1))
    change(panel)
    assert seen == [1]


def test_live_toggle(panel, qtbot):
    with qtbot.waitSignal(panel.live_changed, timeout=1000) as blocker:
        panel.live_checkbox.click()
    assert blocker.args == [True] and panel.is_live()
    panel.set_live(False)
    assert not panel.is_live()


# ---- set_params round trip -------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    GenerationParams(prompt="a knight\nin armour", negative_prompt="blurry", strength=0.35, steps=30,
                     cfg=6.5, seed=1234, scheduler="euler_a", preview_method="taesd"),
    GenerationParams(prompt="x", strength=None, start_at_step=7, steps=25, cfg=0.0, seed=MAX_SEED,
                     scheduler=None, preview_method="none"),
    GenerationParams(prompt="", strength=1.0, seed=RANDOM_SEED, scheduler="dpmpp_2m_karras"),
    GenerationParams(prompt="", strength=0.0, seed=0, scheduler=SCHEDULERS[0], preview_method="vae"),
])
def test_set_params_round_trip(panel, params):
    seen = []
    panel.params_changed.connect(lambda: seen.append(1))
    panel.set_params(params)
    assert panel.params() == params
    assert seen == []  # restoring is silent unless asked
    panel.set_params(GenerationParams(prompt="other"), emit=True)
    assert seen == [1]
    panel.set_params(params)
    assert panel.params() == params


def test_set_params_does_not_carry_knobs_over(panel):
    panel.set_params(GenerationParams(prompt="", strength=None, start_at_step=3))
    assert panel.start_spin.value() == 3 and panel.start_spin.isEnabled()
    panel.set_params(GenerationParams(prompt="", strength=0.2))
    assert panel.denoise() == 0.2 and panel.dial.isEnabled() and not panel.start_spin.isEnabled()


# ---- seed --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seed", [("0", 0), (str(MAX_SEED), MAX_SEED), ("-1", RANDOM_SEED),
                                        ("1234", 1234)])
def test_seed_field_accepts(panel, text, seed):
    type_seed(panel, text)
    assert panel.seed() == seed
    assert panel.params().seed == seed  # a typed seed is locked in; -1 stays random


def test_seed_field_rejects_out_of_range(panel):
    panel.seed_box.lineEdit().selectAll()
    for ch in str(MAX_SEED + 1):  # the last keystroke would overflow: the validator refuses it
        panel.seed_box.lineEdit().insert(ch)
    panel.seed_box.interpretText()
    assert 0 <= panel.seed() <= MAX_SEED


def test_random_seed_reads_random(panel):
    assert panel.seed() == RANDOM_SEED and panel.seed_box.text() == "random"


def test_dice_draws_a_seed_and_locks(panel):
    seeds = set()
    for _ in range(3):
        panel.dice_button.click()
        seeds.add(panel.seed())
    assert len(seeds) > 1 and all(0 <= s <= MAX_SEED for s in seeds)
    assert panel.is_locked() and panel.params().seed == panel.seed()


def test_lock_semantics(panel):
    """The field always says what the next Generate uses; Keep is on exactly while it holds a seed."""
    assert not panel.is_locked() and panel.params().seed == RANDOM_SEED
    # before any run Live is random too; after one it reuses the used seed, shown beside
    assert panel.session.live_request().seed == RANDOM_SEED
    panel.session.note_last_seed(777)
    assert panel.used_seed_label.text() == "last: 777" and panel.seed_box.text() == "random"
    assert panel.session.request.seed == RANDOM_SEED and panel.session.live_request().seed == 777
    # Keep on: the last run's seed goes into the field and every run uses it
    panel.lock_button.click()
    assert panel.is_locked() and panel.seed() == 777 and panel.seed_box.text() == "777"
    assert panel.session.request.seed == 777 and panel.session.live_request().seed == 777
    # a typed seed is kept and used
    type_seed(panel, "42")
    assert panel.lock_button.isChecked() and panel.params().seed == 42
    # Keep off: the field says random again, and random it is
    panel.lock_button.click()
    assert not panel.lock_button.isChecked() and panel.seed_box.text() == "random"
    assert panel.params().seed == RANDOM_SEED
    # recycle: the last used seed into the field, kept
    panel.recycle_button.click()
    assert panel.seed() == 777 and panel.is_locked() and panel.params().seed == 777
    # typing -1 is random, and Keep goes off with it
    type_seed(panel, "-1")
    assert not panel.lock_button.isChecked() and panel.params().seed == RANDOM_SEED


def test_keep_before_any_run_draws_a_seed(panel):
    panel.lock_button.click()
    assert panel.is_locked() and 0 <= panel.seed() <= MAX_SEED and panel.params().seed == panel.seed()


def test_restart_restore_shows_random_when_random_is_meant(panel):
    """What the window does on restart: restore the saved request (it carries the last run's
    seed, so Live can continue) and then the saved Keep state. Unlocked must read random."""
    panel.set_params(GenerationParams(prompt="a knight", seed=31337))
    panel.set_locked(False)
    assert panel.seed_box.text() == "random" and panel.params().seed == RANDOM_SEED
    panel.set_params(GenerationParams(prompt="a knight", seed=31337))
    panel.set_locked(True)
    assert panel.seed_box.text() == "31337" and panel.params().seed == 31337


def test_recycle_needs_a_run(panel):
    assert not panel.recycle_button.isEnabled()
    panel.session.note_last_seed(5)
    assert panel.recycle_button.isEnabled()


# ---- progress and busy ---------------------------------------------------------------------
def test_progress_text(panel):
    panel.set_progress(3, 20)
    assert panel.progress_bar.text() == "step 3 / 20"
    assert panel.progress_bar.value() == 3 and panel.progress_bar.maximum() == 20


def test_progress_says_only_what_it_is_given(panel):
    """No own "idle" beside the window's state line; the count is the one the window gives."""
    panel.set_progress(0, 0)
    assert panel.progress_bar.text() == ""
    panel.set_progress(0, 0, "loading model…")
    assert panel.progress_bar.text() == "loading model…"
    panel.set_progress(8, 20)
    assert panel.progress_bar.text() == "step 8 / 20"


def test_cancel_only_while_busy(panel, qtbot):
    assert not panel.cancel_button.isEnabled() and panel.generate_button.isEnabled()
    panel.set_busy(True)
    assert panel.cancel_button.isEnabled() and panel.generate_button.isEnabled()
    with qtbot.waitSignal(panel.cancel_requested, timeout=1000):
        panel.cancel_button.click()
    with qtbot.waitSignal(panel.generate_requested, timeout=1000):
        panel.generate_button.click()
    panel.set_busy(False)
    assert not panel.cancel_button.isEnabled()


# ---- PreviewPanel --------------------------------------------------------------------------
@pytest.fixture
def preview(qtbot):
    p = PreviewPanel()
    qtbot.addWidget(p)
    return p


COLORS = ["#ff0000", "#00ff00", "#0000ff", "#ffff00"]


def run(preview, result_color="#ffffff"):
    preview.begin_run(len(COLORS))
    for i, c in enumerate(COLORS, 1):
        preview.add_step(i, len(COLORS), solid(c))
        assert preview.shown_image().pixelColor(0, 0) == QColor(c)
        assert preview.caption_text() == f"step {i} / {len(COLORS)}"
        assert not preview.scrubber.isEnabled()  # nothing to scrub while running
    preview.show_result(solid(result_color, 64, 48), "result · seed 1234 · 3.2 s")


def test_scrubber_replays_steps(preview):
    assert not preview.scrubber.isEnabled() and preview.result_image().isNull()
    run(preview)
    s = preview.scrubber
    assert s.isEnabled() and (s.minimum(), s.maximum(), s.value()) == (1, len(COLORS) + 1, len(COLORS) + 1)
    assert preview.caption_text() == "result · seed 1234 · 3.2 s"
    for k, c in enumerate(COLORS, 1):
        s.setValue(k)
        assert preview.shown_image().pixelColor(0, 0) == QColor(c)
        assert preview.caption_text().startswith(f"step {k} / {len(COLORS)}")
    s.setValue(s.maximum())
    assert preview.shown_image() == preview.result_image()
    assert preview.caption_text() == "result · seed 1234 · 3.2 s"
    assert [im.pixelColor(0, 0) for im in preview.step_images()] == [QColor(c) for c in COLORS]


def test_begin_run_clears_steps(preview):
    run(preview)
    preview.begin_run(10)
    assert preview.step_images() == [] and not preview.scrubber.isEnabled()
    assert not preview.result_image().isNull()  # the last result is kept until a new one


def test_steps_without_previews(preview):
    preview.begin_run(3)
    for i in range(1, 4):
        preview.add_step(i, 3, QImage())  # previews off
    assert preview.caption_text() == "step 3 / 3" and preview.shown_image().isNull()
    preview.show_result(solid("#808080"), "done")
    assert not preview.scrubber.isEnabled()  # nothing to replay
    assert preview.shown_image().pixelColor(0, 0) == QColor("#808080")


def test_caption_and_error_bar(preview):
    preview.show_caption("Loading model…")
    assert preview.caption_text() == "Loading model…" and preview.error_bar.isHidden()
    preview.show_error("CUDA out of memory")
    assert preview.error_text() == "CUDA out of memory" and not preview.error_bar.isHidden()
    assert "CUDA out of memory" in preview.caption_text()


def test_an_error_stays_through_the_next_runs_steps_and_result_until_told(preview):
    """The session says when an error's cause is gone; the preview never drops one on its own."""
    preview.show_error("CUDA out of memory")
    preview.begin_run(2)
    preview.add_step(1, 2, solid("#000000"))
    preview.show_result(solid("#ffffff"), "result")
    assert preview.error_text() == "CUDA out of memory" and not preview.error_bar.isHidden()
    assert preview.caption.text() == "result"
    preview.show_error("")
    assert preview.error_text() == "" and preview.error_bar.isHidden()


def test_an_error_is_dismissed(preview):
    preview.show_error("could not save: disk full")
    preview.dismiss_button.click()
    assert preview.error_text() == "" and preview.error_bar.isHidden()


def test_cancelled_run_is_marked(preview, qtbot):
    preview.resize(200, 200)
    preview.show()
    qtbot.waitExposed(preview)
    preview.begin_run(10)
    for step in (1, 2, 3):
        preview.add_step(step, 10, solid("#ffffff"))
    bright = preview.view.grab().toImage().pixelColor(100, 100)
    preview.mark_cancelled()
    assert preview.caption_text() == "cancelled at step 3 of 10" and preview.is_cancelled()
    dim = preview.view.grab().toImage().pixelColor(100, 100)
    assert dim.value() < bright.value() - 80  # the unfinished picture is visibly dimmed
    preview.begin_run(10)
    preview.add_step(1, 10, solid("#ffffff"))  # the next run's picture is not dimmed
    assert not preview.is_cancelled() and preview.view.grab().toImage().pixelColor(100, 100) == bright


def test_commands_in_messages_do_not_break(preview, qtbot):
    command = "python -m sketchpad.tiny_model ~/sketchpad-tiny"
    text = f"To try it, write the tiny model with `{command}` and choose that folder"
    preview.show_caption(text)
    assert preview.caption_text() == text
    assert command_lines(preview.caption, 120) == [(command, 1)]  # far narrower than the command
    preview.show_error(text)
    assert command_lines(preview.error_label, 120) == [(command, 1)]
    preview.show()
    qtbot.waitExposed(preview)
    preview.resize(150, 300)  # too narrow for the command: it wraps at its spaces, never cut off
    assert command_lines(preview.error_label, 130)[0][1] > 1
    preview.resize(600, 300)
    assert command_lines(preview.error_label, 130) == [(command, 1)]


def test_view_draws_scaled_image(preview, qtbot):
    preview.resize(300, 300)
    preview.show()
    qtbot.waitExposed(preview)
    preview.add_step(1, 1, solid("#ff0000", 8, 8))  # a tiny latent preview, scaled up
    shot = preview.view.grab().toImage()
    centre = shot.pixelColor(shot.width() // 2, shot.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) == (255, 0, 0)


# ---- HistoryStrip --------------------------------------------------------------------------
@pytest.fixture
def strip(qtbot):
    s = HistoryStrip()
    qtbot.addWidget(s)
    s.resize(600, 110)
    s.show()
    qtbot.waitExposed(s)
    return s


def test_history_newest_first_and_click(strip, qtbot):
    payloads = [object() for _ in range(3)]
    for i, payload in enumerate(payloads):
        strip.add_entry(solid(COLORS[i], 64, 32), payload, f"entry {i}")
    assert strip.count() == 3 and strip.payloads() == payloads[::-1]
    lw = strip.list_widget
    item = lw.item(1)
    assert item.toolTip() == "entry 1"
    with qtbot.waitSignal(strip.entry_selected, timeout=1000) as blocker:
        qtbot.mouseClick(lw.viewport(), Qt.MouseButton.LeftButton, pos=lw.visualItemRect(item).center())
    assert blocker.args[0] is payloads[1]
    with qtbot.waitSignal(strip.restore_requested, timeout=1000) as blocker:
        qtbot.mouseDClick(lw.viewport(), Qt.MouseButton.LeftButton, pos=lw.visualItemRect(item).center())
    assert blocker.args[0] is payloads[1]


def test_history_menu_actions(strip, qtbot):
    payload = {"id": 1}
    strip.add_entry(solid("#123456"), payload, "x")
    menu = strip.menu_for(strip.list_widget.item(0))
    actions = {a.text(): a for a in menu.actions()}
    for text, signal in (("Restore settings", strip.restore_requested), ("Show", strip.entry_selected),
                         ("Use as sketch", strip.use_as_sketch_requested)):
        with qtbot.waitSignal(signal, timeout=1000) as blocker:
            actions[text].trigger()
        assert blocker.args[0] is payload
    assert strip.list_widget.itemAt(QPoint(-5, -5)) is None  # no menu off the entries


def test_history_is_bounded(strip):
    for i in range(MAX_ENTRIES + 5):
        strip.add_entry(solid("#000000"), i, str(i))
    assert MAX_ENTRIES == 100 and strip.count() == MAX_ENTRIES and len(strip._payloads) == MAX_ENTRIES
    assert strip.payload(0) == MAX_ENTRIES + 4 and strip.payload(MAX_ENTRIES - 1) == 5


def test_a_full_strip_shows_its_thumbnails_whole_above_its_scrollbar(strip, qtbot):
    """More entries than the strip is wide: the sideways scrollbar takes its own room."""
    for i in range(12):
        strip.add_entry(solid(COLORS[i % len(COLORS)], 96, 96), i, str(i))
    lw = strip.list_widget
    qtbot.waitUntil(lambda: lw.horizontalScrollBar().isVisible(), timeout=1000)
    item = lw.visualItemRect(lw.item(0))
    assert lw.viewport().rect().contains(item), (item, lw.viewport().rect())
    assert lw.viewport().geometry().bottom() < lw.horizontalScrollBar().mapTo(lw, QPoint(0, 0)).y()


def test_kept_previews_are_bounded(preview, monkeypatch):
    from sketchpad.ui import preview_panel

    image = solid("#000000", 32, 32)
    monkeypatch.setattr(preview_panel, "MAX_KEPT_BYTES", 3 * image.sizeInBytes())
    preview.begin_run(5)
    for i in range(1, 6):
        preview.add_step(i, 5, image)
    assert len(preview.step_images()) == 3 and preview.caption_text() == "step 5 / 5"
    preview.show_result(solid("#ffffff"), "done")
    assert preview.scrubber.maximum() == 4


def test_long_runs_restore_exactly(panel):
    from sketchpad.core.params import MAX_STEPS

    p = GenerationParams(prompt="", strength=None, start_at_step=MAX_STEPS - 1, steps=MAX_STEPS, seed=9)
    panel.set_params(p)
    assert panel.params() == p
    panel.set_locked(False)
    assert not panel.is_locked() and panel.params().seed == RANDOM_SEED


# ---- the dial: a click does not jump, dragging turns it -----------------------------------------
def _dial_point(dial, value: float, radius: float = 40.0) -> QPoint:
    angle = math.radians(dial.value_angle(value))
    return QPoint(round(dial.width() / 2 + radius * math.cos(angle)),
                  round(dial.height() / 2 - radius * math.sin(angle)))


@pytest.fixture
def shown_panel(panel, qtbot):
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_a_click_on_the_dial_does_not_change_it(shown_panel, qtbot):
    dial = shown_panel.dial
    seen = []
    shown_panel.params_changed.connect(lambda: seen.append(1))
    for value in (10, 50, 95):  # QDial jumps to where it is clicked: 0.75 -> 0.10
        QTest.mouseClick(dial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         _dial_point(dial, value))
    assert dial.value() == 75 and seen == []


def test_dragging_the_dial_turns_it_by_the_angle_dragged(shown_panel):
    dial = shown_panel.dial
    QTest.mousePress(dial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _dial_point(dial, 20))
    for value in range(21, 41):  # a quarter of the way round, clockwise, starting far from the knob
        QTest.mouseMove(dial, _dial_point(dial, value))
    QTest.mouseRelease(dial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _dial_point(dial, 40))
    assert dial.value() == 95  # 0.75 + 0.20
    QTest.mousePress(dial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _dial_point(dial, 100))
    for value in range(99, -1, -1):  # all the way counter-clockwise: 0.95 - 1.00 stops at 0
        QTest.mouseMove(dial, _dial_point(dial, value))
    QTest.mouseRelease(dial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _dial_point(dial, 0))
    assert dial.value() == 0


def test_keys_and_wheel_still_turn_the_dial(shown_panel):
    dial = shown_panel.dial
    QTest.keyClick(dial, Qt.Key.Key_Right)
    assert dial.value() == 76
    QTest.keyClick(dial, Qt.Key.Key_PageDown)
    assert dial.value() == 66
    centre = QPointF(dial.width() / 2, dial.height() / 2)
    wheel = QWheelEvent(centre, dial.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(dial, wheel)
    assert dial.value() != 66


def test_turning_the_dial_never_changes_the_panels_width(panel):
    """"1.00 · reimagine" is wider than "0.75 · restyle": the panel grew and got a sideways scrollbar."""
    widths = set()
    for value in range(0, 101):
        panel.dial.setValue(value)
        panel.layout().activate()
        widths.add(panel.minimumSizeHint().width())
        widths.add(panel.settings_area.widget().minimumSizeHint().width())
    assert len(widths) == 2, widths  # one for the panel, one for its content, each constant


# ---- the model control ---------------------------------------------------------------------------
def test_model_control_shows_the_model_and_offers_choices(panel, qtbot, monkeypatch, tmp_path):
    panel.set_model(str(tmp_path / "sd15-folder"))
    assert panel.model_picker.combo.currentText() == "sd15-folder"
    texts = [a.text() for a in panel.model_picker.menu.actions()]
    assert any("folder" in t for t in texts) and any(".safetensors" in t for t in texts)
    assert any("Hugging Face" in t for t in texts)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "other"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "m.safetensors"), ""))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("  someone/model  ", True))
    chosen = []
    panel.model_chosen.connect(chosen.append)
    for action in panel.model_picker.menu.actions():
        action.trigger()
    assert chosen == [str(tmp_path / "other"), str(tmp_path / "m.safetensors"), "someone/model"]


def test_model_control_offers_recent_models(panel):
    panel.set_model("stable-diffusion-v1-5/stable-diffusion-v1-5")
    panel.set_model("/models/tiny")
    combo = panel.model_picker.combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["tiny", "stable-diffusion-v1-5/stable-diffusion-v1-5"]
    chosen = []
    panel.model_chosen.connect(chosen.append)
    combo.activated.emit(1)  # as a person picks it from the list
    combo.activated.emit(0)  # the one in use: nothing to do
    assert chosen == ["stable-diffusion-v1-5/stable-diffusion-v1-5"]


# ---- GenerationPanel: "Keep my lines" -----------------------------------------------------
def test_keep_my_lines_row_writes_params_control(panel, tmp_path):
    from sketchpad.core.params import ControlSpec
    assert panel.params().control is None  # off by default
    model = str(tmp_path / "scribble.safetensors")
    panel.lines.model_edit.setText(model)
    panel.lines.strength_spin.setValue(0.8)
    panel.lines.start_spin.setValue(0.1)
    panel.lines.end_spin.setValue(0.9)
    assert panel.params().control is None  # unchecked: no ControlNet whatever the row says
    with qtbot_signal(panel):
        panel.lines.checkbox.setChecked(True)
    assert panel.params().control == ControlSpec(model=model, strength=0.8, start=0.1, end=0.9)
    panel.lines.strength_spin.setValue(0.0)
    assert panel.params().control is None  # strength 0 means no ControlNet


def test_keep_my_lines_restored_by_set_params(panel):
    from sketchpad.core.params import ControlSpec
    spec = ControlSpec(model="lllyasviel/control_v11p_sd15_scribble", strength=1.5, start=0.2, end=0.7)
    panel.set_params(GenerationParams(prompt="a", control=spec))
    assert panel.lines.checkbox.isChecked() and not panel.lines.model_row.isHidden()
    assert panel.params().control == spec
    panel.set_params(GenerationParams(prompt="a"))
    assert not panel.lines.checkbox.isChecked() and panel.params().control is None


def test_keep_my_lines_checked_without_model_says_so(panel):
    from sketchpad.core.errors import SketchpadError
    panel.lines.checkbox.setChecked(True)
    with pytest.raises(SketchpadError, match="ControlNet needs a model"):
        panel.params()


class qtbot_signal:
    """Asserts the panel says params_changed inside the block."""

    def __init__(self, panel):
        self.panel, self.seen = panel, []

    def __enter__(self):
        self.panel.params_changed.connect(self._seen)

    def _seen(self):
        self.seen.append(1)

    def __exit__(self, *exc):
        self.panel.params_changed.disconnect(self._seen)
        assert self.seen, "params_changed was not emitted"


# ---- GenerationPanel: LoRAs -----------------------------------------------------------------
def test_lora_line_writes_params_loras_and_set_params_shows_them(panel):
    from sketchpad.core.errors import SketchpadError
    from sketchpad.core.params import LoraSpec
    panel.presets.lora_edit.setText(r"C:\loras\ink.safetensors:0.6, owner/style-lora")
    assert panel.params().loras == (LoraSpec(r"C:\loras\ink.safetensors", 0.6), LoraSpec("owner/style-lora", 1.0))
    panel.presets.lora_edit.setText("")
    assert panel.params().loras == ()
    loaded = (LoraSpec("/m/detail.safetensors", 0.25),)
    panel.set_params(GenerationParams(prompt="a", loras=loaded))
    assert panel.params().loras == loaded
    panel.presets.lora_edit.setText("ink.safetensors:heavy")
    with pytest.raises(SketchpadError, match="needs a number after its ':'"):
        panel.params()
    panel.presets.lora_edit.setText("old.ckpt")
    with pytest.raises(SketchpadError, match="pickled"):
        panel.params()


def test_choosing_a_few_step_preset_shows_its_lora_in_the_line(panel):
    index = panel.presets.preset_combo.findData("lcm")
    panel.presets.preset_combo.setCurrentIndex(index)
    panel.presets.preset_combo.activated.emit(index)
    assert panel.params().preset == "lcm" and panel.params().loras and panel.presets.lora_edit.text()
