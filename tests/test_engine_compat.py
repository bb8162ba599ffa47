"""What the engine relies on in diffusers beyond its documented calls: present, and loud when gone."""

import pytest
import torch

from sketchpad.backends.local.compat import SCHEDULER_ATTRIBUTES, check_pipeline, check_scheduler
from sketchpad.backends.local.img2img import Img2ImgEngine, _step_kwargs, stop_points
from sketchpad.backends.local.samplers import make_scheduler
from sketchpad.core.errors import SketchpadError
from sketchpad.core.registry import SCHEDULERS


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_offered_scheduler_has_what_the_engine_uses(tiny_pipeline, name):
    scheduler = make_scheduler(name, tiny_pipeline.scheduler.config)  # checks on creation
    check_scheduler(scheduler)
    assert any(isinstance(scheduler, cls) for cls in SCHEDULER_ATTRIBUTES)  # none escapes the check


def test_a_scheduler_attribute_that_disappears_is_named(tiny_pipeline):
    import diffusers

    scheduler = make_scheduler("dpmpp_2m_karras", tiny_pipeline.scheduler.config)
    del scheduler.sigmas  # what a diffusers release that renamed it would look like
    with pytest.raises(SketchpadError) as caught:
        check_scheduler(scheduler)
    assert str(caught.value) == (
        f"diffusers {diffusers.__version__} has changed: DPMSolverMultistepScheduler has no `sigmas`, which "
        "Sketchpad relies on.\nInstall the tested version: pip install 'diffusers>=0.42,<0.43'"
    )


def test_an_engine_refuses_a_pipeline_missing_what_it_uses(tiny_pipeline, monkeypatch):
    monkeypatch.delattr(type(tiny_pipeline), "prepare_extra_step_kwargs")
    with pytest.raises(SketchpadError, match="has no `prepare_extra_step_kwargs`"):
        Img2ImgEngine(tiny_pipeline)


def test_the_pipeline_has_what_the_engine_uses(tiny_pipeline):
    check_pipeline(tiny_pipeline)


def test_the_unet_has_stop_points_of_both_kinds(tiny_pipeline):
    # if diffusers moved or renamed these blocks, a stale run could no longer leave mid-step
    kinds = {type(module).__name__ for module in stop_points(tiny_pipeline.unet)}
    assert kinds == {"ResnetBlock2D", "BasicTransformerBlock"}


@pytest.mark.parametrize("name,expected", [
    ("ddim", {"eta", "generator"}),  # DDIM's step takes eta (0: deterministic) and a generator
    ("euler_a", {"generator"}),  # ancestral sampling draws noise every step
    ("pndm", set()),
    ("dpmpp_2m", {"generator"}),
])
def test_step_extras_follow_diffusers_own_rule(tiny_pipeline, name, expected):
    generator = torch.Generator("cpu").manual_seed(1)
    extras = _step_kwargs(tiny_pipeline, make_scheduler(name, tiny_pipeline.scheduler.config), generator)
    assert set(extras) == expected
    assert extras.get("eta", 0.0) == 0.0 and extras.get("generator", generator) is generator


def test_the_installed_libraries_are_the_pinned_ones():
    # the project declares what it tested; running the suite against anything else should say so
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    from sketchpad.backends.local.compat import TESTED_DIFFUSERS

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    pins = {Requirement(line).name.lower(): Requirement(line) for line in project["dependencies"]}
    assert str(pins["diffusers"].specifier) == str(Requirement(TESTED_DIFFUSERS).specifier)
    for name in ("diffusers", "transformers", "torch", "accelerate", "huggingface_hub", "safetensors"):
        installed = version(name).split("+")[0]
        assert pins[name].specifier.contains(installed), f"{name} {installed} is outside {pins[name]}"
