"""Kept results: every finished picture on disk with its settings, within a byte budget."""

import os

import numpy as np
import pytest
from PIL import Image

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import GenerationParams
from sketchpad.core.result_archive import ResultArchive
from sketchpad.core.storage import ResultInfo, read_png_parameters


def noise_picture(seed=0, size=32):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def info(seed=1, prompt="a red kite"):
    params = GenerationParams(prompt=prompt, negative_prompt="fog", strength=0.6, steps=12, cfg=6.5, seed=seed,
                              scheduler="euler")
    return ResultInfo(params, 32, 32, "tiny", "euler")


def test_a_result_lands_with_its_settings_and_reads_back(tmp_path):
    archive = ResultArchive(tmp_path / "kept", max_bytes=10_000_000)
    image = noise_picture()
    path = archive.add(image, info(seed=42))
    assert path.parent == tmp_path / "kept" and path.suffix == ".png"
    assert read_png_parameters(path) == info(seed=42)  # the same metadata Ctrl+S writes
    loaded, loaded_info = archive.load(path)
    assert loaded_info == info(seed=42)
    assert np.array_equal(np.asarray(loaded), np.asarray(image))
    assert archive.entries() == [path]


def test_entries_are_newest_first_and_survive_a_new_archive_object(tmp_path):
    archive = ResultArchive(tmp_path, max_bytes=10_000_000)
    written = [archive.add(noise_picture(i), info(seed=i)) for i in range(5)]
    assert archive.entries() == written[::-1]
    again = ResultArchive(tmp_path, max_bytes=10_000_000)  # as after a restart
    assert [again.load(p)[1].params.seed for p in again.entries()] == [4, 3, 2, 1, 0]


def test_pruning_by_bytes_keeps_the_newest(tmp_path):
    archive = ResultArchive(tmp_path, max_bytes=10_000_000)
    first = archive.add(noise_picture(), info(seed=0))
    size = first.stat().st_size
    archive.set_max_bytes(int(size * 3.5))
    written = [first] + [archive.add(noise_picture(), info(seed=i)) for i in range(1, 8)]
    assert archive.entries() == written[:-4:-1]  # the three newest
    assert archive.total_bytes() <= archive.max_bytes


def test_the_result_just_written_is_never_pruned(tmp_path):
    archive = ResultArchive(tmp_path, max_bytes=1)
    archive.add(noise_picture(), info(seed=1))
    newest = archive.add(noise_picture(), info(seed=2))
    assert archive.entries() == [newest]


def test_shrinking_the_budget_prunes_at_once_and_other_files_are_left_alone(tmp_path):
    archive = ResultArchive(tmp_path, max_bytes=10_000_000)
    written = [archive.add(noise_picture(i), info(seed=i)) for i in range(4)]
    mine = tmp_path / "my-painting.png"
    noise_picture(99, size=64).save(mine)
    archive.set_max_bytes(written[-1].stat().st_size + 10)
    assert archive.entries() == [written[-1]]
    assert mine.is_file()  # not an entry: neither counted nor pruned


def test_a_folder_that_cannot_be_written_is_one_clear_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "kept"
    blocker.write_bytes(b"a file where the folder should be")
    archive = ResultArchive(blocker, max_bytes=10_000_000)
    with pytest.raises(SketchpadError) as error:
        archive.add(noise_picture(), info())
    assert "\n" not in str(error.value)
    assert archive.entries() == [] and os.listdir(tmp_path) == ["kept"]


def test_a_failure_mid_write_leaves_no_temp_file(tmp_path, monkeypatch):
    archive = ResultArchive(tmp_path, max_bytes=10_000_000)
    kept = archive.add(noise_picture(), info())
    image = noise_picture(1)

    def disk_full(fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(image, "save", disk_full)
    with pytest.raises(SketchpadError, match="No space left"):
        archive.add(image, info())
    assert os.listdir(tmp_path) == [kept.name]


def test_opening_cleans_the_temp_files_of_a_killed_writer(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".sketchpad-{dead.pid}-abcd1234.tmp"
    leftover.write_bytes(b"\x89PNG\r\n\x1a\n half a result")
    ResultArchive(tmp_path, max_bytes=10_000_000)
    assert not leftover.exists()


def test_a_damaged_entry_is_a_clear_error(tmp_path):
    archive = ResultArchive(tmp_path, max_bytes=10_000_000)
    path = archive.add(noise_picture(), info())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SketchpadError):
        archive.load(path)


@pytest.mark.parametrize("budget", [-1, 1.5, "10", True])
def test_a_bad_budget_is_refused(tmp_path, budget):
    with pytest.raises(SketchpadError):
        ResultArchive(tmp_path, max_bytes=budget)
