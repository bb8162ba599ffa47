"""Masks on a ComfyUI server (the stand-in): only the work picture and its mask go up, the server's
picture is pasted back so that outside the mask and its feather the output is the input, pixel for
pixel, on regular and inpainting checkpoints; the same one-line errors as on this computer."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sketchpad import cli
from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.backends.comfy.inpaint import is_inpainting_checkpoint
from sketchpad.backends.comfy.workflow import ServerMask, build_graph
from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.masks import plan_inpaint
from sketchpad.core.params import ControlSpec, GenerationParams, MaskSpec
from sketchpad.core.schedule import plan_steps
from sketchpad.core.storage import read_png_parameters
from tests.comfy_standin import StandIn
from tests.test_comfy_standin import MASK_JOBS, recorded
from tests.test_comfy_cli import ROOT
from tests.test_inpaint import CASES, ellipse_mask, noise_picture, untouched

MODEL = "standin-sd15.safetensors"
INPAINTING = "standin-sd15-Inpainting.safetensors"
CONTROLNET = "control_v11p_sd15_scribble.safetensors"


@pytest.fixture(scope="module")
def server():
    with StandIn([MODEL, INPAINTING], controlnets=[CONTROLNET]) as running:
        yield running


@pytest.fixture(scope="module")
def backend(server):
    client = ComfyBackend(server.url, MODEL)
    yield client
    client.close()


@pytest.fixture(scope="module")
def inpainting_backend(server):
    client = ComfyBackend(server.url, INPAINTING)
    yield client
    client.close()


def params(mask=None, **changes) -> GenerationParams:
    base = dict(prompt="a red door", steps=3, seed=1234, strength=0.8)
    return GenerationParams(mask=mask, **{**base, **changes})


def last_graph(server) -> dict:
    return server.prompts[-1]["prompt"]


def uploaded(server, name: str) -> Image.Image:
    with Image.open(io.BytesIO(server.uploads[name])) as image:
        image.load()
        return image


def assert_only_the_mask_changed(result, picture: Image.Image, mask: Image.Image, blur: int) -> None:
    """Outside the mask and its feather the picture, pixel for pixel, at its size; inside a new one."""
    out, given = np.asarray(result.image), np.asarray(picture)
    keep = untouched(mask, blur)
    assert result.image.size == picture.size
    assert np.array_equal(out[keep], given[keep])
    assert np.abs(out[~keep].astype(int) - given[~keep]).mean() > 5


def assert_an_all_white_mask_is_the_run_without_a_mask(backend) -> None:
    """Over the whole picture, unblurred: the noise mask lets every latent through, and at denoise 1
    the blanked latents are an empty one."""
    picture = noise_picture((96, 64))
    spec = MaskSpec.from_image(Image.new("L", (96, 64), 255), blur=0, area="whole")
    for strength in (0.6, 1.0):
        masked = backend.generate(params(spec, strength=strength), picture)
        plain = backend.generate(params(strength=strength), picture)
        assert np.array_equal(np.asarray(masked.image), np.asarray(plain.image))


# -- the outside is untouched ------------------------------------------------------------------------
@pytest.mark.parametrize("size,box,blur,area", CASES)
@pytest.mark.parametrize("strength", [0.8, 1.0])
def test_outside_the_mask_and_its_feather_the_output_is_the_input(backend, size, box, blur, area, strength):
    """The stand-in gives back every pixel outside the noise mask a little off, as a VAE does: only the
    paste keeps them exact."""
    picture, mask = noise_picture(size), ellipse_mask(size, box)
    result = backend.generate(params(MaskSpec.from_image(mask, blur=blur, area=area), strength=strength), picture)
    assert_only_the_mask_changed(result, picture, mask, blur)


@pytest.mark.parametrize("size,box,blur,area", CASES[1::2])
def test_on_an_inpainting_checkpoint_too_the_outside_is_untouched(inpainting_backend, size, box, blur, area):
    """An inpainting model redoes the whole work picture (nothing is put back on the server)."""
    picture, mask = noise_picture(size), ellipse_mask(size, box)
    result = inpainting_backend.generate(params(MaskSpec.from_image(mask, blur=blur, area=area)), picture)
    assert_only_the_mask_changed(result, picture, mask, blur)


def test_an_all_white_mask_over_the_whole_picture_unblurred_is_the_run_without_a_mask(backend):
    assert_an_all_white_mask_is_the_run_without_a_mask(backend)


def test_nothing_denoised_returns_the_picture_itself_without_the_server(server, backend):
    picture = noise_picture((100, 77))
    spec = MaskSpec.from_image(ellipse_mask((100, 77), (10, 10, 50, 50)))
    posted, sent = len(server.prompts), server.upload_requests
    for changes in (dict(strength=0.0), dict(strength=None, start_at_step=3)):
        result = backend.generate(params(spec, **changes), picture)
        assert result.steps_run == 0 and np.array_equal(np.asarray(result.image), np.asarray(picture))
    assert (len(server.prompts), server.upload_requests) == (posted, sent)


# -- what goes to the server ---------------------------------------------------------------------------
def test_a_small_fix_on_a_large_picture_sends_only_the_crop_and_its_mask(server):
    client = ComfyBackend(server.url, MODEL)
    picture = noise_picture((1000, 700), seed=4)
    mask = Image.new("L", (1000, 700), 0)
    mask.paste(255, (600, 300, 680, 360))
    spec = MaskSpec.from_image(mask)
    client.generate(params(spec), picture)
    plan = plan_inpaint(spec)
    graph = last_graph(server)
    crop, sent_mask = uploaded(server, graph["4"]["inputs"]["image"]), uploaded(server, graph["30"]["inputs"]["image"])
    assert crop.size == plan.work_size == (512, 448)  # the padded fix at SD1.5's native size
    assert np.array_equal(np.asarray(crop), np.asarray(plan.work_picture(picture)))
    assert sent_mask.mode == "L" and sent_mask.size == (64, 56)  # a regular model's: one pixel per latent
    assert np.array_equal(np.asarray(sent_mask) == 255, plan.latent_mask())
    assert client.uploads == 2
    client.close()


def test_a_dial_turn_uploads_nothing_and_a_new_mask_only_the_mask(server):
    client = ComfyBackend(server.url, MODEL)
    picture = noise_picture((96, 64), seed=5)
    spec = MaskSpec.from_image(ellipse_mask((96, 64), (10, 10, 60, 50)), area="whole")
    for strength in (0.3, 0.5, 0.7):
        client.generate(params(spec, strength=strength), picture)
    assert client.uploads == 2
    moved = MaskSpec.from_image(ellipse_mask((96, 64), (30, 10, 80, 50)), area="whole")
    client.generate(params(moved, strength=0.7), picture)  # the same picture, another mask
    assert client.uploads == 3
    client.close()


def test_a_regular_checkpoints_graph_masks_the_noise(server, backend):
    picture = noise_picture((96, 64))
    spec = MaskSpec.from_image(ellipse_mask((96, 64), (10, 10, 60, 50)), area="whole")
    backend.generate(params(spec, strength=0.5), picture)
    graph = last_graph(server)
    assert graph["30"] == {"class_type": "LoadImageMask", "inputs": {"image": graph["30"]["inputs"]["image"],
                                                                     "channel": "red"}}
    assert graph["31"]["class_type"] == "SetLatentNoiseMask"
    assert graph["31"]["inputs"] == {"samples": ["5", 0], "mask": ["30", 0]}
    assert graph["5"]["class_type"] == "VAEEncode" and graph["6"]["inputs"]["latent_image"] == ["31", 0]
    backend.generate(params(spec, strength=1.0), picture)
    graph = last_graph(server)
    # from noise alone under the mask: its latents blanked before the noise mask
    assert graph["34"]["class_type"] == "LatentCompositeMasked"
    assert graph["34"]["inputs"]["destination"] == ["5", 0] and graph["33"]["class_type"] == "EmptyLatentImage"
    assert (graph["33"]["inputs"]["width"], graph["33"]["inputs"]["height"]) == (96, 64)
    assert graph["31"]["inputs"]["samples"] == ["34", 0]


def test_an_inpainting_checkpoints_graph_conditions_on_the_mask_and_the_picture(server, inpainting_backend):
    picture = noise_picture((100, 77))
    spec = MaskSpec.from_image(ellipse_mask((100, 77), (30, 20, 60, 50)), area="whole")
    inpainting_backend.generate(params(spec), picture)
    graph = last_graph(server)
    conditioning = graph["32"]
    assert conditioning["class_type"] == "InpaintModelConditioning"
    assert conditioning["inputs"]["noise_mask"] is False and conditioning["inputs"]["pixels"] == ["4", 0]
    sampler = graph["6"]["inputs"]
    assert (sampler["positive"], sampler["negative"], sampler["latent_image"]) == (["32", 0], ["32", 1], ["32", 2])
    assert "5" not in graph and "31" not in graph
    sent_mask = uploaded(server, graph["30"]["inputs"]["image"])
    assert sent_mask.size == plan_inpaint(spec).work_size  # the model blanks the very pixels redone
    assert np.array_equal(np.asarray(sent_mask) == 255, plan_inpaint(spec).work_redo())
    inpainting_backend.generate(params(spec, strength=1.0), picture)
    assert last_graph(server)["6"]["inputs"]["latent_image"] == ["5", 0]
    assert last_graph(server)["5"]["class_type"] == "EmptyLatentImage"


@pytest.mark.parametrize("name", MASK_JOBS)
def test_the_graphs_sent_are_those_recorded_from_the_real_server(name):
    """So the stand-in, checked against those recordings, runs what the client sends."""
    graph = recorded(name)["graph"]
    sampler = graph["6"]["inputs"]
    request = GenerationParams(prompt=graph["2"]["inputs"]["text"], strength=sampler["denoise"], steps=sampler["steps"],
                               seed=sampler["seed"], cfg=sampler["cfg"])
    checkpoint = graph["1"]["inputs"]["ckpt_name"]
    mask = ServerMask(graph["30"]["inputs"]["image"], is_inpainting_checkpoint(checkpoint))
    built = build_graph(request, plan_steps(request), checkpoint, (sampler["sampler_name"], sampler["scheduler"]),
                        (64, 64), graph["4"]["inputs"]["image"], mask=mask)
    assert built.nodes == graph


def test_inpainting_checkpoints_are_known_by_name():
    assert is_inpainting_checkpoint("sd-v1-5-inpainting.ckpt")
    assert is_inpainting_checkpoint("sub/dreamshaper_8Inpainting.safetensors")
    assert not is_inpainting_checkpoint("v1-5-pruned-emaonly.safetensors")


def test_an_inpainting_models_picture_depends_on_its_mask(inpainting_backend):
    picture = noise_picture((96, 64))
    first = MaskSpec.from_image(ellipse_mask((96, 64), (10, 10, 60, 50)), area="whole", blur=0)
    second = MaskSpec.from_image(ellipse_mask((96, 64), (12, 10, 62, 50)), area="whole", blur=0)
    one = np.asarray(inpainting_backend.generate(params(first), picture).image)
    other = np.asarray(inpainting_backend.generate(params(second), picture).image)
    both = ~untouched(ellipse_mask((96, 64), (12, 10, 60, 50)), 0)
    assert not np.array_equal(one[both], other[both])


def test_keep_my_lines_sees_the_part_worked_on(server, backend):
    picture = noise_picture((300, 200))
    spec = MaskSpec.from_image(ellipse_mask((300, 200), (100, 60, 140, 100)), area="masked")
    backend.generate(params(spec, control=ControlSpec(CONTROLNET, 1.0)), picture)
    graph = last_graph(server)
    assert uploaded(server, graph["21"]["inputs"]["image"]).size == plan_inpaint(spec).work_size
    assert graph["6"]["inputs"]["positive"] == ["22", 0] and graph["6"]["inputs"]["latent_image"] == ["31", 0]


def test_previews_show_the_whole_picture_with_the_masked_part_forming(backend):
    picture = noise_picture((300, 200))
    mask = ellipse_mask((300, 200), (100, 60, 140, 100))
    steps = []
    backend.generate(params(MaskSpec.from_image(mask, area="masked")), picture, on_step=steps.append)
    assert [(s.step, s.total) for s in steps] == [(1, 3), (2, 3), (3, 3)]
    for step in steps:  # the stand-in's 64-pixel preview of the crop, pasted into the picture at its scale
        height, width = step.image.shape[:2]
        assert abs(width / height - 1.5) < 0.05 and width < 300
        small = np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR))
        assert np.array_equal(step.image[0], small[0])  # the top row lies outside the worked-on part
        assert not np.array_equal(step.image, small)  # the stand-in's flat preview is pasted in


def test_a_server_that_lost_the_pictures_gets_them_again(server):
    client = ComfyBackend(server.url, MODEL)
    picture = noise_picture((96, 64), seed=9)
    spec = MaskSpec.from_image(ellipse_mask((96, 64), (10, 10, 60, 50)), area="whole")
    client.generate(params(spec), picture)
    server.uploads.clear()  # e.g. its input folder was cleaned
    assert client.generate(params(spec, strength=0.6), picture).image.size == (96, 64)
    assert client.uploads == 4
    client.close()


# -- one-line errors -----------------------------------------------------------------------------------
def test_a_mask_of_another_size_is_one_line_and_sends_nothing(server, backend):
    posted, sent = len(server.prompts), server.upload_requests
    spec = MaskSpec.from_image(ellipse_mask((64, 64), (10, 10, 50, 50)))
    with pytest.raises(SketchpadError, match="the mask is 64x64 pixels but the picture is 100x77") as caught:
        backend.generate(params(spec), noise_picture((100, 77)))
    assert caught.value.kind is FailureKind.BAD_INPUT
    assert (len(server.prompts), server.upload_requests) == (posted, sent)


class WrongSizeStandIn(StandIn):
    """A server whose picture comes back at another size than it was sent."""

    def _value(self, graph, link):
        return super()._value(graph, link).resize((32, 32))


def test_a_picture_of_the_wrong_size_from_the_server_is_one_line():
    with WrongSizeStandIn([MODEL]) as odd:
        client = ComfyBackend(odd.url, MODEL)
        spec = MaskSpec.from_image(ellipse_mask((96, 64), (10, 10, 60, 50)), area="whole")
        with pytest.raises(SketchpadError, match="sent a 32x32 picture for a 96x64 one") as caught:
            client.generate(params(spec), noise_picture((96, 64)))
        client.close()
    assert caught.value.kind is FailureKind.SERVER_FAILED


# -- the command line ----------------------------------------------------------------------------------
@pytest.fixture
def picture_and_mask(tmp_path):
    picture, mask = tmp_path / "picture.png", tmp_path / "mask.png"
    noise_picture((100, 77), seed=3).save(picture)
    ellipse_mask((100, 77), (60, 40, 110, 90)).save(mask)
    return picture, mask


def test_generate_with_a_mask_on_a_server_pastes_saves_the_mask_and_needs_no_torch(server, tmp_path, picture_and_mask):
    picture, mask = picture_and_mask
    out = tmp_path / "fixed.png"
    script = ("import sys\nfrom sketchpad import cli\ncode = cli.main(sys.argv[1:])\nassert code == 0, code\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'PySide6')))")
    args = ["generate", str(picture), "--prompt", "a red door", "--server", server.url, "--model", MODEL,
            "--steps", "2", "--mask", str(mask), "--mask-blur", "3", "--out", str(out)]
    run = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
    result, given = np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(picture))
    keep = untouched(ellipse_mask((100, 77), (60, 40, 110, 90)), 3)
    assert result.shape == given.shape and np.array_equal(result[keep], given[keep])
    saved = read_png_parameters(out)
    assert saved.model_name == MODEL and (saved.params.mask.blur, saved.params.mask.area) == (3, "masked")


@pytest.mark.parametrize("mask_args,expected", [
    (["--mask", "OTHER"], "64x64 pixels but the picture is 100x77"),
    (["--mask", "BLACK"], "empty (all black)"),
    (["--mask", "MASK", "--padding", "1000"], "padding"),
])
def test_bad_masks_on_a_server_fail_in_one_line_as_locally(capsys, tmp_path, picture_and_mask, mask_args, expected):
    picture, mask = picture_and_mask
    Image.new("L", (64, 64), 255).save(tmp_path / "other.png")
    Image.new("L", (100, 77), 0).save(tmp_path / "black.png")
    files = {"OTHER": tmp_path / "other.png", "BLACK": tmp_path / "black.png", "MASK": mask}
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = cli.main(["generate", str(picture), "--prompt", "x", "--server", "http://127.0.0.1:9",
                     "--out", str(tmp_path / "out.png"), *[str(files.get(arg, arg)) for arg in mask_args]])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and expected in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
