"""Broken models, each made from the tiny model, and what the person is told about them.

Every message is one or two lines: the file or folder at fault, then what to do. Nothing else may
reach the terminal (no library log line before ours): capfd sees the process's own stdout/stderr.
"""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from sketchpad.backends.local.models import load_pipeline
from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.sources import resolve_model_source

AGAIN = "Copy it again from where the model came from, or download the model again."


@pytest.fixture
def copy_of(tiny_model_dir, tmp_path):
    def make(name="model"):
        folder = tmp_path / name
        shutil.copytree(tiny_model_dir, folder)
        return folder

    return make


def load_error(location, capfd) -> str:
    capfd.readouterr()  # whatever earlier fixtures printed
    with pytest.raises(SketchpadError) as caught:
        load_pipeline(resolve_model_source(str(location)), torch.device("cpu"))
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), "something besides our message reached the terminal"
    message = str(caught.value)
    assert 1 <= len(message.splitlines()) <= 2
    assert caught.value.kind is FailureKind.MODEL, message
    return message


def edit_json(path, **changes):
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_a_folder_with_a_pickled_unet_is_refused_without_a_library_line(copy_of, capfd):
    folder = copy_of()
    (folder / "unet/diffusion_pytorch_model.safetensors").rename(folder / "unet/diffusion_pytorch_model.bin")
    assert load_error(folder, capfd) == (
        f"{folder}/unet holds only pickled weights (diffusion_pytorch_model.bin), which Sketchpad never opens: "
        "a pickle can run code.\nConvert them to .safetensors, or get the model's .safetensors files."
    )


def test_a_unet_whose_weights_do_not_fit_its_config_names_both_files(copy_of, capfd):
    folder = copy_of()
    edit_json(folder / "unet/config.json", cross_attention_dim=64)  # the tiny model's is 32
    assert load_error(folder, capfd) == (
        f"{folder}/unet/diffusion_pytorch_model.safetensors does not fit {folder}/unet/config.json "
        "(down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight is 64x32 in the weights, 64x64 by the "
        "config).\nThe two come from different models: copy both from the same source."
    )


def test_a_text_encoder_whose_weights_do_not_fit_its_config_names_both_files(copy_of, capfd):
    folder = copy_of()
    edit_json(folder / "text_encoder/config.json", hidden_size=64)  # the tiny model's is 32
    message = load_error(folder, capfd)
    # transformers releases differ in whether CLIP's tensor names carry a "text_model." prefix
    assert message.replace("text_model.embeddings", "embeddings") == (
        f"{folder}/text_encoder/model.safetensors does not fit {folder}/text_encoder/config.json "
        "(embeddings.token_embedding.weight is 568x32 in the weights, 568x64 by the config).\n"
        "The two come from different models: copy both from the same source."
    )


def test_a_missing_vae_names_the_vae_folder(copy_of, capfd):
    folder = copy_of()
    shutil.rmtree(folder / "vae")
    assert load_error(folder, capfd) == (
        f"{folder}/vae is missing: the model needs its vae folder (the VAE, which turns pictures into latents "
        f"and back).\n{AGAIN}"
    )


def test_missing_vae_weights_name_the_file(copy_of, capfd):
    folder = copy_of()
    (folder / "vae/diffusion_pytorch_model.safetensors").unlink()
    assert load_error(folder, capfd) == f"{folder}/vae/diffusion_pytorch_model.safetensors is missing: vae has no weights.\n{AGAIN}"


def test_truncated_weights_are_called_damaged(copy_of, capfd):
    folder = copy_of()
    weights = folder / "unet/diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    message = load_error(folder, capfd)
    assert message.startswith(f"{weights} is damaged or not a safetensors file (")
    assert message.endswith(").\nCopy or download it again.")


def test_a_damaged_file_keeps_the_librarys_error_as_its_cause(copy_of):
    from sketchpad.backends.local.model_checks import read_header, read_json

    folder = copy_of()
    (folder / "model_index.json").write_text("{")
    (folder / "vae/diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    for read, path in ((read_json, folder / "model_index.json"),
                       (read_header, folder / "vae/diffusion_pytorch_model.safetensors")):
        with pytest.raises(SketchpadError) as caught:
            read(path)
        assert caught.value.__cause__ is not None and caught.value.kind is FailureKind.MODEL


def test_a_broken_model_index_names_the_file_and_line(copy_of, capfd):
    folder = copy_of()
    (folder / "model_index.json").write_text('{\n  "unet": [\n')
    message = load_error(folder, capfd)
    assert message.startswith(f"{folder}/model_index.json is damaged: it is not valid JSON (")
    assert message.endswith(f", line 3).\n{AGAIN}")


def test_a_missing_tokenizer_is_said_before_anything_loads(copy_of, capfd):
    folder = copy_of()
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        (folder / "tokenizer" / name).unlink(missing_ok=True)
    assert load_error(folder, capfd) == (
        f"{folder}/tokenizer has no vocabulary (vocab.json and merges.txt, or tokenizer.json).\n{AGAIN}"
    )


def test_a_model_index_without_a_vae_entry_says_so(copy_of, capfd):
    folder = copy_of()
    edit_json(folder / "model_index.json", vae=[None, None])
    assert load_error(folder, capfd) == (
        f"{folder}/model_index.json lists no vae (the VAE, which turns pictures into latents and back), so this "
        f"is not a complete Stable Diffusion model.\n{AGAIN}"
    )


def test_a_good_folder_loads_without_a_word_on_the_terminal(tiny_model_dir, capfd):
    capfd.readouterr()
    load_pipeline(resolve_model_source(str(tiny_model_dir)), torch.device("cpu"))
    assert capfd.readouterr() == ("", "")


# ---- single-file checkpoints -------------------------------------------------------------------
@pytest.fixture
def checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    from ldm_checkpoint import write_single_file_checkpoint

    monkeypatch.setenv("SKETCHPAD_CHECKPOINT_CONFIG", str(tiny_model_dir))
    return write_single_file_checkpoint(tiny_model_dir, tmp_path / "sketchy.safetensors")


def rewrite(checkpoint, keep=lambda key: True, change=None):
    tensors = {key: value for key, value in load_file(str(checkpoint)).items() if keep(key)}
    if change:
        change(tensors)
    save_file(tensors, str(checkpoint))
    return checkpoint


def test_a_checkpoint_without_a_vae_says_so(checkpoint, capfd):
    rewrite(checkpoint, keep=lambda key: not key.startswith("first_stage_model."))
    assert load_error(checkpoint, capfd) == (
        f"{checkpoint} has no VAE inside (no first_stage_model.* weights).\n"
        "Use a checkpoint with its VAE baked in, or a diffusers model folder."
    )


def test_a_lora_chosen_as_the_model_is_recognised(tmp_path, capfd):
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}, str(lora))
    assert load_error(lora, capfd) == f"{lora} is a LoRA, not a model: add it on top of a model under LoRAs (--lora)."


def test_a_checkpoint_of_another_shape_names_the_tensor_and_the_configuration(checkpoint, tiny_model_dir, capfd):
    def widen(tensors):
        key = next(k for k in tensors if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight"))
        tensors[key] = torch.zeros(tensors[key].shape[0], tensors[key].shape[1] * 2)

    rewrite(checkpoint, change=widen)
    assert load_error(checkpoint, capfd) == (
        f"{checkpoint} does not fit the model configuration from {tiny_model_dir} "
        "(down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight is 64x64 in the file, 64x32 by the "
        "configuration).\nChoose an SD 1.5, SD 2.x or SDXL checkpoint, or set SKETCHPAD_CHECKPOINT_CONFIG to a "
        "diffusers folder of its own kind."
    )


def test_a_truncated_checkpoint_is_called_damaged(checkpoint, capfd):
    checkpoint.write_bytes(checkpoint.read_bytes()[:4096])
    message = load_error(checkpoint, capfd)
    assert message.startswith(f"{checkpoint} is damaged or not a safetensors file (")
    assert message.endswith(").\nCopy or download it again.")
