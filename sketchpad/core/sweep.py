"""Several runs from one request: which values and seeds run, which of them make the same picture,
and how each cell of the contact sheet is placed and labelled. Pure: a plan is a function of the
request and what is asked for; the window and the command line run its cells as ordinary requests.

A sweep varies one knob, denoise or start-at-step, at one seed; a batch varies the seed (s, s+1, …:
AUTOMATIC1111's batch count); together they make a grid, seeds down and values across. Values that
run exactly the same steps make the same picture (core.picture_key): with 50 steps, denoise 0.834 and
0.843 both run the last 50 steps of a 59-step schedule, so they are one cell that names them both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import SketchpadError
from .params import MAX_SEED, GenerationParams, _is_number
from .picture_key import picture_key
from .schedule import StepPlan, plan_steps

DENOISE, START = "denoise", "start"
AXES = (DENOISE, START)
DEFAULT_DENOISE = (0.2, 0.4, 0.6, 0.8, 1.0)
# the seed article's comparison: 20 steps started at 0, 1, 9 and 20 (scaled to other step counts)
SEED_ARTICLE_STARTS, SEED_ARTICLE_STEPS = (0, 1, 9, 20), 20
MAX_CELLS = 100  # values x seeds; AUTOMATIC1111's batch count stops at 100 too


@dataclass(frozen=True)
class Cell:
    """One distinct picture of a sweep: the request that makes it and every value and seed it stands for."""

    params: GenerationParams  # what runs: the request at the first of its values and seeds
    values: tuple  # the knob's values that make this picture (empty without an axis)
    seeds: tuple[int, ...]  # several only where the seed changes nothing (the sketch itself)
    plan: StepPlan
    row: int  # its place on the sheet: seeds down, values across
    column: int
    label: str  # e.g. "0.40 · runs steps 31–50 of 50"; with a batch, "seed 7 · " before it
    name: str  # a file name stem, unique within the sweep: "denoise-0.40_seed-7"


@dataclass(frozen=True)
class SweepPlan:
    params: GenerationParams  # the request it was planned from, its seed concrete
    axis: str | None  # DENOISE, START, or None for a batch of seeds alone
    values: tuple  # as asked for, in order (repeats and merged values included)
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]  # in run order: row by row
    rows: int
    columns: int

    def cell_for(self, value=None, seed: int | None = None) -> Cell:
        """The cell that shows `value` at `seed` (defaults: the first value, the first seed)."""
        value = self.values[0] if value is None and self.values else value
        seed = self.seeds[0] if seed is None else seed
        for cell in self.cells:
            if seed in cell.seeds and (self.axis is None or value in cell.values):
                return cell
        raise KeyError((value, seed))

    @property
    def merged(self) -> tuple[Cell, ...]:
        """The cells that stand for several values: what to tell the person is computed once."""
        return tuple(cell for cell in self.cells if len(cell.values) > 1)


def default_values(axis: str, steps: int) -> tuple:
    """The values a sweep starts with: five denoises from 0.2 to 1.0, or the seed article's start
    steps 0, 1, 9 and 20 of 20 at the same places in a schedule of `steps`."""
    if axis == DENOISE:
        return DEFAULT_DENOISE
    if axis == START:
        return tuple(sorted({round(k * steps / SEED_ARTICLE_STEPS) for k in SEED_ARTICLE_STARTS}))
    raise SketchpadError(_unknown_axis(axis))


def parse_values(axis: str, text: str) -> tuple:
    """Comma-separated values for `axis` ("0.3, 0.5, 0.7"), as typed; ranges are checked by plan_sweep."""
    if axis not in AXES:
        raise SketchpadError(_unknown_axis(axis))
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise SketchpadError(f"the {axis} sweep has no values; give some, e.g. {_example(axis)}")
    if not all(items):
        raise SketchpadError(f"the {axis} sweep has an empty value in {text!r}; separate values by single commas")
    try:
        return tuple(float(item) if axis == DENOISE else int(item) for item in items)
    except ValueError as error:
        kind = "numbers" if axis == DENOISE else "whole numbers"
        raise SketchpadError(f"{axis} sweep values must be {kind}, e.g. {_example(axis)} (got {text!r})") from error


def parse_sweep(text: str) -> tuple[str, tuple | None]:
    """'denoise=0.3,0.5,0.7', 'start=0,1,9,20', or an axis alone for its default values (None)."""
    name, equals, listed = text.partition("=")
    axis = name.strip().lower()
    if axis not in AXES:
        raise SketchpadError(_unknown_axis(name.strip()))
    return axis, parse_values(axis, listed) if equals else None


def plan_sweep(params: GenerationParams, axis: str | None = None, values=None, batch: int = 1) -> SweepPlan:
    """The cells for `params` swept over `values` of `axis` (its defaults when None) and `batch` seeds
    from params.seed on (a random seed is drawn once: every cell shares it). Raises SketchpadError,
    naming the problem, for an unknown axis, no or out-of-range values, or too many cells."""
    params = params.validated().with_concrete_seed()
    if axis is None:
        if values:
            raise SketchpadError("sweep values need an axis: denoise or start")
        values = ()
    else:
        values = default_values(axis, params.steps) if values is None else tuple(values)
        _check_values(axis, values, params.steps)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SketchpadError(f"the batch count must be a whole number of at least 1 (got {batch!r})")
    if max(len(values), 1) * batch > MAX_CELLS:
        raise SketchpadError(f"{max(len(values), 1) * batch} pictures asked for; a sweep makes at most {MAX_CELLS}")
    seeds = tuple((params.seed + i) % (MAX_SEED + 1) for i in range(batch))
    places = [(row, index) for row in range(batch) for index in range(max(len(values), 1))]

    def request(row: int, index: int) -> GenerationParams:
        knob = {} if axis is None else _knob(axis, values[index])
        return params.replace(seed=seeds[row], **knob)

    # one picture per distinct key, in the order first met; its places are every (seed, value) it covers
    groups: dict[object, list[tuple[int, int]]] = {}
    for place in places:
        groups.setdefault(picture_key(request(*place), "", ""), []).append(place)
    columns = _value_columns(axis, values, request)
    rows, width = (batch, max(columns.values(), default=0) + 1) if axis else _square(batch)
    cells = []
    for group in groups.values():
        row, index = group[0]
        cell_values = _unique(values[i] for _, i in group) if axis else ()
        cell_seeds = _unique(seeds[r] for r, _ in group)
        place = (row, columns[index]) if axis else divmod(row, width)
        made = request(row, index)
        cells.append(Cell(made, cell_values, cell_seeds, plan_steps(made), *place,
                          _label(axis, cell_values, cell_seeds, batch, plan_steps(made)),
                          _name(axis, cell_values, cell_seeds[0], made.steps)))
    return SweepPlan(params, axis, values, seeds, tuple(cells), rows, width)


def steps_text(plan: StepPlan) -> str:
    """What a plan runs, in words: 'runs steps 31–50 of 50', 'the sketch itself'."""
    if plan.run_steps == 0:
        return "the sketch itself"
    text = f"runs steps {plan.first_step + 1}–{plan.first_step + plan.run_steps} of {plan.schedule_steps}"
    return text + " from noise" if plan.from_pure_noise else text


def value_text(axis: str, value) -> str:
    """A value as labels and file names show it: '0.40', '0.834', 'start 9'."""
    if axis == START:
        return f"start {value}"
    short = f"{value:.2f}"
    return short if float(short) == value else repr(float(value))


def _check_values(axis: str, values: tuple, steps: int) -> None:
    if axis not in AXES:
        raise SketchpadError(_unknown_axis(axis))
    if not values:
        raise SketchpadError(f"the {axis} sweep has no values; give some, e.g. {_example(axis)}")
    for value in values:
        if axis == DENOISE and not (_is_number(value) and 0.0 <= value <= 1.0):
            raise SketchpadError(f"denoise sweep values must lie from 0 to 1 (got {value!r})")
        if axis == START and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= steps):
            raise SketchpadError(f"start sweep values must be whole numbers from 0 to steps ({steps}) (got {value!r})")


def _knob(axis: str, value) -> dict:
    return {"strength": float(value), "start_at_step": None} if axis == DENOISE else {
        "strength": None, "start_at_step": value}


def _value_columns(axis, values, request) -> dict[int, int]:
    """Each value's column: values that make the same picture share one. Which values merge depends
    on their steps alone, so the first seed's row decides for every row."""
    keys: dict[object, int] = {}
    return {index: keys.setdefault(picture_key(request(0, index), "", ""), len(keys)) for index in range(len(values))}


def _square(count: int) -> tuple[int, int]:
    """Rows and columns for a batch alone: as square as the count allows, wider than tall."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def _label(axis, values: tuple, seeds: tuple[int, ...], batch: int, plan: StepPlan) -> str:
    parts = []
    if batch > 1:
        parts.append("every seed" if len(seeds) > 1 else f"seed {seeds[0]}")
    if axis is not None:
        parts.append(", ".join(value_text(axis, value) for value in values))
    parts.append(steps_text(plan))
    return " · ".join(parts)


def _name(axis, values: tuple, seed: int, steps: int) -> str:
    if axis is None:
        return f"seed-{seed}"
    value = values[0]
    shown = f"{value:0{len(str(steps))}d}" if axis == START else value_text(axis, value)
    return f"{axis}-{shown}_seed-{seed}"


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


def _unknown_axis(name) -> str:
    return f"unknown sweep axis {name!r}; sweep denoise or start, e.g. denoise=0.3,0.5,0.7 or start=0,1,9,20"


def _example(axis: str) -> str:
    return "denoise=0.3,0.5,0.7" if axis == DENOISE else "start=0,1,9,20"
