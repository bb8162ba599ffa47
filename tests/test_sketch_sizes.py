"""Every sketch size from 1x1 up runs: sides below MIN_SIDE (32) are scaled up to it.

Without classifier-free guidance (CFG 1, a batch of one) a sketch under 32 pixels a side used to
leave one of the tiny model's group norms (one channel per group) a single value, which torch refuses.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sketchpad.cli import main
from sketchpad.core.images import MIN_SIDE
from sketchpad.core.params import GenerationParams

ROOT = Path(__file__).resolve().parent.parent


def expected_size(width, height):
    return tuple(max(MIN_SIDE, round(side / 8) * 8) for side in (width, height))


@pytest.mark.parametrize("cfg", [1.0, 7.5])
def test_every_size_up_to_16_runs_in_the_engine(engine, cfg):
    for side in range(1, 17):
        for size in {(side, side), (side, 1), (1, side)}:
            params = GenerationParams("a cat", steps=1, cfg=cfg, seed=1, strength=1.0, scheduler="euler")
            result = engine.generate(params, Image.new("RGB", size, "white"))
            assert result.image.size == expected_size(*size), size


def test_every_size_up_to_16_runs_through_generate(capsys, tmp_path, tiny_model_dir):
    for side in range(1, 17):
        sketch, out = tmp_path / f"s{side}.png", tmp_path / f"out{side}.png"
        Image.new("RGB", (side, side), "white").save(sketch)
        code = main(["generate", str(sketch), "--prompt", "x", "--model", str(tiny_model_dir), "--steps", "1",
                     "--cfg", "1", "--device", "cpu", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 0, err
        assert Image.open(out).size == expected_size(side, side)


def test_a_one_pixel_sketch_runs_from_the_command_line(tmp_path, tiny_model_dir):
    sketch, out = tmp_path / "dot.png", tmp_path / "out.png"
    Image.new("RGB", (1, 1), "black").save(sketch)
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "generate", str(sketch), "--prompt", "x", "--model", str(tiny_model_dir),
         "--steps", "1", "--preset", "quality", "--cfg", "1", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert Image.open(out).size == (MIN_SIDE, MIN_SIDE)
