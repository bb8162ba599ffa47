"""What an engine leaves behind: no hooks piling up on a shared pipeline, and weights freed at once.

"At once" means without a garbage collection: gc is disabled while the references are dropped, so
only reference counting can free the UNet, which it does only if no reference cycle holds it.
"""

import gc
import weakref
from contextlib import contextmanager

import pytest
import torch

from sketchpad.core.params import GenerationParams


def params(**changes) -> GenerationParams:
    base = dict(prompt="a knight", steps=2, seed=7, scheduler="euler", strength=0.5)
    base.update(changes)
    return GenerationParams(**base)


def forward_pre_hooks(module: torch.nn.Module) -> int:
    return sum(len(sub._forward_pre_hooks) for sub in module.modules())


@contextmanager
def gc_disabled():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_own_pipeline(model_dir):
    """A pipeline nobody else holds (a fixture's value would be held by pytest), so dropping our
    references must free it."""
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source

    return load_pipeline(resolve_model_source(str(model_dir)), pick_device("cpu"))


def run_everything(engine, sketch) -> None:
    """A run that touches every cache and previewer and checks for stops inside the UNet."""
    stops = []
    for method in ("latent2rgb", "vae", "taesd"):
        result = engine.generate(params(preview_method=method), sketch, lambda preview: None, lambda: stops.append(1) and False)
        assert result is not None
    assert len(stops) > 2 * 2 * 3  # the checks inside the UNet ran, not only the per-step ones


def test_engines_sharing_a_pipeline_leave_no_hooks_behind(tiny_pipeline, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    before = forward_pre_hooks(tiny_pipeline.unet)
    inside_runs = []
    for _ in range(3):
        engine = Img2ImgEngine(tiny_pipeline)
        engine.generate(params(), stick_figure, lambda p: inside_runs.append(forward_pre_hooks(tiny_pipeline.unet)),
                        lambda: False)
        assert forward_pre_hooks(tiny_pipeline.unet) == before
    # while a run is in flight its stop checks are in place (one per ResNet / transformer block)
    assert len(set(inside_runs)) == 1 and inside_runs[0] > before


def test_a_cancelled_run_removes_its_hooks_too(tiny_pipeline, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    before = forward_pre_hooks(tiny_pipeline.unet)
    checks = []
    result = Img2ImgEngine(tiny_pipeline).generate(params(steps=4), stick_figure, None,
                                                   lambda: checks.append(1) or len(checks) > 3)
    assert result is None  # left from inside the UNet
    assert forward_pre_hooks(tiny_pipeline.unet) == before


def test_dropping_engine_and_pipeline_frees_the_unet_without_a_collection(tiny_model_dir, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    own_pipeline = load_own_pipeline(tiny_model_dir)
    engine = Img2ImgEngine(own_pipeline)
    run_everything(engine, stick_figure)
    unet, vae = weakref.ref(own_pipeline.unet), weakref.ref(own_pipeline.vae)
    with gc_disabled():
        del engine, own_pipeline
        assert unet() is None and vae() is None


def test_close_lets_the_weights_go_while_the_engine_object_lives_on(tiny_model_dir, stick_figure):
    from sketchpad.backends.local.img2img import Img2ImgEngine

    own_pipeline = load_own_pipeline(tiny_model_dir)
    engine = Img2ImgEngine(own_pipeline)
    run_everything(engine, stick_figure)
    unet = weakref.ref(own_pipeline.unet)
    with gc_disabled():
        engine.close()
        del own_pipeline  # the caller's last reference (the worker drops its own the same way)
        assert unet() is None
        assert engine.closed
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate(params(), stick_figure)
    engine.close()  # closing twice is harmless


def test_close_on_cuda_returns_the_cached_memory(tiny_pipeline, monkeypatch):
    # no GPU here: a CUDA engine is stood in for by its device field; the call is what matters
    from sketchpad.backends.local.img2img import Img2ImgEngine

    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    cpu_engine = Img2ImgEngine(tiny_pipeline)
    cpu_engine.close()
    assert emptied == []
    cuda_engine = Img2ImgEngine(tiny_pipeline)
    cuda_engine.device = torch.device("cuda")
    cuda_engine.close()
    assert emptied == [1]
