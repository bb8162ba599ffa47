"""bf16 on the CPU: chosen from the CPU's own instructions (never guessed), the UNet and ControlNet in
bf16 and the VAE and text encoders in fp32, pictures close to fp32's, the exact rules kept, and the
precision said in the status. The rest of the suite runs fp32 (conftest), bit for bit with diffusers."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchpad.backends.local.precision import choose_precision, cpu_has_bf16
from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import ControlSpec, GenerationParams
from sketchpad.core.sources import resolve_model_source


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def params(**changes):
    return GenerationParams(**{**dict(prompt="a knight", steps=4, seed=3, scheduler="euler", strength=0.6), **changes})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's own CPU flags")
def test_the_bf16_instructions_are_the_ones_the_kernel_reports():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    assert cpu_has_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_auto_picks_bf16_only_where_the_cpu_has_it_fp16_on_cuda(monkeypatch):
    monkeypatch.delenv("SKETCHPAD_DTYPE")
    cpu = choose_precision(torch.device("cpu"))
    assert cpu.unet == (torch.bfloat16 if cpu_has_bf16() else torch.float32) and cpu.loop == torch.float32
    assert choose_precision(torch.device("cuda"), "auto").unet == torch.float16
    assert choose_precision(torch.device("mps"), "auto").unet == torch.float32
    monkeypatch.setenv("SKETCHPAD_DTYPE", "bf16")
    assert choose_precision(torch.device("cpu")).name == "bf16"
    assert choose_precision(torch.device("cpu"), "fp32").name == "fp32"  # a choice wins over the environment


@pytest.mark.parametrize("choice, words", [("fp16", "fp16 is for graphics cards"), ("fp8", "unknown precision")])
def test_a_precision_this_device_cannot_run_is_one_line(choice, words):
    with pytest.raises(SketchpadError, match=words):
        choose_precision(torch.device("cpu"), choice)


@pytest.fixture(scope="module")
def bf16_engine(tiny_model_dir):
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline

    return Img2ImgEngine(load_pipeline(resolve_model_source(str(tiny_model_dir)), torch.device("cpu"), dtype="bf16"),
                         "tiny")


def test_bf16_runs_the_unet_only_and_says_so(bf16_engine):
    pipe = bf16_engine.pipe
    assert pipe.unet.dtype == torch.bfloat16
    assert pipe.vae.dtype == pipe.text_encoder.dtype == torch.float32
    assert bf16_engine.device_name == "cpu (bf16)"


def test_bf16_pictures_stay_close_to_fp32s_and_the_exact_rules_hold(bf16_engine, engine, stick_figure):
    for denoise in (0.5, 1.0):
        fp32 = pixels(engine.generate(params(strength=denoise), stick_figure).image)
        bf16 = pixels(bf16_engine.generate(params(strength=denoise), stick_figure).image)
        other_seed = pixels(engine.generate(params(strength=denoise, seed=4), stick_figure).image)
        assert np.abs(bf16 - fp32).mean() < 2.5 and np.abs(bf16 - fp32).max() <= 32
        assert np.abs(other_seed - fp32).mean() > 10 * np.abs(bf16 - fp32).mean()
    for unchanged in (params(strength=0.0), params(strength=None, start_at_step=4)):
        assert np.array_equal(pixels(bf16_engine.generate(unchanged, stick_figure).image), pixels(stick_figure))


def test_a_controlnet_runs_in_bf16_beside_the_unet(bf16_engine, tiny_pipeline, tmp_path, stick_figure):
    from diffusers import ControlNetModel

    ControlNetModel.from_unet(tiny_pipeline.unet, conditioning_embedding_out_channels=(8, 16, 32, 64)).save_pretrained(
        tmp_path / "cn", safe_serialization=True)
    result = bf16_engine.generate(params(control=ControlSpec(str(tmp_path / "cn"))), stick_figure)
    assert bf16_engine.controlnets.model.dtype == torch.bfloat16 and result.steps_run == 4


def test_the_command_line_chooses_the_precision(capsys, monkeypatch, tmp_path, tiny_model_dir, stick_figure):
    from sketchpad.cli import main

    monkeypatch.setenv("SKETCHPAD_DTYPE", "fp32")  # restored after the test, whatever --dtype sets
    stick_figure.save(tmp_path / "s.png")
    code = main(["generate", str(tmp_path / "s.png"), "--prompt", "x", "--model", str(tiny_model_dir), "--steps", "2",
                 "--dtype", "bf16", "--out", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 0 and f"Loading {tiny_model_dir.name} (SD 1.5) on cpu, bf16" in err


def test_the_window_takes_the_same_choice():
    from sketchpad.app import parse_app_args

    assert parse_app_args(["--dtype", "bf16"]).dtype == "bf16" and parse_app_args([]).dtype is None
    with pytest.raises(SystemExit):
        parse_app_args(["--dtype", "fp8"])
