"""The random-weight SD1.5-architecture test model and its original-format (single-file) twin."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ldm_checkpoint import write_single_file_checkpoint
from sketchpad.tiny_model import main, write_tiny_model

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "taesd")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> pathlib.Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tiny_pipe(tiny_dir):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        tiny_dir, use_safetensors=True, local_files_only=True, safety_checker=None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _weights(directory: pathlib.Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for f in sorted(directory.rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            tensors[f"{f.parent.name}/{k}"] = v
    return tensors


def test_writes_safetensors_only_diffusers_layout(tiny_dir):
    assert tiny_dir.is_absolute()
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionImg2ImgPipeline"
    assert index["safety_checker"] == [None, None]
    assert index["feature_extractor"] == [None, None]
    assert index["requires_safety_checker"] is False
    for name in WEIGHT_COMPONENTS:
        assert list((tiny_dir / name).glob("*.safetensors")), name
    bad = [p for p in tiny_dir.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert bad == []
    assert (tiny_dir / "tokenizer" / "vocab.json").is_file()
    assert (tiny_dir / "tokenizer" / "merges.txt").is_file()


def test_loads_offline_with_sd15_shapes(tiny_pipe):
    from diffusers import PNDMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    pipe = tiny_pipe
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    assert isinstance(pipe.text_encoder, CLIPTextModel)
    assert isinstance(pipe.tokenizer, CLIPTokenizer)
    assert pipe.vae_scale_factor == 8
    assert pipe.vae.config.latent_channels == 4
    assert pipe.vae.config.scaling_factor == pytest.approx(0.18215)
    assert pipe.unet.config.in_channels == pipe.unet.config.out_channels == 4
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size

    sched = pipe.scheduler
    assert isinstance(sched, PNDMScheduler)
    expected = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False,
                    prediction_type="epsilon")
    assert {k: sched.config[k] for k in expected} == expected

    tok = pipe.tokenizer
    assert tok.model_max_length == 77
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert tok.bos_token == "<|startoftext|>"
    ids = tok("a photo of a cat", padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id and ids[-1] == tok.pad_token_id
    cfg = pipe.text_encoder.config
    assert cfg.max_position_embeddings == 77
    assert cfg.vocab_size >= len(tok)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)


def test_img2img_runs_on_tiny_model(tiny_pipe):
    from PIL import Image

    image = Image.new("RGB", (64, 64), "white")
    out = tiny_pipe("a sketch of a house", image=image, num_inference_steps=2, strength=1.0,
                    guidance_scale=7.5, generator=torch.Generator().manual_seed(0)).images[0]
    assert out.size == (64, 64)


def test_taesd_subfolder(tiny_dir):
    from diffusers import AutoencoderTiny

    taesd = AutoencoderTiny.from_pretrained(tiny_dir / "taesd", use_safetensors=True, local_files_only=True)
    assert taesd.config.latent_channels == 4
    with torch.no_grad():
        assert taesd.decode(torch.zeros(1, 4, 8, 8)).sample.shape == (1, 3, 64, 64)
        assert taesd.encode(torch.zeros(1, 3, 64, 64)).latents.shape == (1, 4, 8, 8)


def test_same_seed_same_weights(tiny_dir, tmp_path):
    again = _weights(write_tiny_model(tmp_path / "again", seed=0))
    first = _weights(tiny_dir)
    assert again.keys() == first.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)

    other = _weights(write_tiny_model(tmp_path / "other", seed=1))
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "sketchpad.tiny_model", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_refuses_non_empty_folder(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    proc = _run_cli(str(target))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty" in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def test_cli_usage_error_is_one_line(tmp_path):
    proc = _run_cli(str(tmp_path / "x"), "--seed", "abc")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cli_overwrite_writes_and_prints_path(tmp_path, capsys):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main([str(target), "--overwrite", "--seed", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(target.resolve())
    assert (target / "model_index.json").is_file() and (target / "keep.txt").read_text() == "mine"


def test_single_file_checkpoint_round_trip(tiny_dir, tiny_pipe, tmp_path):
    from diffusers import StableDiffusionImg2ImgPipeline

    ckpt = write_single_file_checkpoint(tiny_dir, tmp_path / "tiny-sd15.safetensors")
    keys = load_file(str(ckpt)).keys()
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    assert any(k.startswith("first_stage_model.") for k in keys)
    assert any(k.startswith("cond_stage_model.transformer.text_model.") for k in keys)

    loaded = StableDiffusionImg2ImgPipeline.from_single_file(
        str(ckpt), config=str(tiny_dir), local_files_only=True, safety_checker=None,
        requires_safety_checker=False,
    )
    for name in ("unet", "vae", "text_encoder"):
        want = dict(getattr(tiny_pipe, name).named_parameters())
        got = dict(getattr(loaded, name).named_parameters())
        assert got.keys() == want.keys(), name
        mismatched = [k for k in want if got[k].device.type == "meta" or not torch.equal(got[k], want[k])]
        assert mismatched == [], f"{name}: {mismatched[:5]}"
    assert loaded.tokenizer.model_max_length == 77
    assert loaded.scheduler.config["steps_offset"] == 1


def test_shipped_tokenizer_files_match_generator(tmp_path):
    from sketchpad.tiny_model import build_tiny_tokenizer_files, tiny_tokenizer_dir

    fresh = build_tiny_tokenizer_files(tmp_path)
    for name in ("vocab.json", "merges.txt"):
        assert (tiny_tokenizer_dir() / name).read_bytes() == (fresh / name).read_bytes(), name


def test_cli_inpainting_writes_a_nine_channel_unet(tmp_path, capsys):
    assert main([str(tmp_path / "inpainting"), "--inpainting"]) == 0
    config = json.loads((tmp_path / "inpainting" / "unet" / "config.json").read_text())
    assert (config["in_channels"], config["out_channels"]) == (9, 4)
    weights = load_file(tmp_path / "inpainting" / "unet" / "diffusion_pytorch_model.safetensors")
    assert tuple(weights["conv_in.weight"].shape[:2]) == (32, 9)
