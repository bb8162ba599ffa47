"""`generate --sweep/--batch`: several pictures from one request, one PNG each plus sheet.png.

Planned in core (core.sweep: which values make the same picture), run by sweep_run on this computer
or spread over several ComfyUI servers; every cell is saved as a single `generate` with its settings
would save it. stdout lists every file written, one a line, as it is written; Ctrl+C stops the rest
and still writes the sheet of the cells that finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .core.contact_sheet import CellPicture, save_sheet
from .core.errors import SketchpadError
from .core.registry import default_output_dir
from .core.storage import next_free_path, save_result
from .core.sweep import Cell, SweepPlan, plan_sweep, value_text
from .generate import Request, check_weights, check_writable_folder, say, step_reporter
from .sweep_run import CellResult, run_cells, where

SHEET_NAME = "sheet.png"


def run_sweep_command(args, request: Request) -> int:
    axis, values, batch = request.sweep
    plan = plan_sweep(request.params, axis, values, batch)
    folder = _out_dir(args.out_dir, plan, args.overwrite)
    if args.previews is not None:
        check_writable_folder(args.previews)
    check_weights(request)
    for cell in {cell.values: cell for cell in plan.merged}.values():  # once, not once per seed
        say(f"{' and '.join(value_text(plan.axis, value) for value in cell.values)} run the same steps "
            f"({cell.plan.run_steps} of {cell.plan.schedule_steps}): one picture")
    backends = _open_backends(request, args.device)
    finished: dict[Cell, CellPicture] = {}
    started = time.perf_counter()

    def save(done: CellResult) -> None:
        cell = done.cell
        path = save_result(done.result.image, done.info, folder / f"{cell.name}.png", overwrite=args.overwrite,
                           sketch=request.embedded_sketch)
        finished[cell] = CellPicture(done.result.image, done.info, path.name)
        say(f"{cell.label}: {done.result.steps_run} steps in {done.result.seconds:.1f} s on {done.made_on}")
        print(path, flush=True)

    reporters = {cell: step_reporter(args.previews / cell.name if args.previews else None, f"{cell.name}: ")
                 for cell in plan.cells}
    say(f"{len(plan.cells)} picture{'s' if len(plan.cells) > 1 else ''} on "
        + ", ".join(where(backend) for backend in backends))
    try:
        run_cells(plan.cells, backends, request.sketch, on_step=lambda cell, step: reporters[cell](step),
                  on_waiting=lambda cell, waiting: waiting.text and say(f"{cell.name}: {waiting.text}"),
                  on_done=save, on_lost=lambda backend, error: say(f"{error}; the other servers make its pictures"))
    except KeyboardInterrupt:
        _write_sheet(folder, plan, finished, request, args.overwrite)  # the finished cells are kept
        raise
    finally:
        from .backends.loading import close_backend

        for backend in backends:
            close_backend(backend)
    _write_sheet(folder, plan, finished, request, args.overwrite)
    say(f"{len(finished)} pictures in {time.perf_counter() - started:.1f} s")
    return 0


def _write_sheet(folder: Path, plan: SweepPlan, finished: dict, request: Request, overwrite: bool) -> None:
    if finished:
        print(save_sheet(folder / SHEET_NAME, plan, finished, request.embedded_sketch, overwrite), flush=True)


def _out_dir(out_dir: Path | None, plan: SweepPlan, overwrite: bool) -> Path:
    """The folder the pictures go to; none of their files may exist there unless overwriting."""
    folder = next_free_path(default_output_dir(), "sweep", suffix="") if out_dir is None else out_dir.expanduser()
    if folder.exists() and not folder.is_dir():
        raise SketchpadError(f"--out-dir {folder} is a file; give a folder")
    check_writable_folder(folder)
    names = [f"{cell.name}.png" for cell in plan.cells] + [SHEET_NAME]
    taken = [name for name in names if os.path.lexists(folder / name)]
    if taken and not overwrite:
        raise SketchpadError(f"{folder / taken[0]} already exists; choose another --out-dir or add --overwrite")
    return folder


def _open_backends(request: Request, device: str) -> list:
    """This computer's engine, or one backend per server that answers; a server that cannot be
    reached is said and left out while another one can."""
    from .backends.loading import close_backend, open_backend

    if not request.servers:
        return [open_backend(request.model, device, say, notify=say)]
    opened, unreachable = [], []
    for server in request.servers:
        try:
            opened.append(open_backend(request.model, device, say, server=server, notify=say))
        except SketchpadError as error:
            if not error.kind.server_gone:
                for backend in opened:
                    close_backend(backend)
                raise
            unreachable.append(error)
    if not opened:
        raise unreachable[0]
    for error in unreachable:
        say(f"{error}; the other servers make its pictures")
    checkpoints = {backend.model_name for backend in opened}
    if len(checkpoints) > 1:
        for backend in opened:
            close_backend(backend)
        raise SketchpadError(f"the servers would use different checkpoints ({', '.join(sorted(checkpoints))}); "
                             "give --model with one they all have")
    return opened
