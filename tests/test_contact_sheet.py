"""The contact sheet PNG: one labelled cell per distinct picture, and a chunk with every cell's settings."""

import numpy as np
import pytest
from PIL import Image

from sketchpad.core.contact_sheet import EMPTY, NOT_RUN, SHEET_KEY, CellPicture, read_sheet, render_sheet, save_sheet
from sketchpad.core.errors import SketchpadError
from sketchpad.core.params import GenerationParams
from sketchpad.core.storage import ResultInfo, read_embedded_sketch, read_png_parameters, save_png
from sketchpad.core.sweep import DENOISE, plan_sweep

BASE = GenerationParams("a cat", steps=4, seed=5, scheduler="euler")


def picture(seed: int, size=(64, 48)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def finished(plan, cells=None):
    cells = plan.cells if cells is None else cells
    return {cell: CellPicture(picture(i), ResultInfo(cell.params, 64, 48, "tiny", "euler"), f"{cell.name}.png")
            for i, cell in enumerate(cells)}


def test_one_labelled_cell_per_distinct_picture_each_at_its_box(tmp_path):
    # 0.75 and 0.8 run the same steps at 4 steps; denoise 0 is the sketch at every seed
    plan = plan_sweep(BASE, DENOISE, (0.75, 0.8, 0.3, 0.0), batch=2)
    pictures = finished(plan)
    path = save_sheet(tmp_path / "sheet.png", plan, pictures, sketch=picture(99))
    sheet = read_sheet(path)
    assert len(sheet.cells) == len(plan.cells) == 5
    assert [cell.label for cell in sheet.cells] == [cell.label for cell in plan.cells]
    assert sheet.cells[0].label == "seed 5 · 0.75, 0.80 · runs steps 2–5 of 5"
    assert (sheet.axis, sheet.values, sheet.seeds) == (DENOISE, (0.75, 0.8, 0.3, 0.0), (5, 6))
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    for recorded, cell in zip(sheet.cells, plan.cells):
        x, y, w, h = recorded.box
        assert np.array_equal(pixels[y:y + h, x:x + w], np.asarray(pictures[cell].image))
        assert recorded.info == pictures[cell].info and recorded.file == f"{cell.name}.png"
        assert (recorded.values, recorded.seeds) == (cell.values, cell.seeds)
    assert np.array_equal(np.asarray(read_embedded_sketch(path)), np.asarray(picture(99)))
    assert read_png_parameters(path) is None  # a sheet is not one picture's settings


def test_labels_are_drawn_under_each_picture():
    plan = plan_sweep(BASE, DENOISE, (0.3, 0.6))
    image, boxes = render_sheet(plan, finished(plan))
    pixels = np.asarray(image)
    for box in boxes.values():
        x, y, w, h = box
        under = pixels[y + h + 2:y + h + 30, x:x + w]
        assert (under < 100).any()  # dark ink of the label on the light paper


def test_cells_that_did_not_run_keep_their_place_marked_not_run(tmp_path):
    plan = plan_sweep(BASE, DENOISE, (0.3, 0.6, 0.9))
    path = save_sheet(tmp_path / "sheet.png", plan, finished(plan, plan.cells[:1]))
    sheet = read_sheet(path)
    assert [cell.info is not None for cell in sheet.cells] == [True, False, False]
    assert NOT_RUN not in sheet.cells[1].label  # the record keeps the label; the drawing marks it
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    x, y, w, h = sheet.cells[2].box
    assert (pixels[y:y + h, x:x + w] == EMPTY).all() and (w, h) == (64, 48)  # its place, the size of the others


def test_a_png_without_the_chunk_is_no_sheet_and_a_broken_one_says_so(tmp_path):
    assert read_sheet(save_png(picture(1), tmp_path / "plain.png", {})) is None
    broken = save_png(picture(1), tmp_path / "broken.png", {SHEET_KEY: '{"cells": [{"label": 1}]'})
    with pytest.raises(SketchpadError, match="the contact sheet record in broken.png cannot be read"):
        read_sheet(broken)
