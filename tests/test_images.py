"""Any picture a person hands us becomes an opaque RGB sketch with sides in multiples of 8."""

import numpy as np
import pytest
from PIL import Image

from sketchpad.core.errors import SketchpadError
from sketchpad.core.images import MAX_SIDE, load_sketch, prepare_sketch


def test_transparent_pixels_become_white_paper(tmp_path):
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.putpixel((3, 3), (255, 0, 0, 255))
    path = tmp_path / "ink.png"
    image.save(path)
    sketch = load_sketch(path)
    assert sketch.mode == "RGB"
    assert sketch.getpixel((0, 0)) == (255, 255, 255) and sketch.getpixel((3, 3)) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["P", "L", "LA", "1", "CMYK", "I;16", "I", "F", "RGBA"])
def test_every_mode_is_accepted(mode):
    grey = Image.linear_gradient("L").resize((64, 64))
    image = grey.convert(mode) if mode not in ("I;16", "I", "F") else _wide(grey, mode)
    sketch = prepare_sketch(image)
    assert sketch.mode == "RGB" and sketch.size == (64, 64)


def _wide(grey, mode):
    values = np.asarray(grey, dtype=np.float64) / 255.0
    if mode == "F":
        return Image.fromarray(values.astype(np.float32), "F")
    image = Image.fromarray((values * 65535).astype(np.uint16 if mode == "I;16" else np.int32))
    assert image.mode == mode
    return image


def test_sixteen_bit_greys_are_scaled_not_clipped():
    half = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    assert half.mode == "I;16"
    assert abs(prepare_sketch(half).getpixel((0, 0))[0] - 128) <= 1


def test_cmyk_converts_to_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (24, 24), (0, 255, 255, 0)).save(path)
    red, green, blue = load_sketch(path).getpixel((12, 12))
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("size,expected", [((70, 61), (72, 64)), ((3, 500), (32, 496)), ((512, 512), (512, 512)),
                                           ((1, 1), (32, 32)), ((12, 40), (32, 40))])
def test_sizes_round_to_the_nearest_multiple_of_eight_and_at_least_32(size, expected):
    assert prepare_sketch(Image.new("RGB", size, "white")).size == expected


def test_oversized_pictures_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (MAX_SIDE + 8, 16)).save(path)
    with pytest.raises(SketchpadError, match="largest sketch"):
        load_sketch(path)


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("1", (1024, 1024)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the same guard a 100k x 100k file trips
    with pytest.raises(SketchpadError, match="too large"):
        load_sketch(path)
