"""The contact sheet on show: a sweep's plan, its finished cells (each an ordinary history entry), the
cells running (one per server making them) with their newest step previews, and how the sweep ended.
Plain data the session changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtGui import QImage

from ..core.picture_key import PictureKey
from ..core.sweep import Cell, SweepPlan
from .history import HistoryEntry
from .session_state import RunStatus


@dataclass
class Running:
    """A cell whose steps are coming in."""

    step: tuple[int, int]  # its step and total, as a person counts them
    preview: QImage  # its newest step preview (null: none yet, or previews off)


@dataclass(eq=False)
class SheetState:
    plan: SweepPlan
    request_id: int  # the worker's sweep request; 0 when nothing had to run (every cell was on show)
    sketch: QImage  # what every cell is made from
    keys: dict[Cell, PictureKey | None]  # each cell's picture, for "is that picture here or on its way"
    done: dict[Cell, HistoryEntry] = field(default_factory=dict)
    status: RunStatus = RunStatus.GENERATING
    running: dict[Cell, Running] = field(default_factory=dict)
    seconds: float = 0.0  # the cells' own time, added up

    @property
    def active(self) -> bool:
        return self.status is RunStatus.GENERATING

    def covers(self, key: PictureKey | None) -> bool:
        """That picture is one of the sheet's, made or on its way."""
        return key is not None and any(own is not None and own.covers(key) for own in self.keys.values())

    def progress(self) -> tuple[int, int]:
        """Steps run so far and in all, over every cell (the sheet's own progress bar)."""
        total = sum(cell.plan.run_steps for cell in self.plan.cells)
        made = sum(cell.plan.run_steps for cell in self.done)
        return made + sum(running.step[0] for running in self.running.values()), total
