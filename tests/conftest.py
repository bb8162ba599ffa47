"""Shared test setup: offline, offscreen, one tiny random-weight model per test session."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Sleeping, not spinning, OpenMP workers: on a busy 2-core machine spinning pools slow torch 100x
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# fp32 everywhere unless a test asks for bf16: the comparisons with diffusers are bit for bit, and a
# CI machine with bf16 instructions must give the same pictures as one without
os.environ["SKETCHPAD_DTYPE"] = "fp32"

import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

# The real-server tests exist only where SKETCHPAD_COMFY_URL names a ComfyUI server (not skipped: absent)
collect_ignore = [] if os.environ.get("SKETCHPAD_COMFY_URL") else ["test_comfy_real.py", "test_comfy_real_app.py",
                                                                   "test_comfy_real_masks.py"]


@pytest.fixture(scope="session", autouse=True)
def app_data_in_a_temporary_folder(tmp_path_factory):
    """The app's state folder (kept results, recovery, its log) is a temporary one, never the home's."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("app-data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny SD1.5-architecture model in diffusers layout, written by the app's own writer."""
    from sketchpad.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_family_dirs(tmp_path_factory):
    """Tiny SD 2.x and SDXL models, by family name, written by the app's own writer (made once, on demand)."""
    from sketchpad.tiny_model import write_tiny_model

    made = {}

    def make(family: str):
        if family not in made:
            made[family] = write_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}"), family=family)
        return made[family]

    return make


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir):
    """The tiny model loaded through the app's real loading code (CPU, fp32)."""
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source

    return load_pipeline(resolve_model_source(str(tiny_model_dir)), pick_device("cpu"))


@pytest.fixture
def engine(tiny_pipeline):
    """A fresh engine (empty caches) over the shared tiny pipeline."""
    from sketchpad.backends.local.img2img import Img2ImgEngine

    notices = []
    made = Img2ImgEngine(tiny_pipeline, "tiny", notify=notices.append)
    made.notices = notices
    return made


@pytest.fixture(scope="session")
def tiny_lora_file(tmp_path_factory, tiny_pipeline):
    """A random-weight LoRA for the tiny model's UNet, saved by diffusers as a .safetensors file."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict

    folder = tmp_path_factory.mktemp("tiny-lora")
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(tiny_pipeline.unet.config)
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_v"], init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet), weight_name="fast.safetensors"
    )
    return folder / "fast.safetensors"


def draw_stick_figure(width=64, height=64, color="black") -> Image.Image:
    """A stick figure on white paper, scaled to the canvas."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    w, h = width / 64, height / 64
    line = max(1, round(2 * w))
    draw.ellipse((26 * w, 6 * h, 38 * w, 18 * h), outline=color, width=line)
    draw.line((32 * w, 18 * h, 32 * w, 40 * h), fill=color, width=line)
    draw.line((20 * w, 26 * h, 44 * w, 26 * h), fill=color, width=line)
    draw.line((32 * w, 40 * h, 22 * w, 58 * h), fill=color, width=line)
    draw.line((32 * w, 40 * h, 42 * w, 58 * h), fill=color, width=line)
    return image


@pytest.fixture
def stick_figure():
    return draw_stick_figure()


@pytest.fixture
def make_sketch():
    return draw_stick_figure


@pytest.fixture(autouse=True)
def no_thread_left_running(request, monkeypatch):
    """Fail any test that leaves a QThread running (napari's idea): a leaked worker outlives its window."""
    try:
        from PySide6.QtCore import QThread
    except ImportError:  # engine-only environments
        yield
        return
    started = []
    original_start = QThread.start

    def tracking_start(thread, *args):
        started.append(thread)
        return original_start(thread, *args)

    monkeypatch.setattr(QThread, "start", tracking_start)
    yield
    leaked = [thread for thread in started if _still_running(thread)]
    for thread in leaked:  # stop them so one leak does not break the tests after it
        getattr(thread, "stop", thread.quit)()
        thread.wait()
    assert not leaked, f"{request.node.name} left {len(leaked)} QThread(s) running"


def _still_running(thread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # the C++ object is gone, so is the thread
        return False
