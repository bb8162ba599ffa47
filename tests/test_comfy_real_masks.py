"""Opt-in: masks on a real ComfyUI server. Collected only when SKETCHPAD_COMFY_URL names one
(SKETCHPAD_COMFY_MODEL picks the regular checkpoint; default: the server's first without "inpaint" in
its name). The inpainting tests need an inpainting checkpoint on the server, named with "inpaint"
(tests/comfy_recordings/make_server_checkpoint.py --inpainting makes a tiny random one). See the README."""

from __future__ import annotations

import numpy as np
import pytest

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.backends.comfy.inpaint import is_inpainting_checkpoint
from sketchpad.core.params import MaskSpec
from tests.test_comfy_masks import (assert_an_all_white_mask_is_the_run_without_a_mask, assert_only_the_mask_changed,
                                    params)
from tests.test_comfy_real import MODEL, URL  # skips this module too where no server is named
from tests.test_inpaint import CASES, ellipse_mask, noise_picture


@pytest.fixture(scope="module")
def backend():
    client = ComfyBackend(URL, MODEL)
    if MODEL is None:
        regular = [name for name in client.checkpoints if not is_inpainting_checkpoint(name)]
        client.close()
        client = ComfyBackend(URL, regular[0])
    yield client
    client.close()


@pytest.fixture(scope="module")
def inpainting_backend(backend):
    names = [name for name in backend.checkpoints if is_inpainting_checkpoint(name)]
    if not names:
        pytest.fail("put an inpainting checkpoint (its name saying 'inpaint') into the server's models/checkpoints")
    client = ComfyBackend(URL, names[0])
    yield client
    client.close()


# the whole-picture cases are small; one masked case runs at 512 pixels, the others would only repeat it
@pytest.mark.parametrize("size,box,blur,area", [case for case in CASES if case[3] == "whole"] + [CASES[4]])
def test_outside_the_mask_and_its_feather_the_output_is_the_input(backend, size, box, blur, area):
    picture = noise_picture(size)
    mask = ellipse_mask(size, box)
    result = backend.generate(params(MaskSpec.from_image(mask, blur=blur, area=area)), picture)
    assert_only_the_mask_changed(result, picture, mask, blur)


def test_from_noise_under_the_mask_too(backend):
    picture, mask = noise_picture((100, 77)), ellipse_mask((100, 77), (30, 20, 60, 50))
    result = backend.generate(params(MaskSpec.from_image(mask, area="whole"), strength=1.0), picture)
    assert_only_the_mask_changed(result, picture, mask, 4)


def test_an_all_white_mask_over_the_whole_picture_unblurred_is_the_run_without_a_mask(backend):
    assert_an_all_white_mask_is_the_run_without_a_mask(backend)


def test_a_dial_turn_uploads_nothing_and_previews_show_the_whole_picture(backend):
    picture = noise_picture((120, 80), seed=2)
    spec = MaskSpec.from_image(ellipse_mask((120, 80), (10, 10, 50, 50)), area="whole")
    backend.generate(params(spec, strength=0.4), picture)
    uploads, steps = backend.uploads, []
    backend.generate(params(spec, strength=0.7), picture, on_step=steps.append)
    assert backend.uploads == uploads
    assert [(s.step, s.total) for s in steps] == [(1, 3), (2, 3), (3, 3)]
    assert all(abs(s.image.shape[1] / s.image.shape[0] - 1.5) < 0.05 for s in steps)


def test_on_an_inpainting_checkpoint_the_outside_is_untouched(backend, inpainting_backend):
    picture, mask = noise_picture((100, 77)), ellipse_mask((100, 77), (30, 20, 60, 50))
    spec = MaskSpec.from_image(mask, area="whole")
    for strength in (0.8, 1.0):
        result = inpainting_backend.generate(params(spec, strength=strength), picture)
        assert_only_the_mask_changed(result, picture, mask, 4)
    regular, inpainting = backend.generate(params(spec), picture), inpainting_backend.generate(params(spec), picture)
    assert not np.array_equal(np.asarray(regular.image), np.asarray(inpainting.image))
