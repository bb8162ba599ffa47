"""Write a random-weight Stable Diffusion pipeline (SD 1.5, SD 2.x or SDXL) for offline tests and benchmarks.

    python -m sketchpad.tiny_model DIR [--family sd15|sd2|sdxl] [--full-size] [--inpainting] [--seed N] [--overwrite]

The folder is in diffusers layout (what ``StableDiffusionImg2ImgPipeline.from_pretrained(DIR,
use_safetensors=True)`` loads) with safetensors weights only, plus a ``taesd`` subfolder holding a
random ``AutoencoderTiny`` for the preview-decoder path.  Nothing is downloaded.

* default ("tiny"): SD1.5's shapes that matter (VAE downsampling factor 8, 4 latent channels,
  scaling factor 0.18215, UNet with cross attention, CLIP text encoder with 77 positions) but only
  about 1.2 million parameters (5 MB), so a 64x64 img2img step takes milliseconds on a CPU.
* ``--full-size``: the real SD1.5 architecture (UNet 860M, VAE 84M, CLIP ViT-L/14 text 123M
  parameters) with random weights, for speed/memory benchmarks.  About 4 GiB on disk (fp32).
* ``--inpainting``: the UNet of an inpainting checkpoint (such as
  stable-diffusion-v1-5/stable-diffusion-inpainting): 9 input channels (latents, mask, masked
  picture's latents) instead of 4; either size.

* ``--family sd2`` / ``--family sdxl``: the SD 2.x (OpenCLIP text encoder, v-prediction unless
  ``prediction`` says otherwise) or SDXL (two text encoders, size conditioning; a ``taesdxl``
  subfolder) architecture instead, tiny or full size (SDXL's: UNet 2.6B, about 14 GiB in fp32); see
  sketchpad/tiny_families.py.

All use the same small byte-level CLIP tokenizer shipped in ``resources/tiny_tokenizer``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import sys
import time
from typing import Callable, Iterator

from . import tiny_families

__all__ = ["write_tiny_model", "tiny_tokenizer_dir", "build_tiny_tokenizer_files", "main"]

MODEL_MAX_LENGTH = 77
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

# Stable Diffusion 1.5's scheduler/scheduler_config.json (PNDM), minus bookkeeping keys.
SD15_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "trained_betas": None,
}

# Words the shipped tokenizer gets whole-word merges for (everything else falls back to bytes).
_TOKENIZER_WORDS = (
    "a", "an", "the", "of", "and", "in", "on", "with", "photo", "sketch", "drawing", "painting",
    "cat", "dog", "house", "tree", "sky", "red", "blue", "green",
)

# Component folders (and files) write_tiny_model owns inside DIR; cleared before writing.
_OWNED_ENTRIES = (
    "model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler", "taesd",
    "safety_checker", "feature_extractor", "text_encoder_2", "tokenizer_2", "taesdxl", "image_encoder",
)


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_tiny_tokenizer_files(out_dir, words=_TOKENIZER_WORDS) -> pathlib.Path:
    """Generate vocab.json + merges.txt in CLIP's layout: bytes, bytes+"</w>", merges, bos, eos.

    Used once to create ``resources/tiny_tokenizer`` (and as a fallback when that folder is missing).
    Each word gets left-to-right merges, e.g. "cat" -> "c a", "ca t</w>".
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    byte_encoder = _bytes_to_unicode()
    byte_chars = list(byte_encoder.values())
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars]
    known = set(vocab_list)
    merges: list[tuple[str, str]] = []
    for word in words:
        symbols = [byte_encoder[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        current = symbols[0]
        for nxt in symbols[1:]:
            merged = current + nxt
            if merged not in known:
                merges.append((current, nxt))
                vocab_list.append(merged)
                known.add(merged)
            current = merged
    vocab_list += [BOS_TOKEN, EOS_TOKEN]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    (out / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    return out


def tiny_tokenizer_dir() -> pathlib.Path:
    """The shipped tokenizer files (``<repo>/resources/tiny_tokenizer``)."""
    return pathlib.Path(__file__).resolve().parent.parent / "resources" / "tiny_tokenizer"


def _load_tokenizer():
    """CLIPTokenizer from the shipped vocab.json/merges.txt (regenerated in a temp dir if missing)."""
    import tempfile

    from transformers import CLIPTokenizer

    src = tiny_tokenizer_dir()
    with tempfile.TemporaryDirectory() as tmp:
        if not ((src / "vocab.json").is_file() and (src / "merges.txt").is_file()):
            src = build_tiny_tokenizer_files(tmp)
        return CLIPTokenizer.from_pretrained(
            str(src),
            model_max_length=MODEL_MAX_LENGTH,
            bos_token=BOS_TOKEN,
            eos_token=EOS_TOKEN,
            unk_token=EOS_TOKEN,
            pad_token=EOS_TOKEN,  # as SD1.5's tokenizer
        )


# --------------------------------------------------------------------------------------------
# model configs
# --------------------------------------------------------------------------------------------
INPAINTING_IN_CHANNELS = 9  # 4 latent + 1 mask + 4 masked-picture latent channels


def _unet_config(full_size: bool, inpainting: bool = False) -> dict:
    in_channels = INPAINTING_IN_CHANNELS if inpainting else 4
    if full_size:
        return dict(
            sample_size=64,  # 64 latents = SD1.5's 512 px
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
            act_fn="silu",
            center_input_sample=False,
            downsample_padding=1,
            flip_sin_to_cos=True,
            freq_shift=0,
            mid_block_scale_factor=1,
            norm_eps=1e-5,
        )
    return dict(
        sample_size=64,  # as SD1.5's: its native size is 512 px
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,  # SD1.x semantics: this is the number of heads
        norm_num_groups=32,
        act_fn="silu",
        flip_sin_to_cos=True,
        freq_shift=0,
    )


def _vae_config(full_size: bool) -> dict:
    channels = (128, 256, 512, 512) if full_size else (8, 8, 16, 16)
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=channels,
        layers_per_block=2 if full_size else 1,
        act_fn="silu",
        latent_channels=4,
        norm_num_groups=32 if full_size else 8,
        sample_size=512 if full_size else 64,
        scaling_factor=0.18215,
    )


def _text_config(full_size: bool, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> dict:
    common = dict(
        max_position_embeddings=MODEL_MAX_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    if full_size:
        return dict(
            common, vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, projection_dim=768,
        )
    return dict(
        common, vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, projection_dim=32,
    )


def _taesd_config(full_size: bool) -> dict:
    if full_size:
        return {}  # diffusers' defaults are the real TAESD architecture
    return dict(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Silence transformers/diffusers progress bars and info chatter while saving; restore after."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    t_bar, d_bar = tlog.is_progress_bar_enabled(), dlog.is_progress_bar_enabled()
    t_level, d_level = tlog.get_verbosity(), dlog.get_verbosity()
    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(t_level)
        dlog.set_verbosity(d_level)
        if t_bar:
            tlog.enable_progress_bar()
        if d_bar:
            dlog.enable_progress_bar()


def _edit_json(path: pathlib.Path, edit: Callable[[dict], None]) -> None:
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        edit(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _tidy_saved_files(out: pathlib.Path) -> None:
    """Make the saved folder look like SD1.5's and load without warnings."""
    # SD1.5's tokenizer folder carries vocab.json + merges.txt (the slow tokenizer of transformers 4
    # needs them); transformers 5 writes only tokenizer.json.
    src = tiny_tokenizer_dir()
    for folder in ("tokenizer", "tokenizer_2"):
        if not (out / folder).is_dir():
            continue
        for name in ("vocab.json", "merges.txt"):
            if (src / name).is_file() and not (out / folder / name).exists():
                shutil.copyfile(src / name, out / folder / name)
        # transformers 5 records how *this* load happened; meaningless for the saved folder.
        _edit_json(out / folder / "tokenizer_config.json",
                   lambda d: [d.pop(k, None) for k in ("is_local", "local_files_only")])
    # AutoencoderTiny registers a compat alias that from_pretrained then warns about.
    for folder in ("taesd", "taesdxl"):
        _edit_json(out / folder / "config.json", lambda d: d.pop("block_out_channels", None))


def write_tiny_model(directory, full_size: bool = False, seed: int = 0, *, inpainting: bool = False,
                     family: str = "sd15", prediction: str | None = None,
                     progress: Callable[[str], None] | None = None) -> pathlib.Path:
    """Write a random-weight img2img pipeline of `family` ("sd15", "sd2" or "sdxl"; safetensors only)
    into ``directory``.

    Returns the directory as an absolute path.  The same ``seed`` writes the same weights.  The
    folder is created if needed; component entries this function owns (model_index.json, unet, vae,
    text encoders, tokenizers, scheduler, taesd/taesdxl) are replaced, anything else in it is left alone.
    ``inpainting`` writes an inpainting checkpoint's 9-channel UNet; ``prediction`` ("epsilon" or
    "v_prediction") overrides the family's scheduler's (SD 2.x: v-prediction, as SD 2.1; SD-Turbo is
    epsilon). ``progress`` receives short human-readable status lines. All keyword-only.
    """
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    from .core.families import FAMILIES

    if family not in tiny_families.FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of: {', '.join(tiny_families.FAMILIES)}")
    say = progress or (lambda _msg: None)
    out = pathlib.Path(directory).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in _OWNED_ENTRIES:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()

    kind = ("full-size" if full_size else "tiny") + (" inpainting" if inpainting else "") + f" {family}"
    t0 = time.perf_counter()
    with _quiet_libraries():
        tokenizer = _load_tokenizer()
        ids = (tokenizer.convert_tokens_to_ids(BOS_TOKEN), tokenizer.convert_tokens_to_ids(EOS_TOKEN),
               tokenizer.pad_token_id)

        # Seed a private copy of the CPU RNG so callers' random state is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            say(f"building {kind} UNet")
            unet = UNet2DConditionModel(**dict(_unet_config(full_size, inpainting),
                                               **tiny_families.unet_changes(family, full_size)))
            say(f"building {kind} VAE")
            vae = AutoencoderKL(**dict(_vae_config(full_size), **tiny_families.vae_changes(family)))
            say(f"building {kind} text encoder(s)")
            text_encoders = _text_encoders(family, full_size, len(tokenizer), *ids)
            say(f"building {kind} TAESD")
            taesd = AutoencoderTiny(**_taesd_config(full_size))
            scheduler = _scheduler(family, prediction)

        for model in (unet, vae, taesd, *text_encoders):
            model.eval()
            model.requires_grad_(False)

        pipe = _pipeline(family, unet, vae, text_encoders, tokenizer, scheduler)
        say(f"saving pipeline to {out}")
        pipe.save_pretrained(out, safe_serialization=True)
        say("saving taesd")
        taesd.save_pretrained(out / FAMILIES[family].taesd_folder, safe_serialization=True)
    _tidy_saved_files(out)

    stray = sorted(
        str(p.relative_to(out))
        for name in _OWNED_ENTRIES
        for p in ((out / name).rglob("*") if (out / name).is_dir() else ())
        if p.suffix in (".bin", ".pt", ".pth", ".ckpt")
    )
    if stray:  # pragma: no cover - guard against library defaults changing
        raise RuntimeError(f"unexpected non-safetensors weight files written: {stray}")
    say(f"done in {time.perf_counter() - t0:.1f}s")
    return out


def _text_encoders(family: str, full_size: bool, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> list:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    common = _text_config(full_size, vocab_size, bos_id, eos_id, pad_id)
    encoders = [CLIPTextModel(CLIPTextConfig(**dict(common, **tiny_families.text_changes(family, full_size))))]
    if family == "sdxl":
        second = dict(common, **tiny_families.text_2_config(full_size))
        encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**second)))
    return encoders


def _scheduler(family: str, prediction: str | None):
    import diffusers

    found = tiny_families.scheduler_config(family, prediction)
    if found is None:  # SD1.5's PNDM, which keeps clip_sample like SD1.5
        return diffusers.PNDMScheduler.from_config(dict(SD15_SCHEDULER_CONFIG, prediction_type=prediction or "epsilon"))
    name, config = found
    return getattr(diffusers, name).from_config(config)


def _pipeline(family: str, unet, vae, text_encoders: list, tokenizer, scheduler):
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    if family == "sdxl":
        return StableDiffusionXLImg2ImgPipeline(
            vae=vae, text_encoder=text_encoders[0], text_encoder_2=text_encoders[1], tokenizer=tokenizer,
            tokenizer_2=tokenizer, unet=unet, scheduler=scheduler, requires_aesthetics_score=False,
            force_zeros_for_empty_prompt=True,
        )
    return StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text_encoders[0], tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
class _CliError(Exception):
    pass


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit code 2
        raise _CliError(message)


def _parse_args(argv):
    parser = _ArgumentParser(
        prog="python -m sketchpad.tiny_model",
        description="Write a random-weight Stable Diffusion pipeline (SD 1.5, SD 2.x or SDXL architecture; "
        "diffusers layout, safetensors) for offline tests and benchmarks.",
    )
    parser.add_argument("directory", metavar="DIR", help="folder to write (must be empty or absent)")
    parser.add_argument("--family", choices=tiny_families.FAMILIES, default="sd15",
                        help="the architecture: SD 1.5 (default), SD 2.x or SDXL")
    parser.add_argument("--prediction", choices=("epsilon", "v_prediction"), default=None,
                        help="what the UNet predicts (default: the family's; SD 2.x is v_prediction, as SD 2.1)")
    parser.add_argument("--full-size", action="store_true",
                        help="real SD1.5 sizes (about 4 GiB) instead of the tiny test model")
    parser.add_argument("--inpainting", action="store_true",
                        help="an inpainting checkpoint's UNet (9 input channels: latents, mask, masked picture)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the random weights (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    prog = "sketchpad.tiny_model"
    try:
        args = _parse_args(argv)
        target = pathlib.Path(args.directory).expanduser()
        if target.exists() and not target.is_dir():
            raise _CliError(f"{target} exists and is not a folder")
        if target.is_dir() and any(target.iterdir()) and not args.overwrite:
            raise _CliError(f"{target} is not empty (pass --overwrite to write into it anyway)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

        started = time.perf_counter()

        def progress(msg: str) -> None:
            print(f"{prog}: [{time.perf_counter() - started:5.1f}s] {msg}", file=sys.stderr, flush=True)

        out = write_tiny_model(target, full_size=args.full_size, seed=args.seed, inpainting=args.inpainting,
                               family=args.family, prediction=args.prediction, progress=progress)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - CLI boundary: one line, no traceback
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
