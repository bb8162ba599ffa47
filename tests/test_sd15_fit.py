"""A picture far larger than SD1.5 handles is offered to be fitted: 512 on the long side, multiples of 8."""

import pytest
from PIL import Image

from sketchpad.core.errors import SketchpadError
from sketchpad.core.images import fit_for_sd15, needs_fit_for_sd15
from sketchpad.ui import sd15_fit
from window_harness import make_window


@pytest.mark.parametrize("size, fitted", [
    ((4096, 4096), (512, 512)), ((4000, 3000), (512, 384)), ((3000, 4000), (384, 512)),
    ((1920, 1080), (512, 288)), ((6000, 4000), (512, 344)), ((4096, 40), (512, 32)), ((1000, 1), (512, 32)),
    ((300, 200), (512, 344)),
])
def test_fit_for_sd15(size, fitted):
    assert fit_for_sd15(size) == fitted


@pytest.mark.parametrize("width", range(9, 4097, 389))
@pytest.mark.parametrize("height", [8, 333, 512, 1080, 4096])
def test_fitted_sizes_are_usable_and_keep_the_aspect(width, height):
    w, h = fit_for_sd15((width, height))
    assert w % 8 == 0 and h % 8 == 0 and max(w, h) == 512 and min(w, h) >= 32
    exact = 512 * min(width, height) / max(width, height)  # the short side the aspect asks for
    assert abs(min(w, h) - max(exact, 32)) <= 4  # the nearest multiple of 8, at least 32


def test_only_pictures_far_too_large_are_offered():
    assert not needs_fit_for_sd15((768, 768)) and not needs_fit_for_sd15((512, 512))
    assert needs_fit_for_sd15((769, 512)) and needs_fit_for_sd15((4096, 4096))
    with pytest.raises(SketchpadError):
        fit_for_sd15((0, 10))


def test_the_question_names_both_sizes_and_fits_by_default(qtbot):
    box = sd15_fit.fit_question(None, (4096, 4096))
    qtbot.addWidget(box)
    assert "4096 × 4096" in box.text() and box.defaultButton() is box.fit_button
    assert box.fit_button.text() == "Fit to 512 × 512"
    assert [b.text() for b in box.buttons() if b is not box.fit_button] == ["Keep 4096 × 4096"]


@pytest.fixture
def asked(monkeypatch):
    """The person's answer to the question (True: fit), and the sizes they were asked about."""
    state = {"answer": True, "sizes": []}

    def ask(parent, size, native=512):
        state["sizes"].append(size)
        return state["answer"]
    monkeypatch.setattr(sd15_fit, "ask_to_fit", ask)
    return state


def test_opening_a_huge_photo_offers_to_fit_it(qtbot, tmp_path, asked):
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    win.confirm_discard = lambda: True  # the test's drawing needs no saving at teardown
    photo = tmp_path / "photo.png"
    Image.new("RGB", (4096, 4096), "steelblue").save(photo)
    assert win.files.open_sketch(photo)
    assert asked["sizes"] == [(4096, 4096)]
    assert (win.canvas.canvas_size().width(), win.canvas.canvas_size().height()) == (512, 512)


def test_declining_keeps_the_picture_as_it_is(qtbot, tmp_path, asked):
    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    win.confirm_discard = lambda: True  # the test's drawing needs no saving at teardown
    asked["answer"] = False
    photo = tmp_path / "photo.png"
    Image.new("RGB", (2048, 1536), "steelblue").save(photo)
    assert win.files.open_sketch(photo)
    assert asked["sizes"] == [(2048, 1536)]
    assert (win.canvas.canvas_size().width(), win.canvas.canvas_size().height()) == (2048, 1536)


def test_a_pasted_screenshot_is_offered_too_and_a_sketch_sized_picture_is_not(qtbot, tmp_path, asked):
    from sketchpad.qimages import pil_to_qimage

    win = make_window(qtbot, tmp_path, "someone/not-loaded")
    win.confirm_discard = lambda: True  # the test's drawing needs no saving at teardown
    assert win.files.use_image_as_sketch(pil_to_qimage(Image.new("RGB", (1920, 1080), "white")), "pasted")
    assert (win.canvas.canvas_size().width(), win.canvas.canvas_size().height()) == (512, 288)
    assert win.files.use_image_as_sketch(pil_to_qimage(Image.new("RGB", (768, 512), "white")), "pasted")
    assert asked["sizes"] == [(1920, 1080)]  # 768 x 512 is asked nothing
    assert (win.canvas.canvas_size().width(), win.canvas.canvas_size().height()) == (768, 512)


@pytest.fixture
def sdxl_window(qtbot, tmp_path, tiny_family_dirs):
    win = make_window(qtbot, tmp_path, str(tiny_family_dirs("sdxl")))
    win.confirm_discard = lambda: True  # the test's drawing needs no saving at teardown
    return win


def test_an_sdxl_model_starts_a_1024_canvas_with_nothing_to_undo_and_fits_to_1024(sdxl_window, asked):
    from sketchpad.qimages import pil_to_qimage

    win = sdxl_window
    assert (win.canvas.canvas_size().width(), win.canvas.canvas_size().height()) == (1024, 1024)
    assert win.canvas.undo_stack().count() == 0 and not win.canvas.is_modified()
    assert win.files.use_image_as_sketch(pil_to_qimage(Image.new("RGB", (1536, 1024), "white")), "pasted")
    assert asked["sizes"] == []  # within what SDXL handles
    assert win.files.use_image_as_sketch(pil_to_qimage(Image.new("RGB", (3000, 2000), "white")), "pasted")
    assert asked["sizes"] == [(3000, 2000)]
    assert (win.canvas.canvas_size().width(), win.canvas.canvas_size().height()) == (1024, 680)


def test_the_question_names_the_models_size(qtbot):
    box = sd15_fit.fit_question(None, (4096, 2048), 1024)
    qtbot.addWidget(box)
    assert "works at about 1024" in box.text() and box.fit_button.text() == "Fit to 1024 × 512"
