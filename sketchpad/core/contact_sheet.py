"""A sweep's contact sheet as one PNG: its pictures in the plan's grid, each labelled with its values
and the steps it runs, and a text chunk (SHEET_KEY, JSON) that lists every cell's settings in
AUTOMATIC1111's format and where its picture lies on the sheet. PIL only: no torch, no Qt.

A cell that did not run (the sweep was cancelled) keeps its place and its label, marked "not run";
a place whose picture another cell already shows (the sketch itself, the same at every seed) stays empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .errors import SketchpadError
from .storage import SKETCH, ResultInfo, format_parameters, parse_parameters, read_png_text, save_png
from .sweep import Cell, SweepPlan

SHEET_KEY = "sketchpad-sheet"
SHEET_VERSION = 1
PAPER, INK, EMPTY = (236, 236, 236), (24, 24, 24), (200, 200, 200)
GAP = 8  # between cells and around the sheet
MIN_SLOT = 160  # narrower pictures sit centred in a slot this wide, so their labels still fit
NOT_RUN = "not run"


@dataclass(frozen=True)
class CellPicture:
    """A finished cell: its picture, the settings saved with it, and the file it was saved as ("": none)."""

    image: Image.Image
    info: ResultInfo
    file: str = ""


@dataclass(frozen=True)
class SheetCell:
    """One cell as a sheet's chunk records it."""

    label: str
    values: tuple
    seeds: tuple[int, ...]
    box: tuple[int, int, int, int]  # its picture on the sheet: x, y, width, height
    info: ResultInfo | None  # None: it did not run
    file: str


@dataclass(frozen=True)
class Sheet:
    axis: str | None
    values: tuple
    seeds: tuple[int, ...]
    cells: tuple[SheetCell, ...]


def render_sheet(plan: SweepPlan, pictures: Mapping[Cell, CellPicture]) -> tuple[Image.Image, dict[Cell, tuple]]:
    """The sheet of `plan` with the finished `pictures`, and each cell's picture box (x, y, w, h)."""
    width, height = next((p.image.size for p in pictures.values()), (MIN_SLOT, MIN_SLOT))
    slot = max(width, MIN_SLOT)
    font = ImageFont.load_default(size=max(11, min(28, slot // 16)))
    line = font.getbbox("Ag")[3] + 4
    lines = {cell: _wrap(_label(cell, cell in pictures), font, slot - 4) for cell in plan.cells}
    label_height = line * max(len(each) for each in lines.values()) + GAP // 2
    pitch_x, pitch_y = slot + GAP, height + label_height + GAP
    sheet = Image.new("RGB", (GAP + plan.columns * pitch_x, GAP + plan.rows * pitch_y), PAPER)
    draw = ImageDraw.Draw(sheet)
    boxes = {}
    for cell in plan.cells:
        x, y = GAP + cell.column * pitch_x, GAP + cell.row * pitch_y
        box = (x + (slot - width) // 2, y, width, height)
        boxes[cell] = box
        if cell in pictures:
            sheet.paste(pictures[cell].image.convert("RGB"), box[:2])
        else:
            draw.rectangle((box[0], box[1], box[0] + width - 1, box[1] + height - 1), fill=EMPTY)
        for index, text in enumerate(lines[cell]):
            draw.text((x + 2, y + height + GAP // 2 + index * line), text, fill=INK, font=font)
    return sheet, boxes


def sheet_record(plan: SweepPlan, pictures: Mapping[Cell, CellPicture], boxes: Mapping[Cell, tuple]) -> str:
    """The sheet's chunk: the sweep asked for, and every cell's label, place, file and settings."""
    cells = [{"label": cell.label, "values": list(cell.values), "seeds": list(cell.seeds), "box": list(boxes[cell]),
              "file": pictures[cell].file if cell in pictures else "",
              "parameters": format_parameters(pictures[cell].info) if cell in pictures else None}
             for cell in plan.cells]
    return json.dumps({"version": SHEET_VERSION, "axis": plan.axis, "values": list(plan.values),
                       "seeds": list(plan.seeds), "cells": cells}, ensure_ascii=False)


def save_sheet(path, plan: SweepPlan, pictures: Mapping[Cell, CellPicture], sketch: Image.Image | None = None,
               overwrite: bool = False) -> Path:
    """Write the sheet PNG atomically, its chunk and (unless None) the sketch inside it."""
    image, boxes = render_sheet(plan, pictures)
    return save_png(image, path, {SHEET_KEY: sheet_record(plan, pictures, boxes)}, overwrite=overwrite,
                    embed={SKETCH: sketch} if sketch is not None else None)


def read_sheet(path) -> Sheet | None:
    """The sweep and cells a contact sheet records, or None for a PNG that is no sheet."""
    path = Path(path)
    text = read_png_text(path).get(SHEET_KEY)
    if text is None:
        return None
    try:
        record = json.loads(text)
        cells = tuple(SheetCell(str(c["label"]), tuple(c["values"]), tuple(int(s) for s in c["seeds"]),
                                tuple(int(v) for v in c["box"]),
                                parse_parameters(c["parameters"]) if c["parameters"] is not None else None,
                                str(c["file"])) for c in record["cells"])
        return Sheet(record["axis"], tuple(record["values"]), tuple(int(s) for s in record["seeds"]), cells)
    except (ValueError, KeyError, TypeError, SketchpadError) as error:
        raise SketchpadError(f"the contact sheet record in {path.name} cannot be read ({error})") from error


def _label(cell: Cell, finished: bool) -> str:
    # the bundled font has no en dash
    return (cell.label if finished else f"{cell.label} · {NOT_RUN}").replace("–", "-")


def _wrap(label: str, font, width: int) -> list[str]:
    """The label in lines no wider than `width`: whole parts (between ' · ') where they fit, else words."""
    lines: list[str] = []
    for part in label.split(" · "):
        if lines and font.getlength(f"{lines[-1]} · {part}") <= width:
            lines[-1] = f"{lines[-1]} · {part}"
            continue
        first, *words = part.split(" ")
        lines.append(first)
        for word in words:
            if font.getlength(f"{lines[-1]} {word}") <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
    return lines
