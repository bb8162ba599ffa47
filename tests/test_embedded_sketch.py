"""A saved result carries its sketch: lossless, in a chunk of its own, bounded and checked on reading."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sketchpad.core.errors import SketchpadError
from sketchpad.core.images import load_sketch
from sketchpad.core.params import GenerationParams
from sketchpad.core.rerun import read_rerun
from sketchpad.core.storage import (EMBED_CHUNK, MAX_EMBED_BYTES, ResultInfo, read_embedded, read_embedded_sketch,
                                    read_png_parameters, save_png, save_result)

INFO = ResultInfo(GenerationParams("a cat", seed=7, strength=0.5, scheduler="euler"), 64, 64, "tiny", "euler")


def noisy(seed: int, size=(64, 48), mode="RGB") -> Image.Image:
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode)


@pytest.fixture
def result(tmp_path):
    return save_result(noisy(1, (64, 64)), INFO, tmp_path / "r.png", sketch=noisy(2))


def test_the_sketch_comes_back_pixel_for_pixel_beside_the_settings(result):
    sketch = read_embedded_sketch(result)
    assert sketch.size == (64, 48) and np.array_equal(np.asarray(sketch), np.asarray(noisy(2)))
    assert read_png_parameters(result) == INFO
    assert read_rerun(result).info == INFO


def test_other_tools_see_an_ordinary_png_with_its_parameters(result):
    with Image.open(result) as image:
        assert set(image.info) == {"parameters"} and image.size == (64, 64)
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(noisy(1, (64, 64))))
    assert np.array_equal(np.asarray(load_sketch(result)), np.asarray(noisy(1, (64, 64))))


def test_several_pictures_ride_side_by_side_by_name(tmp_path):
    # as a mask will beside the sketch, once masks exist
    path = save_png(noisy(1), tmp_path / "both.png", {}, embed={"sketch": noisy(2), "mask": noisy(3, mode="L")})
    found = read_embedded(path)
    assert set(found) == {"sketch", "mask"} and found["mask"].mode == "L"
    assert np.array_equal(np.asarray(found["mask"]), np.asarray(noisy(3, mode="L")))


def test_a_result_saved_without_it_carries_none(tmp_path):
    path = save_result(noisy(1), INFO, tmp_path / "plain.png")
    assert read_embedded(path) == {} and read_embedded_sketch(path) is None
    with pytest.raises(SketchpadError, match="carries no sketch"):
        read_rerun(path)


def _chunks(data: bytes):
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        yield position, length, data[position + 4:position + 8]
        position += 12 + length


def _embedded_at(path) -> tuple[bytes, int, int]:
    data = path.read_bytes()
    position, length, _ = next(c for c in _chunks(data) if c[2] == EMBED_CHUNK)
    return data, position, length


def _rewrite(data: bytes, position: int, length: int, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(EMBED_CHUNK + payload) if crc is None else crc
    chunk = struct.pack(">I", len(payload)) + EMBED_CHUNK + payload + struct.pack(">I", crc)
    return data[:position] + chunk + data[position + 12 + length:]


def test_a_flipped_byte_is_a_one_line_error_naming_the_damaged_sketch(result):
    data, position, length = _embedded_at(result)
    damaged = bytearray(data)
    damaged[position + 8 + length // 2] ^= 0xFF
    result.write_bytes(bytes(damaged))
    with pytest.raises(SketchpadError) as caught:
        read_embedded_sketch(result)
    assert str(caught.value) == ("the sketch inside r.png is damaged (its checksum does not match); open the "
                                 "picture itself instead")
    with pytest.raises(SketchpadError, match="the sketch inside r.png is damaged"):
        read_rerun(result)  # says which part of the file is damaged
    assert load_sketch(result).size == (64, 64)  # the picture itself still opens


def test_a_chunk_that_is_no_png_is_damaged_not_a_crash(result):
    data, position, length = _embedded_at(result)
    result.write_bytes(_rewrite(data, position, length, b"sketch\0this is not a png"))
    with pytest.raises(SketchpadError, match="it is not a readable PNG"):
        read_embedded(result)


def test_an_oversized_chunk_is_refused_before_it_is_read(result):
    data, position, length = _embedded_at(result)
    too_long = data[:position] + struct.pack(">I", MAX_EMBED_BYTES + 1) + data[position + 4:]
    result.write_bytes(too_long)
    with pytest.raises(SketchpadError, match="more than any sketch needs"):
        read_embedded(result)


def test_a_huge_picture_inside_is_refused_without_decoding_it(tmp_path):
    path = save_png(noisy(1), tmp_path / "bomb.png", {}, embed={"sketch": Image.new("L", (5000, 8), 0)})
    with pytest.raises(SketchpadError, match="5000x8 pixels, larger than any sketch"):
        read_embedded(path)


def test_a_file_that_is_not_a_png_says_so(tmp_path):
    path = tmp_path / "photo.jpg"
    noisy(1).save(path, format="JPEG")
    with pytest.raises(SketchpadError, match="is not a PNG image"):
        read_embedded(path)
