"""Masks in core: the request's mask spec, reading mask files, and the crop/feather/paste geometry."""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.masks import (
    blend,
    check_mask_fits,
    extend_picture,
    load_mask,
    mask_from_image,
    plan_inpaint,
    resolve_area,
)
from sketchpad.core.params import GenerationParams, MaskSpec


def ellipse_mask(size, box) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


def noise_picture(size, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def full_feather(mask: Image.Image, blur: int) -> np.ndarray:
    """The feather computed the plain way, over the whole picture."""
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask)


def placed(plan) -> np.ndarray:
    """The plan's feather placed in a picture-sized array."""
    width, height = plan.picture_size
    whole = np.zeros((height, width), np.uint8)
    left, top, right, bottom = plan.box
    whole[top:bottom, left:right] = plan.feather
    return whole


# the shapes: small and inside, touching one edge, a corner, two opposite edges, thin lines
SHAPES = [
    ((100, 77), (30, 20, 60, 50)),
    ((100, 77), (-10, 30, 20, 60)),
    ((100, 77), (80, 60, 120, 90)),
    ((90, 130), (-5, 50, 95, 70)),
    ((512, 384), (200, 100, 203, 300)),
    ((333, 517), (10, 10, 300, 500)),
]


# ---- the spec in the request ---------------------------------------------------------------
def test_a_spec_is_compared_and_hashed_by_its_pixels_digest():
    mask = ellipse_mask((64, 48), (10, 10, 30, 30))
    one, two = MaskSpec.from_image(mask), MaskSpec.from_image(mask.copy())
    assert one == two and hash(one) == hash(two) and one.pixels is not two.pixels
    other = MaskSpec.from_image(ellipse_mask((64, 48), (10, 10, 31, 30)))
    assert other != one
    assert one.replace(blur=0) != one and one.replace(blur=0).digest == one.digest
    request = GenerationParams("x", mask=one)
    assert {request: 1}[GenerationParams("x", mask=two)] == 1
    assert np.array_equal(np.asarray(one.image()), np.asarray(mask))


@pytest.mark.parametrize("changes,words", [
    (dict(pixels=b"\0" * 12), "empty"),
    (dict(pixels=b"\xff" * 11), "one byte per pixel"),
    (dict(pixels="abc"), "one byte per pixel"),
    (dict(size=(0, 3)), "size"),
    (dict(size=(4, 3.0)), "size"),
    (dict(blur=-1), "blur"),
    (dict(blur=65), "blur"),
    (dict(blur=2.5), "blur"),
    (dict(area="crop"), "inpaint area"),
    (dict(padding=257), "padding"),
])
def test_bad_specs_are_refused_in_one_line(changes, words):
    spec = MaskSpec(**{**dict(pixels=b"\xff" * 12, size=(4, 3)), **changes})
    with pytest.raises(SketchpadError, match=words) as caught:
        GenerationParams("x", mask=spec).validated()
    assert caught.value.kind is FailureKind.BAD_INPUT and "\n" not in str(caught.value)


def test_a_mask_must_fit_its_picture():
    check_mask_fits(MaskSpec(b"\xff" * 12, (4, 3)), (4, 3))
    with pytest.raises(SketchpadError, match="4x3 pixels but the picture is 3x4") as caught:
        check_mask_fits(MaskSpec(b"\xff" * 12, (4, 3)), (3, 4))
    assert caught.value.kind is FailureKind.BAD_INPUT


# ---- mask files ----------------------------------------------------------------------------
def test_white_pixels_of_an_opaque_file_are_redone():
    picture = Image.new("RGB", (8, 4), "black")
    picture.putpixel((1, 1), (255, 255, 255))
    picture.putpixel((2, 1), (200, 200, 200))
    picture.putpixel((3, 1), (90, 90, 90))
    mask = np.asarray(mask_from_image(picture))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert (mask[1, 1], mask[1, 2], mask[1, 3]) == (255, 255, 0) and mask.sum() == 2 * 255


def test_opaque_pixels_of_a_transparent_file_are_redone():
    picture = Image.new("RGBA", (8, 4), (255, 255, 255, 0))  # white but transparent: kept
    picture.putpixel((5, 2), (0, 0, 0, 255))  # black but opaque: redone
    mask = np.asarray(mask_from_image(picture))
    assert mask[2, 5] == 255 and mask.sum() == 255


def test_an_alpha_channel_that_is_all_opaque_is_read_by_colour():
    picture = Image.new("RGBA", (8, 4), (0, 0, 0, 255))
    picture.putpixel((0, 0), (255, 255, 255, 255))
    assert np.asarray(mask_from_image(picture)).sum() == 255


def test_unreadable_mask_files_are_one_line_errors(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    for path, words in [(tmp_path / "missing.png", "mask not found"), (tmp_path / "broken.png", "not an image"),
                        (tmp_path, "folder")]:
        with pytest.raises(SketchpadError, match=words) as caught:
            load_mask(path)
        assert "\n" not in str(caught.value)


# ---- feather and plan ----------------------------------------------------------------------
@pytest.mark.parametrize("size,box", SHAPES)
@pytest.mark.parametrize("blur", [0, 1, 4, 16])
def test_the_feather_is_the_whole_mask_blurred_and_lies_inside_the_box(size, box, blur):
    mask = ellipse_mask(size, box)
    for area in ("whole", "masked"):
        plan = plan_inpaint(MaskSpec.from_image(mask, blur=blur, area=area))
        assert np.array_equal(placed(plan), full_feather(mask, blur))
        left, top, right, bottom = plan.box
        assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
        assert all(side % 8 == 0 for side in plan.work_size) and plan.area == area


@pytest.mark.parametrize("size,box", SHAPES)
def test_the_masked_area_is_the_padded_feather_at_native_size_unstretched(size, box):
    mask = ellipse_mask(size, box)
    plan = plan_inpaint(MaskSpec.from_image(mask, blur=4, area="masked", padding=20))
    reach = Image.fromarray(full_feather(mask, 4)).getbbox()
    padded = (max(0, reach[0] - 20), max(0, reach[1] - 20), min(size[0], reach[2] + 20), min(size[1], reach[3] + 20))
    left, top, right, bottom = plan.box
    assert left <= padded[0] and top <= padded[1] and right >= padded[2] and bottom >= padded[3]
    assert max(plan.work_size) == 512
    width, height = right - left, bottom - top
    if width < size[0] and height < size[1]:  # grown freely: the aspect is the work's, to the pixel
        assert abs(width / height - plan.work_size[0] / plan.work_size[1]) <= 1 / min(width, height)


def test_a_small_fix_on_a_large_picture_works_at_native_size():
    mask = Image.new("L", (2048, 2048), 0)
    mask.paste(255, (1000, 700, 1096, 796))  # 96 x 96
    spec = MaskSpec.from_image(mask)
    plan = plan_inpaint(spec)
    assert resolve_area(spec) == plan.area == "masked" and plan.work_size == (512, 512)
    assert plan.box == (958, 658, 1138, 838)  # the feather (blur 4 reaches 10 px) and 32 px of padding
    assert plan.latent_mask().shape == (64, 64)


def test_auto_works_on_the_whole_picture_once_the_mask_covers_half_of_it():
    below = Image.new("L", (100, 100), 0)
    below.paste(255, (0, 0, 49, 100))
    at = Image.new("L", (100, 100), 0)
    at.paste(255, (0, 0, 50, 100))
    assert resolve_area(MaskSpec.from_image(below)) == "masked"
    assert resolve_area(MaskSpec.from_image(at)) == "whole"
    assert resolve_area(MaskSpec.from_image(below, area="whole")) == "whole"
    assert plan_inpaint(MaskSpec.from_image(at)).area == "whole"


def test_the_whole_area_works_at_the_size_a_plain_run_would():
    plan = plan_inpaint(MaskSpec.from_image(ellipse_mask((100, 77), (10, 10, 50, 50)), area="whole"))
    assert plan.box == (0, 0, 100, 77) and plan.work_size == (96, 80)
    picture = noise_picture((100, 77))
    from sketchpad.core.images import prepare_sketch

    assert np.array_equal(np.asarray(plan.work_picture(picture)), np.asarray(prepare_sketch(picture)))


def test_a_mask_the_blur_wipes_out_is_refused():
    mask = Image.new("L", (64, 64), 0)
    mask.putpixel((30, 30), 255)
    with pytest.raises(SketchpadError, match="too faint or thin"):
        plan_inpaint(MaskSpec.from_image(mask, blur=16))
    assert plan_inpaint(MaskSpec.from_image(mask, blur=0)).feather.sum() == 255


# ---- paste ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size,box", SHAPES)
@pytest.mark.parametrize("blur", [0, 3])
def test_paste_leaves_every_pixel_outside_the_feather_as_it_was(size, box, blur):
    picture = noise_picture(size, 1)
    mask = ellipse_mask(size, box)
    for area in ("whole", "masked"):
        plan = plan_inpaint(MaskSpec.from_image(mask, blur=blur, area=area))
        generated = noise_picture(plan.work_size, 2)
        out = plan.paste(picture, generated)
        assert out.size == picture.size and out.mode == "RGB"
        feather = full_feather(mask, blur)
        assert np.array_equal(np.asarray(out)[feather == 0], np.asarray(picture)[feather == 0])
        assert np.any(np.asarray(out)[feather > 64] != np.asarray(picture)[feather > 64])


def test_where_the_feather_is_full_the_generated_picture_shows_as_it_is():
    picture = noise_picture((64, 48), 1)
    plan = plan_inpaint(MaskSpec.from_image(Image.new("L", (64, 48), 255), blur=0, area="whole"))
    generated = noise_picture((64, 48), 2)
    assert np.array_equal(np.asarray(plan.paste(picture, generated)), np.asarray(generated))


def test_blend_ends_are_exact_and_the_middle_is_between():
    under = np.array([[[0, 100, 255]]], np.uint8)
    over = np.array([[[255, 50, 0]]], np.uint8)
    assert np.array_equal(blend(under, over, np.array([[0]], np.uint8)), under)
    assert np.array_equal(blend(under, over, np.array([[255]], np.uint8)), over)
    assert blend(under, over, np.array([[128]], np.uint8)).tolist() == [[[128, 75, 127]]]


def test_the_latent_mask_covers_the_mask_and_all_the_feather_mostly_redoes():
    mask = ellipse_mask((100, 77), (13, 21, 47, 59))
    for area in ("whole", "masked"):
        plan = plan_inpaint(MaskSpec.from_image(mask, blur=3, area=area))
        assert np.array_equal(plan.redo, (plan.feather >= 128) | (np.asarray(mask.crop(plan.box)) >= 128))
        cells = plan.latent_mask()
        assert cells.shape == (plan.work_size[1] // 8, plan.work_size[0] // 8)
        assert np.all(np.repeat(np.repeat(cells, 8, 0), 8, 1)[plan.work_redo()])
        assert np.all(np.repeat(np.repeat(cells, 8, 0), 8, 1)[np.asarray(plan.work_mask()) >= 128])
        assert not cells.all() and cells.any()


@pytest.mark.parametrize("area", ["whole", "masked"])
def test_a_thin_line_is_redone_even_where_the_blur_leaves_it_faint(area):
    mask = Image.new("L", (2048, 1024), 0)
    mask.paste(255, (1000, 10, 1003, 1000))  # 3 px wide: blurred, it peaks below half
    plan = plan_inpaint(MaskSpec.from_image(mask, blur=3, area=area))
    assert plan.feather.max() < 128
    cells = plan.latent_mask()
    scale = plan.work_size[1] / plan.box_size[1]  # 1/2 whole, about 1/4 masked
    first, last = ((row - plan.box[1]) * scale / 8 for row in (10, 1000))
    assert cells.any(axis=1)[math.ceil(first):math.floor(last)].all()  # every row of cells along the line


def test_previews_show_the_whole_picture_with_the_work_pasted_in():
    picture = noise_picture((400, 300), 1)
    mask = ellipse_mask((400, 300), (100, 100, 140, 140))
    plan = plan_inpaint(MaskSpec.from_image(mask, area="masked"))
    paste = plan.preview_paster(picture)
    work_w, work_h = plan.work_size
    small = paste(np.zeros((work_h // 8, work_w // 8, 3), np.uint8))  # a latent2rgb preview
    scale = (work_w // 8) / plan.box_size[0]
    assert small.shape == (round(300 * scale), round(400 * scale), 3)
    full = paste(np.zeros((work_h, work_w, 3), np.uint8))  # a decoded preview: never above the picture's size
    assert full.shape == (300, 400, 3)
    feather = full_feather(mask, 4)
    assert np.array_equal(full[feather == 0], np.asarray(picture)[feather == 0])
    assert np.all(full[feather == 255] == 0)


# ---- outpainting ---------------------------------------------------------------------------
def test_extending_grows_the_picture_masks_the_new_area_and_fills_it_from_the_edges():
    picture = Image.new("RGB", (40, 30), (200, 30, 30))
    picture.paste((30, 30, 200), (20, 0, 40, 30))  # left half red, right half blue
    old_mask = Image.new("L", (40, 30), 0)
    old_mask.putpixel((5, 5), 255)
    extended, mask = extend_picture(picture, old_mask, left=16, top=0, right=24, bottom=8)
    assert extended.size == mask.size == (80, 38)
    pixels, masked = np.asarray(extended), np.asarray(mask)
    assert np.array_equal(pixels[0:30, 16:56], np.asarray(picture))
    assert masked[5, 21] == 255 and masked[0:30, 16:56].sum() == 255
    assert (masked[:, :16] == 255).all() and (masked[:, 56:] == 255).all() and (masked[30:] == 255).all()
    left, right = pixels[10, 2], pixels[10, 77]
    assert left[0] > 150 and left[2] < 80 and right[2] > 150 and right[0] < 80


def test_extending_without_a_mask_masks_only_the_new_area():
    extended, mask = extend_picture(Image.new("RGB", (10, 10), "white"), None, top=6)
    assert extended.size == (10, 16) and np.asarray(mask)[:6].min() == 255 and np.asarray(mask)[6:].max() == 0
    assert np.asarray(extended).min() == 255


@pytest.mark.parametrize("margins,words", [(dict(left=-1), "0 or more"), (dict(top=2.5), "whole numbers"),
                                          (dict(right=5000), "largest")])
def test_impossible_extensions_are_refused(margins, words):
    with pytest.raises(SketchpadError, match=words):
        extend_picture(Image.new("RGB", (10, 10)), None, **margins)
