"""Figures, their one-line console form, and BENCHMARKS.md. Pure Python: no torch, no Qt."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """One measured quantity: its repeats, and optionally a ratio to a reference and a target."""

    section: str  # e.g. "Preview cost"
    setup: str  # model, size, steps: what was run
    name: str  # what was measured
    values: list[float]  # one per repeat, in `unit`
    unit: str  # "s", "MB", "B" or "x"
    reference: str = ""  # what the ratio is taken against
    ratio: float | None = None
    target: str = ""  # e.g. "<= 1.03x"
    passed: bool | None = None  # None: reported only
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # p99, max, ... (same unit)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def result(self) -> str:
        return "" if self.passed is None else ("pass" if self.passed else "MISS")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; enough for latency tails."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        if abs(value) >= 1.0:
            return f"{value:.2f} s"
        if abs(value) >= 0.001:
            return f"{value * 1e3:.1f} ms"
        return f"{value * 1e6:.0f} µs"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "MB":
        return f"{value:+.1f} MB" if value < 0 else f"{value:.1f} MB"
    if unit == "B":
        return f"{value / 2**20:.2f} MiB"
    return f"{value:g} {unit}"


def console_line(fig: Figure) -> str:
    parts = [f"[{fig.section}] {fig.setup} | {fig.name}: min {fmt(fig.min, fig.unit)}, median {fmt(fig.median, fig.unit)}"]
    for key, value in fig.extra.items():
        parts.append(f"{key} {fmt(value, fig.unit)}")
    text = ", ".join(parts) + f" (n={len(fig.values)})"
    if fig.ratio is not None:
        text += f" | {fig.ratio:.3f}x {fig.reference}"
    if fig.target:
        text += f" | target {fig.target}: {fig.result or 'reported'}"
    if fig.note:
        text += f" | {fig.note}"
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _stats(fig: Figure) -> str:
    cells = [f"{fmt(fig.min, fig.unit)} / {fmt(fig.median, fig.unit)}"]
    cells += [f"{key} {fmt(value, fig.unit)}" for key, value in fig.extra.items()]
    return "; ".join(cells)


def render_markdown(
    title: str, command: str, machine: list[tuple[str, str]], figures: list[Figure], intro: list[str],
    method: list[str], notes: list[str],
) -> str:
    lines = [f"# {title}", ""]
    lines += intro + ["", f"Command: `{command}`", "", "## Machine and software", "", "| | |", "| --- | --- |"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in machine]

    targeted = [fig for fig in figures if fig.target]
    if targeted:
        lines += ["", "## Targets", "", "| section | setup | figure | median | ratio | target | result |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for fig in targeted:
            ratio = f"{fig.ratio:.3f}x" if fig.ratio is not None else ""
            lines.append(
                f"| {_cell(fig.section)} | {_cell(fig.setup)} | {_cell(fig.name)} | {fmt(fig.median, fig.unit)} "
                f"| {ratio} | {_cell(fig.target)} | {fig.result or 'reported'} |"
            )

    sections: dict[str, list[Figure]] = {}
    for fig in figures:
        sections.setdefault(fig.section, []).append(fig)
    lines += ["", "## All figures", "", "min / median over the repeats (n), then tails where they matter; every "
              "ratio is against a reference measured in the same run, interleaved (see *Method*).", ""]
    for section, members in sections.items():
        lines += [f"### {section}", "", "| setup | figure | n | min / median | ratio | reference | target | note |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for fig in members:
            ratio = f"{fig.ratio:.3f}x" if fig.ratio is not None else ""
            target = f"{fig.target}: {fig.result or 'reported'}" if fig.target else ""
            lines.append(
                f"| {_cell(fig.setup)} | {_cell(fig.name)} | {len(fig.values)} | {_cell(_stats(fig))} | {ratio} "
                f"| {_cell(fig.reference)} | {_cell(target)} | {_cell(fig.note)} |"
            )
        lines.append("")
    if notes:
        lines += ["## Notes from this run", ""] + [f"- {note}" for note in notes] + [""]
    lines += ["## Method", ""] + [f"- {item}" for item in method] + [""]
    return "\n".join(lines)


def standalone_parser(module: str, doc: str, out: Path) -> argparse.ArgumentParser:
    """The options every benchmark run on its own shares (python -m benchmarks.<module>)."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    parser.add_argument("--full-size-only", action="store_true", help="the full-size model only")
    parser.add_argument("--models-dir", default=str(out.parent / ".bench-models"))
    parser.add_argument("--out", default=str(out))
    return parser


class Collected:
    """The figures and notes of a run, each figure printed as it comes."""

    def __init__(self):
        self.figures: list[Figure] = []
        self.notes: list[str] = []

    def emit(self, fig: Figure) -> None:
        self.figures.append(fig)
        print(console_line(fig), flush=True)
