"""The window follows the family of the model in use: the Canvas menu offers that family's sizes and
the preset picker says whether that family's LoRA for the preset is here."""

import pytest

from sketchpad.core.hub import preset_readiness
from sketchpad.ui.window_menus import SD15_CANVAS_SIZES, SDXL_CANVAS_SIZES, canvas_presets
from window_harness import make_window, started


def canvas_sizes(window):
    return [name for name in window.actions if name.startswith("size_") and name != "size_custom"]


def test_each_native_size_gets_its_familys_canvas_sizes_in_multiples_of_64():
    assert canvas_presets(512) == SD15_CANVAS_SIZES
    assert canvas_presets(1024) == SDXL_CANVAS_SIZES
    assert canvas_presets(768) == ((768, 768), (1152, 768), (768, 1152), (1152, 1152))  # SD 2.x's 768
    assert all(w % 64 == 0 and h % 64 == 0 for native in (512, 640, 768, 1024) for w, h in canvas_presets(native))


def test_the_preset_readiness_is_of_the_lora_the_familys_model_would_fetch():
    assert preset_readiness("lcm") == "needs a download: about 135 MB"
    assert preset_readiness("lcm", "sdxl") == "needs a download: about 394 MB"  # the SDXL LCM LoRA
    assert preset_readiness("lcm", "sd2").startswith("the lcm preset has no LoRA for SD 2.x models")
    assert preset_readiness("quality", "sdxl") == ""


@pytest.mark.parametrize("family, sizes, readiness", [
    ("sdxl", SDXL_CANVAS_SIZES, "↓ 394 MB"),
    ("sd2", canvas_presets(768), "not for this model"),
])
def test_a_window_on_another_family_offers_its_sizes_and_its_presets_readiness(
        qtbot, tmp_path, tiny_model_dir, tiny_family_dirs, family, sizes, readiness):
    window = started(qtbot, make_window(qtbot, tmp_path, str(tiny_family_dirs(family))))
    window.confirm_discard = lambda: True  # the resize below is a change to the drawing
    window.show()
    assert canvas_sizes(window) == [f"size_{w}x{h}" for w, h in sizes]
    presets = window.panel.presets
    presets.preset_combo.setCurrentIndex(presets.preset_combo.findData("lcm"))
    assert presets.readiness_label.text() == readiness
    assert presets.readiness_label.toolTip()  # the whole line, for the hover
    window.actions[canvas_sizes(window)[1]].trigger()
    assert (window.canvas.canvas_size().width(), window.canvas.canvas_size().height()) == sizes[1]
    with qtbot.waitSignal(window.worker.model_ready, timeout=60_000):  # back to SD 1.5: its sizes come back
        window.session.load_model(str(tiny_model_dir), "cpu")
    assert canvas_sizes(window) == [f"size_{w}x{h}" for w, h in SD15_CANVAS_SIZES]
    assert presets.readiness_label.text() == "↓ 135 MB"
    window.close()
