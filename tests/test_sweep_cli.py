"""`generate --sweep/--batch/--out-dir`, several --server, and `--rerun`: files, bit for bit, and bad input."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchpad.cli import main
from sketchpad.core.contact_sheet import read_sheet
from sketchpad.core.storage import read_embedded_sketch, read_png_parameters
from tests.comfy_standin import StandIn

MODEL = "standin-sd15.safetensors"


@pytest.fixture(autouse=True)
def pictures_folder(tmp_path, monkeypatch):
    """The default output folder is a temporary one, never the home's."""
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "pictures"))


@pytest.fixture
def sketch_file(tmp_path, stick_figure):
    path = tmp_path / "stick.png"
    stick_figure.save(path)
    return path


@pytest.fixture
def tiny(tiny_model_dir):
    return ["--model", str(tiny_model_dir), "--device", "cpu", "--steps", "3", "--scheduler", "euler"]


def run_main(capsys, *args):
    code = main(["generate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_every_cell_is_bit_for_bit_a_single_generate_and_stdout_lists_every_file(capsys, tmp_path, sketch_file, tiny):
    out_dir = tmp_path / "sweep"
    # at 3 steps 0.7 and 0.75 both run the last 3 steps of a 4-step schedule: one picture
    code, out, err = run_main(capsys, sketch_file, "--prompt", "a knight", *tiny, "--seed", "7",
                              "--sweep", "denoise=0.7,0.75,1", "--batch", "2", "--out-dir", out_dir)
    assert code == 0, err
    written = [Path(line) for line in out.splitlines()]
    assert sorted(written) == sorted(out_dir.iterdir()) and written[-1] == out_dir / "sheet.png"
    assert [path.name for path in written[:-1]] == ["denoise-0.70_seed-7.png", "denoise-1.00_seed-7.png",
                                                    "denoise-0.70_seed-8.png", "denoise-1.00_seed-8.png"]
    assert "0.70 and 0.75 run the same steps (3 of 4): one picture" in err
    for cell in written[:-1]:
        params = read_png_parameters(cell).params
        single = tmp_path / f"single-{cell.name}"
        assert run_main(capsys, sketch_file, "--prompt", "a knight", *tiny, "--seed", params.seed,
                        "--strength", params.strength, "--out", single)[0] == 0
        assert single.read_bytes() == cell.read_bytes()
    merged = tmp_path / "merged.png"
    run_main(capsys, sketch_file, "--prompt", "a knight", *tiny, "--seed", "8", "--strength", "0.75", "--out", merged)
    assert np.array_equal(pixels(merged), pixels(out_dir / "denoise-0.70_seed-8.png"))
    sheet = read_sheet(written[-1])
    assert [cell.file for cell in sheet.cells] == [path.name for path in written[:-1]]
    assert sheet.cells[0].label == "seed 7 · 0.70, 0.75 · runs steps 2–4 of 4"


def test_a_start_sweep_and_a_batch_alone(capsys, tmp_path, sketch_file, tiny):
    code, out, _ = run_main(capsys, sketch_file, "--prompt", "x", *tiny, "--seed", "1", "--sweep", "start=0,1,3",
                            "--out-dir", tmp_path / "starts")
    assert code == 0
    assert [Path(line).name for line in out.splitlines()] == [
        "start-0_seed-1.png", "start-1_seed-1.png", "start-3_seed-1.png", "sheet.png"]
    assert np.array_equal(pixels(tmp_path / "starts" / "start-3_seed-1.png"), pixels(sketch_file))
    code, out, _ = run_main(capsys, sketch_file, "--prompt", "x", *tiny, "--seed", "41", "--batch", "3")
    assert code == 0 and [Path(line).name for line in out.splitlines()] == [
        "seed-41.png", "seed-42.png", "seed-43.png", "sheet.png"]
    assert Path(out.splitlines()[0]).parent == tmp_path / "pictures" / "Sketchpad" / "sweep-0001"  # the default


@pytest.mark.parametrize("options, expected", [
    (["--sweep", "denoise=0.3,1.5"], "denoise sweep values must lie from 0 to 1 (got 1.5)"),
    (["--sweep", "denoise="], "the denoise sweep has no values"),
    (["--sweep", "speed=1"], "unknown sweep axis 'speed'"),
    (["--sweep", "start=0,9"], "start sweep values must be whole numbers from 0 to steps (3) (got 9)"),
    (["--sweep", "denoise=0.3", "--strength", "0.5"], "leave out --strength and --start-at-step"),
    (["--batch", "0"], "batch count must be a whole number of at least 1"),
    (["--sweep", "denoise", "--out", "x.png"], "give --out-dir"),
    (["--out-dir", "d"], "--out-dir is for a --sweep or --batch"),
    (["--server", "http://127.0.0.1:9", "--server", "http://127.0.0.1:10"], "several --server"),
])
def test_bad_sweeps_exit_2_with_one_line_before_anything_runs(capsys, tmp_path, sketch_file, tiny, monkeypatch,
                                                             options, expected):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run_main(capsys, sketch_file, "--prompt", "x", *tiny, *options)
    assert (code, out) == (2, "") and err.count("\n") == 1 and expected in err, err
    assert sorted(tmp_path.rglob("*")) == before


def test_existing_cell_files_are_refused_unless_overwriting(capsys, tmp_path, sketch_file, tiny):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sheet.png").write_bytes(b"keep me")
    args = [sketch_file, "--prompt", "x", *tiny, "--seed", "1", "--sweep", "denoise=0.5", "--out-dir", folder]
    code, _, err = run_main(capsys, *args)
    assert code == 2 and "sheet.png already exists" in err and (folder / "sheet.png").read_bytes() == b"keep me"
    assert run_main(capsys, *args, "--overwrite")[0] == 0 and read_sheet(folder / "sheet.png") is not None


# ---- --rerun -----------------------------------------------------------------------------------
@pytest.fixture
def result(capsys, tmp_path, sketch_file, tiny):
    path = tmp_path / "result.png"
    assert run_main(capsys, sketch_file, "--prompt", "a knight", "--negative", "blur", *tiny, "--seed", "5",
                    "--strength", "0.6", "--out", path)[0] == 0
    return path


def test_rerun_reproduces_bit_for_bit(capsys, tmp_path, result, tiny_model_dir):
    again = tmp_path / "again.png"
    code, out, err = run_main(capsys, "--rerun", result, "--model", tiny_model_dir, "--device", "cpu", "--out", again)
    assert code == 0, err
    assert out.strip() == str(again) and again.read_bytes() == result.read_bytes()


def test_rerun_options_override_the_saved_settings(capsys, tmp_path, result, sketch_file, tiny, tiny_model_dir):
    changed, direct = tmp_path / "changed.png", tmp_path / "direct.png"
    assert run_main(capsys, "--rerun", result, "--model", tiny_model_dir, "--device", "cpu", "--strength", "0.4",
                    "--seed", "9", "--out", changed)[0] == 0
    assert run_main(capsys, sketch_file, "--prompt", "a knight", "--negative", "blur", *tiny, "--seed", "9",
                    "--strength", "0.4", "--out", direct)[0] == 0
    assert changed.read_bytes() == direct.read_bytes()
    other = tmp_path / "other.png"
    Image.new("RGB", (64, 64), "red").save(other)
    assert run_main(capsys, "--rerun", result, other, "--model", tiny_model_dir, "--device", "cpu",
                    "--out", tmp_path / "on-red.png")[0] == 0
    assert np.array_equal(np.asarray(read_embedded_sketch(tmp_path / "on-red.png")), pixels(other))


def test_rerun_finds_the_model_the_png_names_or_says_which_to_give(capsys, tmp_path, monkeypatch, result,
                                                                   tiny_model_dir):
    monkeypatch.chdir(tmp_path)  # no folder named like the model here
    code, out, err = run_main(capsys, "--rerun", result, "--out", tmp_path / "x.png")
    assert (code, out) == (2, "") and err == (f"error: result.png was made with the model {tiny_model_dir.name!r}, "
                                              "which is not found here: give it with --model (a folder, a "
                                              ".safetensors file or a Hugging Face id)\n")
    monkeypatch.chdir(tiny_model_dir.parent)
    code, _, err = run_main(capsys, "--rerun", result, "--device", "cpu", "--out", tmp_path / "found.png")
    assert code == 0, err
    assert (tmp_path / "found.png").read_bytes() == result.read_bytes()


def test_rerun_of_a_png_without_a_sketch_or_settings_is_one_line(capsys, tmp_path, sketch_file, tiny):
    plain = tmp_path / "plain.png"
    assert run_main(capsys, sketch_file, "--prompt", "x", *tiny, "--no-embed-sketch", "--out", plain)[0] == 0
    assert read_embedded_sketch(plain) is None and read_png_parameters(plain) is not None
    code, _, err = run_main(capsys, "--rerun", plain, *tiny)
    assert code == 2 and err == ("error: plain.png carries no sketch (saved without it, or by another program): "
                                 "give the sketch and its settings instead\n")
    code, _, err = run_main(capsys, "--rerun", sketch_file, *tiny)
    assert code == 2 and err == "error: stick.png has no Sketchpad settings to run again\n"


def test_rerun_of_a_contact_sheet_runs_its_sweep_again(capsys, tmp_path, sketch_file, tiny):
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_main(capsys, sketch_file, "--prompt", "x", *tiny, "--seed", "3", "--sweep", "denoise=0.4,0.8",
                    "--batch", "2", "--out-dir", first)[0] == 0
    code, out, err = run_main(capsys, "--rerun", first / "sheet.png", *tiny[:4], "--out-dir", second)
    assert code == 0, err
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in second.iterdir())
    assert all((second / p.name).read_bytes() == p.read_bytes() for p in first.iterdir())


# ---- several servers ---------------------------------------------------------------------------
def test_a_sweep_spreads_over_several_servers_and_goes_on_without_one_that_is_down(capsys, tmp_path, sketch_file):
    with StandIn([MODEL]) as gone:
        down = gone.url
    with StandIn([MODEL], step_seconds=0.02) as first, StandIn([MODEL], step_seconds=0.02) as second:
        code, out, err = run_main(capsys, sketch_file, "--prompt", "x", "--steps", "3", "--seed", "2",
                                  "--sweep", "denoise=0.2,0.4,0.6,0.8", "--batch", "2", "--out-dir", tmp_path / "d",
                                  "--server", first.url, "--server", down, "--server", second.url)
    assert code == 0, err
    assert len(out.splitlines()) == 9 and first.finished and second.finished
    assert f"cannot reach the ComfyUI server at {down}" in err and "the other servers make its pictures" in err
    assert {read_png_parameters(Path(line)).model_name for line in out.splitlines()[:-1]} == {MODEL}


def test_rerun_on_a_server_asks_it_for_the_checkpoint_the_png_names(capsys, tmp_path, sketch_file):
    with StandIn(["other.safetensors", MODEL]) as server:
        made, again = tmp_path / "made.png", tmp_path / "again.png"
        assert run_main(capsys, sketch_file, "--prompt", "x", "--steps", "2", "--seed", "4", "--server", server.url,
                        "--model", MODEL, "--out", made)[0] == 0
        code, _, err = run_main(capsys, "--rerun", made, "--server", server.url, "--out", again)
    assert code == 0, err
    assert again.read_bytes() == made.read_bytes()


def test_ctrl_c_keeps_the_finished_pictures_and_their_sheet(tmp_path, sketch_file):
    import signal
    import subprocess
    import sys

    from tests.test_comfy_cli import ROOT, sigint_as_at_a_terminal

    with StandIn([MODEL], step_seconds=0.1) as server:
        process = subprocess.Popen(
            [sys.executable, "main.py", "generate", str(sketch_file), "--prompt", "x", "--steps", "5", "--seed", "1",
             "--sweep", "denoise=0.2,0.4,0.6,0.8", "--server", server.url, "--out-dir", str(tmp_path / "d")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_at_a_terminal)
        first = process.stdout.readline().strip()  # the first picture is written
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=60)
        assert process.returncode == 130 and "Traceback" not in err, err
        assert server.queue_ids() == []  # our prompt in flight was taken off the server
    written = [first, *rest.split()]
    assert written[0].endswith("denoise-0.20_seed-1.png") and written[-1].endswith("sheet.png")
    sheet = read_sheet(written[-1])
    finished = [cell for cell in sheet.cells if cell.info is not None]
    assert [cell.file for cell in finished] == [Path(path).name for path in written[:-1]] and len(finished) < 4


def test_servers_that_would_use_different_checkpoints_are_refused(capsys, tmp_path, sketch_file):
    with StandIn(["a.safetensors"]) as first, StandIn(["b.safetensors", "a.safetensors"]) as second:
        code, out, err = run_main(capsys, sketch_file, "--prompt", "x", "--batch", "2", "--out-dir", tmp_path / "d",
                                  "--server", first.url, "--server", second.url)
        assert (code, out) == (2, "") and err.splitlines()[-1] == (
            "error: the servers would use different checkpoints (a.safetensors, b.safetensors); give --model with "
            "one they all have")
        assert first.prompts == second.prompts == []
        code, out, _ = run_main(capsys, sketch_file, "--prompt", "x", "--steps", "2", "--batch", "2",
                                "--out-dir", tmp_path / "d", "--server", first.url, "--server", second.url,
                                "--model", "a")
    assert code == 0 and len(out.splitlines()) == 3


def test_a_masked_result_reruns_with_its_mask_bit_for_bit(capsys, tmp_path, tiny_model_dir, tiny):
    picture = Image.new("RGB", (70, 60), "white")  # not multiples of 8: a masked run keeps the size
    picture.paste((200, 30, 30), (10, 10, 40, 40))
    sketch = tmp_path / "picture.png"
    picture.save(sketch)
    mask = Image.new("L", (70, 60), 0)
    mask.paste(255, (20, 20, 50, 45))
    mask_file = tmp_path / "mask.png"
    mask.save(mask_file)
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    code, _, err = run_main(capsys, sketch, "--prompt", "a knight", *tiny, "--seed", "3", "--mask", mask_file,
                            "--mask-blur", "2", "--out", first)
    assert code == 0, err
    assert read_png_parameters(first).params.mask.blur == 2
    code, _, err = run_main(capsys, "--rerun", first, "--model", tiny_model_dir, "--device", "cpu", "--out", again)
    assert code == 0, err
    assert again.read_bytes() == first.read_bytes()
    wider = tmp_path / "wider.png"  # a mask setting given overrides the carried mask's own
    assert run_main(capsys, "--rerun", first, "--model", tiny_model_dir, "--device", "cpu", "--mask-blur", "6",
                    "--out", wider)[0] == 0
    assert read_png_parameters(wider).params.mask.blur == 6
    assert read_png_parameters(wider).params.mask.pixels == read_png_parameters(first).params.mask.pixels
