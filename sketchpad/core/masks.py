"""Masks: which part of a picture is redone, where the work happens, and putting the result back.

Pure numpy and PIL, shared by every backend. `plan_inpaint` decides from a MaskSpec alone the part
of the picture a backend works on (`box`) and the size it works at (`work_size`, multiples of 8). A
backend only ever sees `work_picture(picture)` and `work_mask()`, and hands back a picture of
`work_size`, which `paste` puts back. Outside the feather the pasted picture is the input, pixel for
pixel, whatever the sizes (multiples of 8 or not).

- The feather is the mask blurred by a Gaussian of radius `blur` (AUTOMATIC1111's "Mask blur"). It
  blends the new picture in, and nothing outside it changes.
- Area "masked" (AUTOMATIC1111's "Only masked", Krita's default): the feather's bounding box plus
  `padding`, grown to the working aspect and scaled so that its long side is the model's native
  size. A small fix on a large picture then costs what a native-size run costs, and gains detail
  instead of losing it. "auto" chooses it while the mask's bounding box covers less than half of
  the picture, and "whole" otherwise.
- Area "whole": the whole picture at the nearest multiple-of-8 size, as a run without a mask.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from .backend import OnStep, StepPreview
from .errors import SketchpadError
from .images import LATENT_FACTOR, MAX_SIDE, SD15_LONG_SIDE, fit_long_side, load_image, sketch_size, to_rgb_picture
from .params import MaskSpec

AUTO_WHOLE_FROM = 0.5  # "auto" works on the whole picture once the mask's bounding box covers this share
Box = tuple[int, int, int, int]  # left, top, right, bottom; right and bottom exclusive, as in PIL


def mask_from_image(image: Image.Image) -> Image.Image:
    """A mask file's picture as a mask ("L", 0 or 255): where it has transparency its opaque pixels,
    else its white ones (at least half bright)."""
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:  # an opaque picture saved with an alpha channel is read by its colours
            return alpha.point(_half_bright)
    return to_rgb_picture(image).convert("L").point(_half_bright)


def _half_bright(value: int) -> int:
    return 255 if value >= 128 else 0


def load_mask(path: str | os.PathLike) -> Image.Image:
    """Read a mask file (see `mask_from_image`), or raise SketchpadError saying why it cannot be used."""
    return load_image(path, mask_from_image, what="mask")


def check_mask_fits(spec: MaskSpec, size: tuple[int, int]) -> None:
    """A mask must be the size of the picture it masks."""
    if tuple(spec.size) != tuple(size):
        raise SketchpadError(
            f"the mask is {spec.size[0]}x{spec.size[1]} pixels but the picture is {size[0]}x{size[1]}; "
            "give a mask of the picture's size"
        )


def resolve_area(spec: MaskSpec) -> str:
    """"whole" or "masked": the spec's own area, or the one "auto" chooses for its mask."""
    if spec.area != "auto":
        return spec.area
    left, top, right, bottom = spec.image().getbbox() or (0, 0, 0, 0)
    width, height = spec.size
    return "masked" if (right - left) * (bottom - top) < AUTO_WHOLE_FROM * width * height else "whole"


@dataclass(frozen=True, eq=False)
class InpaintPlan:
    """Where a masked run works and how its result goes back. Made by `plan_inpaint`."""

    picture_size: tuple[int, int]
    area: str  # "whole" or "masked" ("auto" resolved)
    box: Box  # the part of the picture the backend works on; outside it nothing changes
    work_size: tuple[int, int]  # the size the backend works at: multiples of 8
    feather: np.ndarray  # the blurred mask over `box`: uint8, (box height, box width); 0 keeps a pixel
    redo: np.ndarray  # bool over `box`: what the model must paint anew (see `work_redo`)

    @property
    def box_size(self) -> tuple[int, int]:
        left, top, right, bottom = self.box
        return right - left, bottom - top

    def work_picture(self, picture: Image.Image) -> Image.Image:
        """The part of `picture` the backend works on, at `work_size` (RGB)."""
        crop = self._rgb(picture).crop(self.box)
        return crop if crop.size == self.work_size else crop.resize(self.work_size, Image.Resampling.LANCZOS)

    def work_mask(self) -> Image.Image:
        """The feathered mask at `work_size` ("L"; 255 redoes a pixel)."""
        mask = Image.fromarray(self.feather)
        return mask if mask.size == self.work_size else mask.resize(self.work_size, Image.Resampling.BILINEAR)

    def work_redo(self) -> np.ndarray:
        """Which pixels of the work picture the model paints anew (bool, work height x width): the
        mask itself and all the feather redoes at least half of, so that new content lies under the
        whole mask, however thin, and the feather blends it in. Any pixel touched counts, so a thin
        line survives scaling down."""
        redo = Image.fromarray(self.redo.astype(np.uint8) * 255)
        if redo.size != self.work_size:
            redo = redo.resize(self.work_size, Image.Resampling.BILINEAR)
        return np.asarray(redo) > 0

    def latent_mask(self, factor: int = LATENT_FACTOR) -> np.ndarray:
        """Which latent cells are redone (bool, work height/factor x work width/factor): each
        holding a pixel of `work_redo`."""
        redo = self.work_redo()
        rows, columns = redo.shape
        return redo.reshape(rows // factor, factor, columns // factor, factor).any(axis=(1, 3))

    def paste(self, picture: Image.Image, generated: Image.Image) -> Image.Image:
        """`generated` (at `work_size`) put back into `picture` through the feather (RGB, the
        picture's size). Where the feather is 0 the result is `picture`, pixel for pixel."""
        if generated.size != self.work_size:
            raise ValueError(f"the generated picture is {generated.size}, not the work size {self.work_size}")
        patch = generated.convert("RGB")
        if patch.size != self.box_size:
            patch = patch.resize(self.box_size, Image.Resampling.LANCZOS)
        picture = self._rgb(picture)
        region = np.asarray(picture.crop(self.box))
        out = picture.copy()  # only the box is converted and blended: a large picture costs little more
        out.paste(Image.fromarray(blend(region, np.asarray(patch), self.feather)), self.box[:2])
        return out

    def preview_paster(self, picture: Image.Image) -> Callable[[np.ndarray], np.ndarray]:
        """For one run's step previews (RGB arrays of the work picture at any scale): the whole
        picture at the preview's scale (at most 1) with the preview blended in through the feather.
        The scaled picture is made once per preview size."""
        frames: dict[tuple[int, int], tuple[np.ndarray, Box, np.ndarray]] = {}

        def paste(preview: np.ndarray) -> np.ndarray:
            shape = preview.shape[:2]
            if shape not in frames:
                frames.clear()
                frames[shape] = self._preview_frame(picture, min(1.0, shape[1] / self.box_size[0]))
            base, (left, top, right, bottom), alpha = frames[shape]
            patch = np.asarray(Image.fromarray(preview).resize((right - left, bottom - top), Image.Resampling.BILINEAR))
            out = base.copy()
            out[top:bottom, left:right] = blend(out[top:bottom, left:right], patch, alpha)
            return out

        return paste

    def _preview_frame(self, picture: Image.Image, scale: float) -> tuple[np.ndarray, Box, np.ndarray]:
        width, height = self.picture_size
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        left, top, right, bottom = self.box
        start = (min(math.floor(left * scale), size[0] - 1), min(math.floor(top * scale), size[1] - 1))
        end = (max(start[0] + 1, min(math.ceil(right * scale), size[0])),
               max(start[1] + 1, min(math.ceil(bottom * scale), size[1])))
        box = (*start, *end)
        rgb = self._rgb(picture)
        base = np.array(rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BILINEAR))
        alpha = Image.fromarray(self.feather).resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.BILINEAR)
        return base, box, np.asarray(alpha)

    def _rgb(self, picture: Image.Image) -> Image.Image:
        if picture.size != self.picture_size:
            raise SketchpadError(
                f"the picture is {picture.size[0]}x{picture.size[1]} but its mask {self.picture_size[0]}x"
                f"{self.picture_size[1]} pixels; give a mask of the picture's size"
            )
        return picture if picture.mode == "RGB" else picture.convert("RGB")


def blend(under: np.ndarray, over: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """under * (1 - a) + over * a with a = alpha / 255, rounded; alpha 0 gives `under` exactly and
    255 gives `over` exactly. `under`, `over`: (h, w, 3) uint8; `alpha`: (h, w) uint8."""
    a = alpha[..., None].astype(np.uint32)
    mixed = under.astype(np.uint32) * (255 - a) + over.astype(np.uint32) * a + 127
    return (mixed // 255).astype(np.uint8)


def plan_inpaint(spec: MaskSpec, long_side: int = SD15_LONG_SIDE) -> InpaintPlan:
    """The plan for a mask: its feather, the part of the picture to work on and the size to work at
    (`long_side`: the model's native size, for the "masked" area)."""
    spec.validated()
    mask = spec.image()
    reach, feather_window, window = _feather(mask, spec.blur)
    if reach is None:
        raise SketchpadError(
            f"the mask is too faint or thin for a blur of {spec.blur} px: nothing would be redone; "
            "paint it in white, or lower the blur"
        )
    width, height = spec.size
    if resolve_area(spec) == "whole":
        area, box, work_size = "whole", (0, 0, width, height), sketch_size(width, height)
    else:
        area = "masked"
        box, work_size = _masked_box(_grow(reach, spec.padding, spec.size), spec.size, long_side)
    # the feather is 0 outside `reach`, which lies inside both the blurred window and the box
    feather = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
    left, top, right, bottom = reach
    feather[top - box[1]:bottom - box[1], left - box[0]:right - box[0]] = \
        feather_window[top - window[1]:bottom - window[1], left - window[0]:right - window[0]]
    redo = (feather >= 128) | (np.asarray(mask.crop(box)) >= 128)
    return InpaintPlan(spec.size, area, box, work_size, feather, redo)


def _feather(mask: Image.Image, blur: int) -> tuple[Box | None, np.ndarray, Box]:
    """The blurred mask's bounding box (None: all 0), and the blurred mask over a window around the
    mask, a margin wider than the blur reaches (PIL's Gaussian reaches about 2.6 radii), so a large
    picture costs no more to feather than a small one."""
    window = _grow(mask.getbbox() or (0, 0, *mask.size), 3 * blur + 2 if blur else 0, mask.size)
    blurred = mask.crop(window)
    if blur:
        blurred = blurred.filter(ImageFilter.GaussianBlur(blur))
    reach = blurred.getbbox()
    if reach is not None:
        reach = (reach[0] + window[0], reach[1] + window[1], reach[2] + window[0], reach[3] + window[1])
    return reach, np.asarray(blurred), window


def _grow(box: Box, margin: int, size: tuple[int, int]) -> Box:
    left, top, right, bottom = box
    return max(0, left - margin), max(0, top - margin), min(size[0], right + margin), min(size[1], bottom + margin)


def _masked_box(padded: Box, size: tuple[int, int], long_side: int) -> tuple[Box, tuple[int, int]]:
    """`padded` grown to the aspect of the size it is worked at, so that nothing is stretched
    (AUTOMATIC1111's expand_crop_region), and that size: `long_side` on the long side."""
    left, top, right, bottom = padded
    work_size = fit_long_side((right - left, bottom - top), long_side)
    aspect = work_size[0] / work_size[1]
    width = max(right - left, min(size[0], round((bottom - top) * aspect)))
    height = max(bottom - top, min(size[1], round((right - left) / aspect)))
    left, right = _widen(left, right, width, size[0])
    top, bottom = _widen(top, bottom, height, size[1])
    return (left, top, right, bottom), work_size


def _widen(start: int, end: int, length: int, limit: int) -> tuple[int, int]:
    """[start, end) grown to `length` around its middle, moved to lie within [0, limit)."""
    start = min(max(start - (length - (end - start)) // 2, 0), limit - length)
    return start, start + length


def extend_picture(picture: Image.Image, mask: Image.Image | None,
                   left: int = 0, top: int = 0, right: int = 0, bottom: int = 0) -> tuple[Image.Image, Image.Image]:
    """Outpainting: the picture grown by the given pixels on each side, and its mask. The new area is
    masked (255) and pre-filled from the picture's edge colours (each new pixel the colour of the
    nearest edge pixel, smoothed), so that a high denoise paints it in; the old area keeps its
    pixels exactly, and its mask (`None`: nothing masked there)."""
    margins = (left, top, right, bottom)
    if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in margins):
        raise SketchpadError(f"a picture is extended by whole numbers of pixels, 0 or more (got {margins!r})")
    width, height = picture.size
    new_size = (width + left + right, height + top + bottom)
    if max(new_size) > MAX_SIDE:
        raise SketchpadError(
            f"extended, the picture would be {new_size[0]}x{new_size[1]}; the largest is {MAX_SIDE}x{MAX_SIDE} pixels"
        )
    if mask is not None and mask.size != picture.size:
        raise SketchpadError(f"the mask is {mask.size[0]}x{mask.size[1]} but the picture {width}x{height} pixels")
    rgb = np.asarray(picture.convert("RGB"))
    filled = Image.fromarray(np.pad(rgb, ((top, bottom), (left, right), (0, 0)), mode="edge"))
    # the copied edge colours run in stripes; a blur as wide as a quarter of the extension evens them out
    radius = max(2, max(margins) // 4)
    extended = filled.filter(ImageFilter.GaussianBlur(radius)) if max(margins) else filled
    extended.paste(picture.convert("RGB"), (left, top))
    new_mask = Image.new("L", new_size, 255)
    new_mask.paste(mask.convert("L") if mask is not None else Image.new("L", picture.size, 0), (left, top))
    return extended, new_mask


def start_masked_run(spec: MaskSpec, picture: Image.Image, on_step: OnStep | None
                     ) -> tuple[Image.Image, InpaintPlan, OnStep | None]:
    """What every backend does first with a masked request: the picture as RGB at its own size (the
    mask must fit it), the plan, and `on_step` (None stays None) turned into one that shows each
    preview of the work picture as the whole picture with the work pasted in."""
    picture = to_rgb_picture(picture)
    check_mask_fits(spec, picture.size)
    plan = plan_inpaint(spec)
    if on_step is None:
        return picture, plan, None
    paste = plan.preview_paster(picture)

    def report(preview: StepPreview) -> None:
        image = None if preview.image is None else paste(preview.image)
        on_step(StepPreview(preview.step, preview.total, image))

    return picture, plan, report
