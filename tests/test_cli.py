"""`python main.py generate`: the headless command's success path and every bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sketchpad.cli import main
from sketchpad.core.storage import read_png_parameters

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sketch_file(tmp_path, stick_figure):
    path = tmp_path / "stick.png"
    stick_figure.save(path)
    return path


def run_main(capsys, *args):
    code = main(["generate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_end_to_end_in_a_fresh_process(tmp_path, sketch_file, tiny_model_dir):
    out = tmp_path / "result.png"
    previews = tmp_path / "steps"
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "generate", str(sketch_file), "--prompt", "a knight, oil painting",
         "--model", str(tiny_model_dir), "--steps", "3", "--seed", "42", "--scheduler", "euler",
         "--strength", "0.6", "--device", "cpu", "--out", str(out), "--previews", str(previews)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert "step 3/3" in done.stderr and "Traceback" not in done.stderr
    assert "torchvision" not in done.stderr  # library chatter would bury our progress lines
    info = read_png_parameters(out)
    assert (info.params.seed, info.params.steps, info.params.strength, info.sampler) == (42, 3, 0.6, "euler")
    assert (info.width, info.height) == Image.open(out).size == (64, 64)
    assert sorted(p.name for p in previews.iterdir()) == ["step-001.png", "step-002.png", "step-003.png"]


def test_default_output_is_the_next_free_name(capsys, tmp_path, sketch_file, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "pics"))
    common = [sketch_file, "--prompt", "x", "--model", tiny_model_dir, "--steps", "1", "--device", "cpu"]
    first = run_main(capsys, *common)
    second = run_main(capsys, *common, "--start-at-step", "0")
    assert first[0] == second[0] == 0
    paths = [Path(first[1].splitlines()[-1]), Path(second[1].splitlines()[-1])]
    assert paths[0] != paths[1] and all(p.parent == tmp_path / "pics" / "Sketchpad" and p.is_file() for p in paths)
    assert "Seed " in first[2]
    assert read_png_parameters(paths[1]).params.start_at_step == 0


def test_overwrite_is_refused_then_allowed(capsys, tmp_path, sketch_file, tiny_model_dir):
    out = tmp_path / "taken.png"
    out.write_bytes(b"precious")
    args = [sketch_file, "--prompt", "x", "--model", tiny_model_dir, "--steps", "1", "--device", "cpu", "--out", out]
    code, _, err = run_main(capsys, *args)
    assert code != 0 and "already exists" in err and out.read_bytes() == b"precious"
    code, stdout, _ = run_main(capsys, *args, "--overwrite")
    assert code == 0 and read_png_parameters(out) is not None


def _bad_inputs(tmp_path, sketch_file, model_dir):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(sketch_file.read_bytes()[:60])
    pickled = tmp_path / "model.ckpt"
    pickled.write_bytes(b"\x80\x04not really")
    corrupt = tmp_path / "corrupt-model"
    corrupt.mkdir()
    (corrupt / "model_index.json").write_text("{ this is not json")
    broken_file = tmp_path / "broken.safetensors"
    broken_file.write_bytes(b"garbage" * 10)
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    model = ["--model", model_dir]
    return {
        "missing sketch": ([tmp_path / "nope.png", *model], "not found"),
        "sketch is a folder": ([tmp_path, *model], "folder"),
        "empty sketch": ([empty, *model], "image"),
        "not an image": ([text, *model], "not an image"),
        "truncated sketch": ([truncated, *model], "truncated"),
        "missing model": ([sketch_file, "--model", tmp_path / "no-model"], "model not found"),
        "pickled model": ([sketch_file, "--model", pickled], "safetensors"),
        "corrupt model": ([sketch_file, "--model", corrupt], "model_index.json is damaged"),
        "corrupt single file": ([sketch_file, "--model", broken_file], "broken.safetensors is damaged"),
        "model not cached offline": ([sketch_file, "--model", "someone/not-cached-model"], "offline"),
        "zero steps": ([sketch_file, *model, "--steps", "0"], "steps"),
        "strength above one": ([sketch_file, *model, "--strength", "1.5"], "strength"),
        "strength below zero": ([sketch_file, *model, "--strength", "-0.1"], "strength"),
        "strength nan": ([sketch_file, *model, "--strength", "nan"], "strength"),
        "start step past steps": ([sketch_file, *model, "--steps", "5", "--start-at-step", "6"], "start step"),
        "negative start step": ([sketch_file, *model, "--start-at-step", "-1"], "start step"),
        "both knobs": ([sketch_file, *model, "--strength", "0.5", "--start-at-step", "2"], "not allowed with"),
        "unknown scheduler": ([sketch_file, *model, "--scheduler", "heun"], "invalid choice"),
        "unknown device": ([sketch_file, *model, "--device", "tpu"], "invalid choice"),
        "unavailable device": ([sketch_file, *model, "--device", "cuda"], "not available"),
        "existing out": ([sketch_file, *model, "--out", existing], "already exists"),
        "out is a folder": ([sketch_file, *model, "--out", tmp_path], "folder"),
        "unwritable out": ([sketch_file, *model, "--out", blocker / "x.png"], "cannot write"),
        "unwritable previews": ([sketch_file, *model, "--previews", blocker / "steps"], "cannot write"),
        "no prompt": ([sketch_file, *model, "--prompt"], "expected one argument"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing sketch", "sketch is a folder", "empty sketch", "not an image", "truncated sketch",
        "missing model", "pickled model", "corrupt model", "corrupt single file", "model not cached offline",
        "zero steps", "strength above one", "strength below zero", "strength nan", "start step past steps",
        "negative start step", "both knobs", "unknown scheduler", "unknown device", "unavailable device",
        "existing out", "out is a folder", "unwritable out", "unwritable previews", "no prompt",
    ],
)
def test_bad_input_fails_cleanly_and_writes_nothing(capsys, monkeypatch, tmp_path, sketch_file, tiny_model_dir, case):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # the same answer on a GPU machine
    args, expected = _bad_inputs(tmp_path, sketch_file, tiny_model_dir)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    if "--prompt" not in map(str, args):
        args = [*args, "--prompt", "a cat"]
    out = tmp_path / "result.png"
    if "--out" not in map(str, args):
        args = [*args, "--out", out]
    code, stdout, stderr = run_main(capsys, *args)
    assert code != 0
    lines = stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1 and len(lines) - errors[0] <= 2, stderr  # progress lines may come first
    assert expected in "\n".join(lines[errors[0]:]), stderr
    assert "Traceback" not in stderr and stdout == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_interrupt_is_not_a_traceback(capsys, monkeypatch, sketch_file):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("sketchpad.generate.run_generate", interrupted)
    code, _, err = run_main(capsys, sketch_file, "--prompt", "x")
    assert code == 130 and err.strip() == "cancelled"


# ---- help texts: they name the program as it was started ----------------------------------------
def _help(*args, argv0=None):
    """The help a fresh process prints; argv0 stands in for how it was started (an entry point
    script sets sys.argv[0] to its own path, then calls main())."""
    if argv0 is None:
        command = [sys.executable, "main.py", *args]
    else:
        code = f"import sys; sys.argv[0] = {argv0!r}; from sketchpad.cli import main; sys.exit(main())"
        command = [sys.executable, "-c", code, *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_app_help_mentions_generate():
    text = _help("--help")
    assert text.startswith("usage: python main.py [-h]")
    assert "python main.py generate SKETCH --prompt TEXT" in text
    assert "(see: python main.py generate --help)" in text


@pytest.mark.parametrize("argv0, program", [
    (None, "python main.py"), ("/home/me/.venv/bin/sketchpad", "sketchpad"),
    ("/home/me/sketchpad/sketchpad/__main__.py", "python -m sketchpad"),
])
def test_generate_help_names_the_invoked_program(argv0, program):
    text = _help("generate", "--help", argv0=argv0)
    assert text.startswith(f"usage: {program} generate [-h]")
    assert "usage: generate" not in text and (program == "python main.py") == ("python main.py" in text)


def test_usage_mistake_points_to_the_invoked_programs_help(capsys, sketch_file):
    code = main(["generate", str(sketch_file)], program="sketchpad")
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("(see: sketchpad generate --help)")


def test_every_option_has_help():
    from sketchpad.cli import build_generate_parser

    actions = build_generate_parser("sketchpad")._actions
    undocumented = [a.option_strings or a.dest for a in actions if not a.help]
    assert not undocumented
    for option in ("--device", "--preview-method"):
        assert "default" in next(a.help for a in actions if option in a.option_strings)
