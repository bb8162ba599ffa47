""""Keep my lines" on the tiny model: a random-weight ControlNet made from the tiny UNet, loaded from a
folder and from a single file; strength 0 is bit for bit the picture without it, the range counts
executed steps, the control image is prepared once per sketch, pickles are refused."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def params(control=None, **changes):
    base = dict(prompt="a knight", negative_prompt="", steps=4, seed=11, scheduler="euler", strength=0.9, cfg=1.0)
    base.update(changes)
    return GenerationParams(control=control, **base)


@pytest.fixture(scope="module")
def controlnet_files(tmp_path_factory, tiny_pipeline):
    from diffusers import ControlNetModel

    torch.manual_seed(5)
    controlnet = ControlNetModel.from_unet(tiny_pipeline.unet)
    with torch.no_grad():  # from_unet zeroes the output convolutions: give them weights so lines matter
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            for weight in block.parameters():
                weight.normal_(0, 0.5)
    root = tmp_path_factory.mktemp("controlnets")
    controlnet.save_pretrained(root / "scribble")
    single = root / "single"
    single.mkdir()
    save_file(controlnet.state_dict(), single / "scribble.safetensors")
    (single / "config.json").write_text((root / "scribble" / "config.json").read_text())
    return root


def spec(files, strength=1.0, start=0.0, end=1.0):
    return ControlSpec(str(files / "scribble"), strength, start, end)


def count_forwards(engine, monkeypatch):
    """Count the ControlNet's forward calls (and their batch sizes) once it is loaded."""
    calls = []
    original_load = engine.controlnets._on_load

    def on_load(model):
        original_load(model)
        forward = model.forward
        model.forward = lambda sample, *a, **k: calls.append(sample.shape[0]) or forward(sample, *a, **k)

    monkeypatch.setattr(engine.controlnets, "_on_load", on_load)
    return calls


def test_strength_zero_is_bit_for_bit_the_picture_without_controlnet(engine, controlnet_files, stick_figure, monkeypatch):
    calls = count_forwards(engine, monkeypatch)
    plain = pixels(engine.generate(params(), stick_figure).image)
    for p in (params(spec(controlnet_files, 0.0)), params(spec(controlnet_files, 0.0), cfg=7.5)):
        expected = plain if p.cfg == 1.0 else pixels(engine.generate(params(cfg=7.5), stick_figure).image)
        assert np.array_equal(pixels(engine.generate(p, stick_figure).image), expected)
    assert calls == [] and engine.controlnets.model is None  # not even loaded


def test_the_lines_steer_the_picture_from_a_folder_or_a_single_file(engine, controlnet_files, stick_figure):
    plain = pixels(engine.generate(params(), stick_figure).image)
    folder = pixels(engine.generate(params(spec(controlnet_files)), stick_figure).image)
    single_file = ControlSpec(str(controlnet_files / "single" / "scribble.safetensors"))
    single = pixels(engine.generate(params(single_file), stick_figure).image)
    weaker = pixels(engine.generate(params(spec(controlnet_files, 0.3)), stick_figure).image)
    assert not np.array_equal(folder, plain)
    assert np.array_equal(folder, single)
    assert not np.array_equal(weaker, folder) and not np.array_equal(weaker, plain)


@pytest.mark.parametrize(
    "start,end,strength,steps_on",
    [(0.0, 1.0, 1.0, [0, 1, 2, 3]), (0.0, 0.5, 1.0, [0, 1]), (0.5, 1.0, 1.0, [2, 3]), (0.25, 0.75, 0.7, [1, 2])],
)
@pytest.mark.parametrize("denoise", [1.0, 0.4])
def test_the_range_counts_executed_steps_whatever_the_denoise(
    engine, controlnet_files, stick_figure, monkeypatch, start, end, strength, steps_on, denoise
):
    calls = count_forwards(engine, monkeypatch)
    unet_steps = []
    monkeypatch.setattr(engine.pipe.unet, "forward", _recording(engine.pipe.unet.forward, unet_steps))
    result = engine.generate(params(spec(controlnet_files, strength, start, end), strength=denoise, cfg=7.5), stick_figure)
    assert result.steps_run == 4
    assert len(calls) == len(steps_on) and set(calls) == {2}  # with CFG both halves are steered
    with_residuals = [i for i, has in enumerate(unet_steps) if has]
    assert with_residuals == steps_on


def _recording(forward, record):
    def recorded(*args, **kwargs):
        record.append(kwargs.get("down_block_additional_residuals") is not None)
        return forward(*args, **kwargs)

    return recorded


def test_a_dial_turn_prepares_no_control_image_and_encodes_no_sketch_again(
    engine, controlnet_files, stick_figure, monkeypatch, make_sketch
):
    prepared = []
    original = engine.controlnets._prepare
    monkeypatch.setattr(engine.controlnets, "_prepare", lambda sketch: prepared.append(1) or original(sketch))
    encodes = []
    encode = engine.pipe.vae.encode
    monkeypatch.setattr(engine.pipe.vae, "encode", lambda *a, **k: encodes.append(1) or encode(*a, **k))
    for denoise, strength in ((0.5, 1.0), (0.6, 1.0), (0.7, 0.5), (0.7, 1.2)):
        engine.generate(params(spec(controlnet_files, strength), strength=denoise), stick_figure)
    assert (len(prepared), len(encodes)) == (1, 1)
    engine.generate(params(spec(controlnet_files), strength=0.7), make_sketch(color="red"))
    assert (len(prepared), len(encodes)) == (2, 2)


def test_the_canvas_is_fed_inverted_white_lines_on_black(engine):
    from sketchpad.core.images import scribble_image

    sketch = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(sketch).line((0, 32, 63, 32), fill="black", width=3)
    fed = np.asarray(scribble_image(sketch))
    assert fed.shape == (64, 64, 3) and fed[5, 5].tolist() == [0, 0, 0] and fed[32, 10].tolist() == [255, 255, 255]
    tensor = engine.controlnets.control_image(sketch)
    assert tensor.shape == (1, 3, 64, 64) and float(tensor[0, :, 5, 5].max()) == 0.0
    assert float(tensor[0, :, 32, 10].min()) == 1.0


@pytest.mark.parametrize("name", ["scribble.pth", "scribble.ckpt", "scribble.bin", "scribble.pt"])
def test_pickled_controlnets_are_refused(engine, tmp_path, stick_figure, name):
    pickled = tmp_path / name
    pickled.write_bytes(b"\x80\x04 not really")
    with pytest.raises(SketchpadError, match="pickled"):
        engine.generate(params(ControlSpec(str(pickled))), stick_figure)


def test_bad_controlnets_are_one_line(engine, tmp_path, stick_figure):
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    for model, message in (
        (str(tmp_path / "missing.safetensors"), "not found"),
        (str(empty), "no config.json"),
        ("someone/not-cached-controlnet", "not in the Hugging Face cache"),
    ):
        with pytest.raises(SketchpadError, match=message) as raised:
            engine.generate(params(ControlSpec(model)), stick_figure)
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "changes,word",
    [
        ({"strength": 2.5}, "strength"), ({"strength": -0.1}, "strength"), ({"start": 0.6, "end": 0.4}, "start before"),
        ({"end": 1.5}, "range"), ({"start": float("nan")}, "range"),
    ],
)
def test_bad_control_values_are_refused_by_name(changes, word):
    values = dict(model="lllyasviel/control_v11p_sd15_scribble", strength=1.0, start=0.0, end=1.0) | changes
    with pytest.raises(SketchpadError, match=word):
        params(ControlSpec(**values)).validated()


def test_controlnet_settings_are_saved_and_read_back():
    from sketchpad.core.storage import ResultInfo, format_parameters, parse_parameters

    p = params(ControlSpec("/models/my, scribble.safetensors", 0.8, 0.1, 0.9))
    text = format_parameters(ResultInfo(p.with_concrete_seed(), 64, 64, "m", "euler"))
    assert "ControlNet 0: " in text and "Weight: 0.8, Guidance Start: 0.1, Guidance End: 0.9" in text
    assert parse_parameters(text).params.control == p.control


def test_generate_keeps_the_lines_from_the_command_line(capsys, tmp_path, controlnet_files, tiny_model_dir, stick_figure):
    from sketchpad.cli import main
    from sketchpad.core.storage import read_png_parameters

    stick_figure.save(tmp_path / "stick.png")
    out = tmp_path / "out.png"
    code = main(["generate", str(tmp_path / "stick.png"), "--prompt", "a knight", "--model", str(tiny_model_dir),
                 "--device", "cpu", "--steps", "2", "--seed", "3", "--out", str(out),
                 "--control", str(controlnet_files / "scribble"), "--control-strength", "0.8",
                 "--control-range", "0:0.5"])
    assert code == 0, capsys.readouterr().err
    control = read_png_parameters(out).params.control
    assert control == ControlSpec(str(controlnet_files / "scribble"), 0.8, 0.0, 0.5)
