"""The painting app end to end on the tiny model: draw, generate, live dial, save, close."""


import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage

from sketchpad.core.storage import read_png_parameters
from sketchpad.qimages import qimage_to_pil
from sketchpad.ui.main_window import MainWindow
from sketchpad.worker import GenerationWorker
from window_harness import WAIT_MS, answer_restore, draw_line, generate_and_wait, make_window, window  # noqa: F401  (window: a fixture)


def test_window_names_the_loaded_model_and_is_ready(window, tiny_model_dir):
    assert "Sketchpad" in window.windowTitle()
    assert window.model_label.text() == f"Model: {tiny_model_dir.name}"
    assert window.device_label.text() == "Device: cpu (fp32)"
    assert window.state_text() == "ready"


def test_a_failed_load_names_no_model_in_the_label_state(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, "someone/not-in-the-cache")
    with qtbot.waitSignal(window.worker.model_failed, timeout=WAIT_MS):
        window.start()
    assert window.model_label.text() == "Model: not-in-the-cache"  # what was asked, not a loaded name
    assert window.state_text() == "error: no model"
    window.close()


def test_stick_figure_generates_with_one_preview_per_step(qtbot, window):
    draw_line(qtbot, window.canvas, (32, 10), (32, 40))
    draw_line(qtbot, window.canvas, (20, 24), (44, 24))
    assert qimage_to_pil(window.canvas.image()).getpixel((32, 30)) != (255, 255, 255)
    outcome, steps = generate_and_wait(qtbot, window)
    assert [s[1] for s in steps] == [1, 2, 3] and all(s[2] == 3 for s in steps)
    assert window.preview.result_image().size() == outcome.image.size()
    assert window.preview.scrubber.maximum() - window.preview.scrubber.minimum() + 1 == 4  # 3 steps + result
    assert window.history.count() == 1
    assert window.state_text().startswith("done")
    assert outcome.info.params.seed >= 0 and str(outcome.info.params.seed) in window.panel.used_seed_label.text()


def test_ctrl_s_saves_a_png_with_its_settings_and_never_overwrites(qtbot, window):
    generate_and_wait(qtbot, window)
    window.activateWindow()
    window.actions["save"].trigger()
    window.actions["save"].trigger()
    saved = sorted(window.session.output_dir.glob("*.png"))
    assert len(saved) == 2 and saved[0] != saved[1]
    info = read_png_parameters(saved[0])
    assert info.params.prompt == "a knight" and info.params.steps == 3 and info.sampler == "euler"


def test_live_dial_regenerates_and_the_newest_request_wins(qtbot, window):
    window.panel.set_live(True)
    results, cancelled = [], []
    # lambdas, not list.append: PySide does not keep a builtin bound method connected reliably
    window.worker.result_ready.connect(lambda outcome: results.append(outcome))
    window.worker.request_cancelled.connect(lambda request: cancelled.append(request))
    window.panel.set_params(window.panel.params().replace(steps=40))  # outlasts the 120 ms debounce several times
    with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
        window.panel.dial.setValue(40)
    window.panel.dial.setValue(55)
    window.panel.dial.setValue(62)
    qtbot.waitUntil(lambda: bool(results) and results[-1].info.params.strength == 0.62, timeout=WAIT_MS)
    assert cancelled, "the stale run was not abandoned"
    assert all(r.info.params.strength == 0.62 for r in results)
    assert window.session.shown.info.params.strength == 0.62


def test_dial_does_nothing_when_live_is_off(qtbot, window):
    window.panel.set_live(False)
    started = []
    window.worker.step_preview.connect(lambda *args: started.append(args))
    window.panel.dial.setValue(30)
    qtbot.wait(400)
    assert started == [] and window.panel.params().strength == 0.30


def test_cancel_stops_the_run(qtbot, window):
    window.panel.set_params(window.panel.params().replace(steps=200))
    with qtbot.waitSignal(window.worker.step_preview, timeout=WAIT_MS):
        request = window.generate()
    with qtbot.waitSignal(window.worker.request_cancelled, timeout=WAIT_MS) as cancelled:
        window.actions["cancel"].trigger()
    assert cancelled.args == [request]
    assert window.state_text().startswith("cancelled at step ")
    assert window.preview.is_cancelled() and window.preview.view.is_dimmed()  # the picture is unfinished
    assert window.preview.caption_text().startswith("cancelled at step ")


def test_bad_file_is_refused_and_the_drawing_kept(qtbot, window, tmp_path):
    draw_line(qtbot, window.canvas, (5, 5), (50, 50))
    before = window.canvas.image()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert window.files.open_sketch(bad) is False
    assert window.canvas.image() == before
    assert "broken.png" in window.statusBar().currentMessage()
    assert "broken.png" in window.preview.caption_text()


def test_opening_a_saved_result_restores_its_settings(qtbot, window):
    window.panel.set_params(window.panel.params().replace(prompt="a castle at dusk", cfg=5.0, seed=77))
    window.panel.set_locked(True)
    generate_and_wait(qtbot, window)
    saved = window.files.save_result()
    window.panel.set_params(window.panel.params().replace(prompt="something else", cfg=9.0))
    answer_restore(window, False)  # No: open the picture itself, with its settings
    assert window.files.open_sketch(saved)
    restored = window.panel.params()
    assert (restored.prompt, restored.cfg, restored.seed) == ("a castle at dusk", 5.0, 77)


def test_closing_with_unsaved_drawing_asks_first(qtbot, window):
    draw_line(qtbot, window.canvas, (5, 5), (20, 20))
    asked = []
    window.confirm_discard = lambda: asked.append(1) or False  # the person presses Cancel
    window.close()
    assert asked and window.isVisible() and window.worker.isRunning()
    window.confirm_discard = lambda: True


def test_closing_mid_run_stops_the_worker(qtbot, tmp_path, tiny_model_dir):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    worker = GenerationWorker()
    window = MainWindow(worker, model=str(tiny_model_dir), device="cpu", output_dir=tmp_path,
                        settings=settings, state_dir=tmp_path / "state")
    qtbot.addWidget(window)
    window.canvas.resize_canvas(64, 64)
    window.canvas.set_modified(False)
    window.panel.set_params(window.panel.params().replace(steps=500))
    with qtbot.waitSignal(worker.model_ready, timeout=WAIT_MS):
        window.start()
    with qtbot.waitSignal(worker.step_preview, timeout=WAIT_MS):
        window.generate()
    window.close()
    assert not worker.isRunning()


def test_missing_model_keeps_the_window_usable_and_says_what_to_do(qtbot, tmp_path, make_sketch):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    worker = GenerationWorker()
    window = MainWindow(worker, model="someone/not-in-the-cache", device="cpu", output_dir=tmp_path,
                        settings=settings, state_dir=tmp_path / "state")
    qtbot.addWidget(window)
    with qtbot.waitSignal(worker.model_failed, timeout=WAIT_MS):
        window.start()
    assert window.state_text().startswith("error")
    guidance = window.preview.caption_text()
    assert "offline" in guidance and "tiny_model ~/sketchpad-tiny" in guidance and "Choose…" in guidance
    assert "--model" not in guidance  # the window's own controls, not the command line's flags
    # Generate is off, and Ctrl+Return leaves the guidance as it is
    assert not window.panel.generate_button.isEnabled()
    assert window.generate() == 0 and window.preview.caption_text() == guidance
    draw_line(qtbot, window.canvas, (5, 5), (60, 60))  # drawing still works
    assert window.canvas.is_modified()
    window.confirm_discard = lambda: True
    window.close()


def test_settings_survive_a_restart(qtbot, window, tmp_path, tiny_model_dir):
    window.panel.set_params(window.panel.params().replace(prompt="a lighthouse", negative_prompt="fog", cfg=4.5))
    window.panel.set_denoise(0.35)
    window.close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    again = MainWindow(GenerationWorker(), settings=settings, state_dir=tmp_path / "state")
    qtbot.addWidget(again)
    restored = again.panel.params()
    assert (restored.prompt, restored.negative_prompt, restored.cfg, restored.strength) == (
        "a lighthouse", "fog", 4.5, 0.35)
    model = again.session.model
    assert (model.model, model.device, again.session.output_dir) == (str(tiny_model_dir), "cpu", tmp_path / "out")
    again.worker.stop()


def test_a_random_seed_is_still_random_after_a_restart(qtbot, window, tmp_path, tiny_model_dir):
    outcome, _ = generate_and_wait(qtbot, window)  # unlocked: a random seed was drawn and used
    assert not window.panel.is_locked() and outcome.info.params.seed >= 0
    window.close()
    again = make_window(qtbot, tmp_path, str(tiny_model_dir))
    assert again.panel.seed_box.text() == "random" and not again.panel.is_locked()
    assert again.panel.params().seed == -1
    again.worker.stop()


def test_preset_loras_and_keep_my_lines_survive_a_restart(qtbot, window, tmp_path, tiny_model_dir):
    from sketchpad.core.params import ControlSpec, LoraSpec
    from sketchpad.core.presets import apply_preset
    chosen = apply_preset(window.panel.params(), "lcm")
    chosen = chosen.replace(loras=(*chosen.loras, LoraSpec(str(tmp_path / "ink style.safetensors"), 0.6)),
                            control=ControlSpec("lllyasviel/control_v11p_sd15_scribble", 1.2, 0.1, 0.8))
    window.panel.set_params(chosen, emit=True)
    before = window.panel.params()
    assert before.preset == "lcm" and len(before.loras) >= 1 and before.control is not None
    window.close()
    again = make_window(qtbot, tmp_path, None)
    restored = again.panel.params()
    assert (restored.preset, restored.loras, restored.control) == (before.preset, before.loras, before.control)
    assert again.panel.lines.checkbox.isChecked()
    again.worker.stop()
