"""`generate SKETCH --mask MASK.png`: only the mask's part is redone, the settings and the mask are
saved with the picture, and every bad mask is one line with nothing written."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from sketchpad.cli import main
from sketchpad.core.storage import read_png_parameters

SIZE = (100, 77)  # no multiple of 8: the result keeps it


@pytest.fixture
def sketch_file(tmp_path):
    path = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)).save(path)
    return path


def ellipse(size=SIZE, box=(60, 40, 110, 90)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


@pytest.fixture
def mask_file(tmp_path):
    path = tmp_path / "mask.png"
    ellipse().save(path)
    return path


def run_main(capsys, *args):
    code = main(["generate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def common(sketch_file, model_dir, out, *more):
    return [sketch_file, "--prompt", "a red door", "--model", model_dir, "--steps", "2", "--seed", "7",
            "--scheduler", "euler", "--device", "cpu", "--out", out, *more]


def test_only_the_mask_is_redone_and_the_mask_is_saved_with_its_settings(capsys, tmp_path, sketch_file, mask_file,
                                                                         tiny_model_dir):
    out = tmp_path / "fixed.png"
    code, stdout, stderr = run_main(capsys, *common(sketch_file, tiny_model_dir, out, "--mask", mask_file,
                                                    "--mask-blur", "3", "--padding", "10"))
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    result, given = np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(sketch_file))
    assert result.shape == given.shape
    keep = np.asarray(ellipse().filter(ImageFilter.GaussianBlur(3))) == 0
    assert np.array_equal(result[keep], given[keep]) and np.any(result[~keep] != given[~keep])
    mask = read_png_parameters(out).params.mask
    assert (mask.blur, mask.area, mask.padding) == (3, "masked", 10)  # auto chose the masked area
    assert np.array_equal(np.asarray(mask.image()), np.asarray(ellipse()))


def test_a_transparent_masks_opaque_pixels_are_redone(capsys, tmp_path, sketch_file, tiny_model_dir):
    mask = Image.new("RGBA", SIZE, (255, 255, 255, 0))
    mask.paste((0, 0, 0, 255), (0, 0, 30, 20))
    mask.save(tmp_path / "layer.png")
    out = tmp_path / "fixed.png"
    code, _, stderr = run_main(capsys, *common(sketch_file, tiny_model_dir, out, "--mask", tmp_path / "layer.png",
                                               "--mask-blur", "0"))
    assert code == 0, stderr
    result, given = np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(sketch_file))
    assert np.array_equal(result[20:], given[20:]) and np.array_equal(result[:, 30:], given[:, 30:])
    assert np.any(result[:20, :30] != given[:20, :30])


def test_an_all_white_mask_on_the_whole_picture_unblurred_gives_the_picture_without_a_mask(
        capsys, tmp_path, tiny_model_dir):
    sketch = tmp_path / "sketch.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(sketch)
    Image.new("L", (64, 48), 255).save(tmp_path / "white.png")
    plain, masked = tmp_path / "plain.png", tmp_path / "masked.png"
    assert run_main(capsys, *common(sketch, tiny_model_dir, plain))[0] == 0
    code, _, stderr = run_main(capsys, *common(sketch, tiny_model_dir, masked, "--mask", tmp_path / "white.png",
                                               "--inpaint-area", "whole", "--mask-blur", "0"))
    assert code == 0, stderr
    assert np.array_equal(np.asarray(Image.open(masked)), np.asarray(Image.open(plain)))


def test_denoise_zero_returns_the_sketch(capsys, tmp_path, sketch_file, mask_file, tiny_model_dir):
    out = tmp_path / "same.png"
    code, _, stderr = run_main(capsys, *common(sketch_file, tiny_model_dir, out, "--mask", mask_file,
                                               "--strength", "0"))
    assert code == 0, stderr
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(sketch_file)))


def _bad_masks(tmp_path):
    ellipse((64, 64)).save(tmp_path / "other-size.png")
    Image.new("L", SIZE, 0).save(tmp_path / "black.png")
    (tmp_path / "notes.png").write_text("not an image")
    return {
        "another size": (["--mask", tmp_path / "other-size.png"], "64x64 pixels but the picture is 100x77"),
        "all black": (["--mask", tmp_path / "black.png"], "empty (all black)"),
        "unreadable": (["--mask", tmp_path / "notes.png"], "not an image"),
        "missing": (["--mask", tmp_path / "nowhere.png"], "mask not found"),
        "a folder": (["--mask", tmp_path], "folder"),
        "settings without a mask": (["--mask-blur", "2"], "need --mask"),
        "negative blur": (["--mask", tmp_path / "MASK", "--mask-blur", "-1"], "mask blur"),
        "huge padding": (["--mask", tmp_path / "MASK", "--padding", "1000"], "padding"),
        "unknown area": (["--mask", tmp_path / "MASK", "--inpaint-area", "crop"], "invalid choice"),
    }


@pytest.mark.parametrize("case", ["another size", "all black", "unreadable", "missing", "a folder",
                                  "settings without a mask", "negative blur", "huge padding", "unknown area"])
def test_bad_masks_fail_in_one_line_and_write_nothing(capsys, tmp_path, sketch_file, mask_file, tiny_model_dir, case):
    args, expected = _bad_masks(tmp_path)[case]
    args = [mask_file if arg == tmp_path / "MASK" else arg for arg in args]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, stdout, stderr = run_main(capsys, *common(sketch_file, tiny_model_dir, tmp_path / "out.png", *args))
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ") and expected in stderr, stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
