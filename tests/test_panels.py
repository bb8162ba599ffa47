"""GenerationPanel, PreviewPanel and HistoryStrip: values, signals, enabling, replay."""

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage

from sketchpad.core.params import MAX_SEED, RANDOM_SEED, SCHEDULERS, GenerationParams
from sketchpad.ui.generation_panel import GenerationPanel, denoise_band
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
    (0.0, "unchanged"), (0.05, "subtle"), (0.2, "subtle"), (0.4, "subtle"), (0.45, "subtle"),
    (0.46, "restyle"), (0.5, "restyle"), (0.7, "restyle"), (0.75, "restyle"), (0.76, "reimagine"),
    (0.8, "reimagine"), (1.0, "reimagine"),
])
def test_denoise_band(value, band):
    assert denoise_band(value) == band


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
    # unlocked (default): random every Generate, whatever the field says
    panel.set_seed(42)
    assert not panel.is_locked() and panel.params().seed == RANDOM_SEED
    # before any run Live is random too; after one it reuses the used seed
    assert panel.params(for_live=True).seed == RANDOM_SEED
    panel.set_used_seed(777)
    assert panel.used_seed_label.text() == "last: 777"
    assert panel.params().seed == RANDOM_SEED and panel.params(for_live=True).seed == 777
    # locked: the field's seed, for Generate and Live alike
    panel.lock_button.click()
    assert panel.is_locked() and panel.params().seed == 42 and panel.params(for_live=True).seed == 42
    # locked on "random": random each Generate, Live still compares like with like
    panel.set_seed(RANDOM_SEED)
    assert panel.params().seed == RANDOM_SEED and panel.params(for_live=True).seed == 777
    # recycle: the last used seed into the field, locked
    panel.lock_button.click()
    panel.recycle_button.click()
    assert panel.seed() == 777 and panel.is_locked() and panel.params().seed == 777


def test_recycle_needs_a_run(panel):
    assert not panel.recycle_button.isEnabled()
    panel.set_used_seed(5)
    assert panel.recycle_button.isEnabled()


# ---- progress and busy ---------------------------------------------------------------------
def test_progress_text(panel):
    panel.set_progress(3, 20)
    assert panel.progress_bar.text() == "step 3 / 20"
    assert panel.progress_bar.value() == 3 and panel.progress_bar.maximum() == 20


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


def test_show_message(preview):
    preview.show_message("Loading model…")
    assert preview.caption_text() == "Loading model…" and "ff6b6b" not in preview.caption.styleSheet()
    preview.show_message("CUDA out of memory", error=True)
    assert preview.caption_text() == "CUDA out of memory" and "ff6b6b" in preview.caption.styleSheet()
    preview.add_step(1, 2, solid("#000000"))
    assert "ff6b6b" not in preview.caption.styleSheet()


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
