"""Model sources, devices, and the refusal to unpickle anything."""

import pytest
import torch

from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.backends.local.models import load_pipeline, pick_device
from sketchpad.core.sources import DEFAULT_MODEL, resolve_model_source


def test_default_and_hub_ids_resolve_to_the_hub():
    assert resolve_model_source(None).location == DEFAULT_MODEL
    source = resolve_model_source("someone/some-model")
    assert (source.kind, source.name) == ("hub", "some-model")


def test_a_diffusers_folder_resolves_and_loads(tiny_model_dir):
    source = resolve_model_source(str(tiny_model_dir))
    assert source.kind == "folder"
    pipe = load_pipeline(source, torch.device("cpu"))
    assert pipe.safety_checker is None and pipe.unet.dtype == torch.float32


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickled_files_are_refused_even_if_present(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04payload")
    with pytest.raises(SketchpadError, match="safetensors"):
        resolve_model_source(str(path))


def test_folder_with_only_pickled_weights_is_refused(tmp_path, tiny_model_dir):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    for weights in folder.rglob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(SketchpadError, match="safetensors"):
        load_pipeline(resolve_model_source(str(folder)), torch.device("cpu"))


def test_folder_without_model_index_is_refused(tmp_path):
    with pytest.raises(SketchpadError, match="model_index.json"):
        resolve_model_source(str(tmp_path))


def test_hub_model_not_cached_offline_says_how_to_fix_it():
    with pytest.raises(SketchpadError, match="offline") as caught:
        load_pipeline(resolve_model_source("someone/not-in-cache"), torch.device("cpu"))
    assert caught.value.kind is FailureKind.NEEDS_DOWNLOAD
    message = str(caught.value)
    assert "someone/not-in-cache" in message and "model folder" in message and "\n" not in message


def test_devices(monkeypatch):
    assert pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    with pytest.raises(SketchpadError, match="not available"):
        pick_device("cuda")
    with pytest.raises(SketchpadError, match="unknown device"):
        pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"


def test_a_single_safetensors_checkpoint_loads_offline(tmp_path, tiny_model_dir, tiny_pipeline, monkeypatch):
    from ldm_checkpoint import write_single_file_checkpoint

    checkpoint = write_single_file_checkpoint(tiny_model_dir, tmp_path / "sketchy.safetensors")
    monkeypatch.setenv("SKETCHPAD_CHECKPOINT_CONFIG", str(tiny_model_dir))
    source = resolve_model_source(str(checkpoint))
    assert (source.kind, source.name) == ("file", "sketchy")
    pipe = load_pipeline(source, torch.device("cpu"))
    for name in ("unet", "vae", "text_encoder"):
        loaded, original = getattr(pipe, name).state_dict(), getattr(tiny_pipeline, name).state_dict()
        assert all(torch.equal(loaded[key], original[key]) for key in original)


def test_a_single_checkpoint_without_cached_configs_says_so(tmp_path, tiny_model_dir):
    from ldm_checkpoint import write_single_file_checkpoint

    checkpoint = write_single_file_checkpoint(tiny_model_dir, tmp_path / "sketchy.safetensors")
    with pytest.raises(SketchpadError, match="configuration"):
        load_pipeline(resolve_model_source(str(checkpoint)), torch.device("cpu"))


def test_the_window_and_worker_modules_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, sketchpad.ui.main_window, sketchpad.worker; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
