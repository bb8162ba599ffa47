"""Presets (Quality / Live-fast), TAESD drafts with their refine, and the new command-line options."""

import subprocess
import sys

import numpy as np
import pytest

from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import PRESETS, GenerationParams, LoraSpec
from sketchpad.core.presets import HYPER_SD_8_STEP_LORA, LCM_LORA, PRESET_TABLE, apply_preset


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_each_preset_sets_sampler_steps_cfg_and_its_lora_in_one_go():
    base = GenerationParams("a cat", strength=0.6, seed=3, steps=30, cfg=9.0, scheduler="euler_a")
    expected = {
        "quality": (None, 20, 7.5, ()),
        "lcm": ("lcm", 4, 1.0, (LCM_LORA,)),
        "hyper": ("ddim_trailing", 8, 1.0, (HYPER_SD_8_STEP_LORA,)),
        "lightning": ("ddim_trailing", 4, 1.0, ("ByteDance/Hyper-SD/Hyper-SD15-4steps-lora.safetensors",)),
        "turbo": ("tcd", 1, 1.0, ("ByteDance/Hyper-SD/Hyper-SD15-1step-lora.safetensors",)),
    }
    assert tuple(expected) == PRESETS
    for name, (scheduler, steps, cfg, loras) in expected.items():
        p = apply_preset(base, name).validated()
        assert (p.scheduler, p.steps, p.cfg, tuple(lora.source for lora in p.loras)) == (scheduler, steps, cfg, loras)
        assert (p.preset, p.strength, p.seed, p.prompt) == (name, 0.6, 3, "a cat")  # denoise untouched


def test_switching_presets_swaps_the_few_step_lora_and_keeps_the_persons_own():
    own = LoraSpec("/loras/watercolor.safetensors", 0.7)
    p = apply_preset(GenerationParams("x", loras=(own,)), "lcm")
    p = apply_preset(p, "hyper")
    assert [lora.source for lora in p.loras] == ["/loras/watercolor.safetensors", HYPER_SD_8_STEP_LORA]
    assert apply_preset(p, "quality").loras == (own,)


def test_a_start_step_keeps_its_place_in_the_schedule():
    for start, expected in ((0, 0), (10, 2), (20, 4)):
        p = apply_preset(GenerationParams("x", strength=None, start_at_step=start, steps=20), "lcm").validated()
        assert p.start_at_step == expected


def test_the_presets_module_needs_no_torch():
    code = "import sys, sketchpad.core.presets; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_unknown_preset_is_refused():
    with pytest.raises(SketchpadError, match="preset"):
        apply_preset(GenerationParams("x"), "fast")
    with pytest.raises(SketchpadError, match="preset"):
        GenerationParams("x", preset="fast").validated()


def test_each_family_has_its_own_loras_and_samplers_for_the_presets():
    base = GenerationParams("a cat", strength=0.6, seed=3)
    expected = {
        "lcm": ("lcm", 4, "latent-consistency/lcm-lora-sdxl"),
        "hyper": ("ddim_trailing", 8, "ByteDance/Hyper-SD/Hyper-SDXL-8steps-lora.safetensors"),
        "lightning": ("euler_trailing", 4, "ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors"),
        "turbo": ("tcd", 1, "ByteDance/Hyper-SD/Hyper-SDXL-1step-lora.safetensors"),
    }
    for name, (scheduler, steps, lora) in expected.items():
        p = apply_preset(base, name, "sdxl").validated()
        assert (p.scheduler, p.steps, p.cfg, [spec.source for spec in p.loras]) == (scheduler, steps, 1.0, [lora])
        assert apply_preset(base, name).steps == steps  # a preset's versions all run the same steps
    for family in ("sd2", "sdxl"):  # SD-Turbo and SDXL-Turbo as they are: their own sampler, one step, no CFG
        p = apply_preset(base, "turbo", family, turbo=True)
        assert (p.scheduler, p.steps, p.cfg, p.loras) == (None, 1, 1.0, ())
    for name in ("lcm", "hyper", "lightning", "turbo"):  # no such LoRAs exist for SD 2.x
        with pytest.raises(SketchpadError, match=f"^the {name} preset has no LoRA for SD 2.x models; use quality"):
            apply_preset(base, name, "sd2")


def test_a_preset_made_for_sd15_is_fitted_to_the_models_family_keeping_what_the_person_set():
    from sketchpad.core.presets import fit_preset_to_model

    own = LoraSpec("/loras/ink.safetensors", 0.5)
    made = apply_preset(GenerationParams("x", loras=(own,)), "lightning")  # what the window's picker makes
    fitted = fit_preset_to_model(made, "sdxl")
    assert fitted == apply_preset(GenerationParams("x", loras=(own,)), "lightning", "sdxl")
    assert fit_preset_to_model(made, "sd15") == made and fit_preset_to_model(fitted, "sdxl") == fitted
    # a sampler the person chose stays; the LoRA is still the family's
    chosen = fit_preset_to_model(made.replace(scheduler="euler_a"), "sdxl")
    assert chosen.scheduler == "euler_a" and chosen.loras == fitted.loras
    turbo = apply_preset(GenerationParams("x"), "turbo")
    assert fit_preset_to_model(turbo, "sdxl", turbo=True) == apply_preset(GenerationParams("x"), "turbo", "sdxl", True)
    assert fit_preset_to_model(GenerationParams("x", steps=3), "sdxl").steps == 3  # no preset: nothing to fit
    mine = turbo.replace(loras=(own,))  # the preset's LoRA swapped for the person's own: theirs to run
    assert fit_preset_to_model(mine, "sdxl") == mine


@pytest.fixture
def local_lcm(tiny_lora_file):
    """The LCM preset with a local random LoRA in place of the (uncached) LCM-LoRA download."""
    return lambda p: apply_preset(p, "lcm").replace(loras=(LoraSpec(str(tiny_lora_file)),))


@pytest.fixture
def fresh_engine(tiny_model_dir):
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.sources import resolve_model_source

    notices = []
    engine = Img2ImgEngine(load_pipeline(resolve_model_source(str(tiny_model_dir)), pick_device("cpu")), "t", notices.append)
    engine.notices = notices
    return engine


def unet_batches(engine, monkeypatch):
    batches = []
    forward = engine.pipe.unet.forward
    monkeypatch.setattr(engine.pipe.unet, "forward", lambda x, *a, **k: batches.append(x.shape[0]) or forward(x, *a, **k))
    return batches


@pytest.mark.parametrize("denoise,runs", [(1.0, 4), (0.5, 4), (0.0, 0)])
def test_live_fast_runs_four_lcm_steps_without_cfg_whatever_the_denoise(
    fresh_engine, local_lcm, stick_figure, monkeypatch, denoise, runs
):
    batches = unet_batches(fresh_engine, monkeypatch)
    p = local_lcm(GenerationParams("a knight", strength=denoise, seed=1))
    result = fresh_engine.generate(p, stick_figure)
    assert result.steps_run == runs and batches == [1] * runs  # batch 1: no CFG
    if runs:
        assert result.sampler == "lcm"
    else:
        assert np.array_equal(pixels(result.image), pixels(stick_figure))


def test_hyper_runs_trailing_ddim_from_the_last_timestep(fresh_engine, stick_figure, monkeypatch):
    timesteps = []
    forward = fresh_engine.pipe.unet.forward
    monkeypatch.setattr(fresh_engine.pipe.unet, "forward", lambda x, t, *a, **k: timesteps.append(int(t)) or forward(x, t, *a, **k))
    p = apply_preset(GenerationParams("a knight", strength=1.0, seed=1), "hyper").replace(loras=())
    result = fresh_engine.generate(p, stick_figure)
    assert result.sampler == "ddim_trailing" and len(timesteps) == 8 and timesteps[0] == 999


def test_a_draft_is_decoded_by_taesd_and_its_refine_costs_one_vae_decode(fresh_engine, local_lcm, stick_figure, monkeypatch):
    from diffusers import AutoencoderTiny

    vae_decodes, taesd_decodes = [], []
    vae_decode = fresh_engine.pipe.vae.decode
    monkeypatch.setattr(fresh_engine.pipe.vae, "decode", lambda *a, **k: vae_decodes.append(1) or vae_decode(*a, **k))
    taesd_decode = AutoencoderTiny.decode
    monkeypatch.setattr(AutoencoderTiny, "decode", lambda self, *a, **k: taesd_decodes.append(1) or taesd_decode(self, *a, **k))
    batches = unet_batches(fresh_engine, monkeypatch)
    p = local_lcm(GenerationParams("a knight", strength=0.7, seed=5, draft=True, preview_method="none"))
    full = fresh_engine.generate(p.replace(draft=False), stick_figure)  # the picture a refine must give
    assert (len(batches), len(vae_decodes), len(taesd_decodes)) == (4, 1, 0)
    draft = fresh_engine.generate(p, stick_figure)
    assert (len(batches), len(vae_decodes), len(taesd_decodes)) == (8, 1, 1)
    refined = fresh_engine.refine(draft.params, stick_figure)
    assert (len(batches), len(vae_decodes)) == (8, 2)  # no new run: the draft's latents, decoded by the VAE
    assert np.array_equal(pixels(full.image), pixels(refined.image))
    assert refined.image.size == draft.image.size and not np.array_equal(pixels(refined.image), pixels(draft.image))
    assert fresh_engine.notices == []


def test_a_refine_of_another_request_runs_it(fresh_engine, stick_figure, monkeypatch):
    batches = unet_batches(fresh_engine, monkeypatch)
    p = GenerationParams("a knight", strength=0.7, seed=5, steps=2, scheduler="euler", draft=True)
    fresh_engine.generate(p, stick_figure)
    fresh_engine.refine(p.replace(seed=6), stick_figure)
    assert len(batches) == 4


def test_without_taesd_a_draft_uses_the_full_vae_and_says_so_once(fresh_engine, stick_figure, monkeypatch):
    monkeypatch.setattr("sketchpad.backends.local.taesd.taesd_candidates", lambda pipe, family: ["/nonexistent/taesd"])
    p = GenerationParams("a knight", strength=0.7, seed=5, steps=2, scheduler="euler", draft=True, preview_method="taesd")
    first = fresh_engine.generate(p, stick_figure)
    fresh_engine.generate(p.replace(seed=9), stick_figure)
    full = fresh_engine.generate(p.replace(draft=False, preview_method="none"), stick_figure)
    assert np.array_equal(pixels(first.image), pixels(full.image))
    assert len(fresh_engine.notices) == 1 and "full VAE" in fresh_engine.notices[0]


def test_preset_and_draft_are_saved_and_read_back():
    from sketchpad.core.storage import ResultInfo, format_parameters, parse_parameters

    p = apply_preset(GenerationParams("a cat", seed=4, draft=True), "hyper")
    text = format_parameters(ResultInfo(p, 64, 64, "m", "ddim_trailing"))
    assert "Sampler: DDIM Trailing" in text and "Preset: hyper" in text and "VAE: TAESD" in text
    assert text.startswith("a cat <lora:Hyper-SD15-8steps-lora:1.0>\n")
    assert parse_parameters(text).params == p


# ---- the command line ---------------------------------------------------------------------------------------


def cli_params(*args):
    from sketchpad.cli import build_generate_parser, params_from_args

    return params_from_args(build_generate_parser().parse_args(["s.png", "--prompt", "x", *args]))


def test_cli_preset_with_explicit_overrides_and_loras():
    p = cli_params("--preset", "hyper", "--steps", "6", "--lora", "/l/a.safetensors:0.5", "--lora", "owner/style")
    assert (p.scheduler, p.steps, p.cfg, p.preset) == ("ddim_trailing", 6, 1.0, "hyper")
    assert [(lora.source, lora.weight) for lora in p.loras] == [
        ("/l/a.safetensors", 0.5), ("owner/style", 1.0), (HYPER_SD_8_STEP_LORA, 1.0)
    ]
    p = cli_params("--preset", "lcm", "--cfg", "1.5", "--scheduler", "euler", "--start-at-step", "1")
    assert (p.scheduler, p.steps, p.cfg, p.start_at_step, p.strength) == ("euler", 4, 1.5, 1, None)
    p = cli_params("--control", "lllyasviel/control_v11p_sd15_scribble", "--control-strength", "0.6",
                   "--control-range", "0.1:0.8")
    assert (p.control.model, p.control.strength, p.control.start, p.control.end) == (
        "lllyasviel/control_v11p_sd15_scribble", 0.6, 0.1, 0.8)
    assert cli_params().preset is None and cli_params().steps == 20 and cli_params().cfg == 7.5


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--lora", "style.ckpt"], "pickled"),
        (["--lora", "style.pt:0.5"], "pickled"),
        (["--lora", "missing.safetensors"], "not found"),
        (["--lora", "x.safetensors:heavy"], "weight"),
        (["--lora", "x.safetensors:20"], "weight"),
        (["--lora", "someone/not-cached-lora"], "Hugging Face cache"),
        (["--preset", "fast"], "invalid choice"),
        (["--control", "scribble.pth"], "pickled"),
        (["--control", "someone/not-cached-controlnet"], "Hugging Face cache"),
        (["--control", "missing-folder/scribble.safetensors"], "not found"),
        (["--control-strength", "0.5"], "need --control"),
        (["--control", "a/b", "--control-strength", "3"], "strength"),
        (["--control", "a/b", "--control-range", "0.5"], "START:END"),
        (["--control", "a/b", "--control-range", "0.8:0.2"], "start before"),
    ],
)
def test_cli_bad_values_are_one_line_exit_2_before_loading_anything(
    capsys, monkeypatch, tmp_path, stick_figure, tiny_model_dir, args, expected
):
    from sketchpad.cli import main

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the bad value was found")

    monkeypatch.setattr("sketchpad.backends.local.models.load_pipeline", no_loading)
    monkeypatch.chdir(tmp_path)
    stick_figure.save(tmp_path / "s.png")
    out = tmp_path / "out.png"
    code = main(["generate", "s.png", "--prompt", "x", "--model", str(tiny_model_dir), "--out", str(out), *args])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert expected in err and not out.exists()


# ---- the panel's preset picker ------------------------------------------------------------------------------


@pytest.fixture
def panel(qtbot):
    from sketchpad.ui.generation_panel import GenerationPanel

    made = GenerationPanel()
    qtbot.addWidget(made)
    return made


def choose_preset(panel, name):
    index = panel.presets.preset_combo.findData(name)
    panel.presets.preset_combo.setCurrentIndex(index)
    panel.presets.preset_combo.activated.emit(index)


def test_the_panel_preset_picker_sets_everything_in_one_go_and_one_signal(panel, qtbot):
    panel.set_denoise(0.6)
    changes = []
    panel.params_changed.connect(lambda: changes.append(panel.params()))
    choose_preset(panel, "lcm")
    p = panel.params()
    assert (p.preset, p.scheduler, p.steps, p.cfg, p.strength) == ("lcm", "lcm", 4, 1.0, 0.6)
    assert [lora.source for lora in p.loras] == [LCM_LORA]
    assert len(changes) == 1 and changes[0] == p
    choose_preset(panel, "quality")
    p = panel.params()
    assert (p.preset, p.scheduler, p.steps, p.cfg, p.loras) == ("quality", None, 20, 7.5, ())


def test_editing_a_presets_steps_makes_it_custom_and_keeps_its_lora(panel):
    choose_preset(panel, "hyper")
    panel.steps_spin.setValue(6)
    p = panel.params()
    assert p.preset is None and panel.presets.preset_combo.currentText() == "Custom"
    assert [lora.source for lora in p.loras] == [HYPER_SD_8_STEP_LORA]


def test_a_loaded_request_with_loras_preset_and_controlnet_round_trips_through_the_panel(panel):
    from sketchpad.core.params import ControlSpec

    p = apply_preset(GenerationParams("a cat", seed=5, strength=0.4), "lcm").replace(
        loras=(LoraSpec("/l/style.safetensors", 0.5), LoraSpec(LCM_LORA)), control=ControlSpec("a/b", 0.7, 0.0, 0.8)
    ).validated()
    panel.set_params(p)
    assert panel.params() == p and panel.presets.preset_combo.currentData() == "lcm"
