"""Every finished result kept on disk as it finishes, within a size budget, oldest pruned first.

The files are the same PNGs Ctrl+S writes (AUTOMATIC1111 `parameters` chunk, the sketch inside unless
left out, atomic writes), so a result survives a quit or a crash and reads back with its settings. Plain Python + PIL: the worker
writes here on its own thread while the window lists entries and changes the budget on its own, so
adding, pruning and pinning hold one lock. A pinned file is the only copy of a picture the window
lists (it released the picture from memory): pruning passes it by until it is unpinned.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from pathlib import Path

from PIL import Image

from .errors import SketchpadError
from .storage import ResultInfo, clean_leftovers, read_png_parameters, save_result

# "20261201-204500.123456-4242-7.png" (UTC): sorts by time; process id and a counter keep names unique
# when two windows share the folder or two results finish within a microsecond.
_ENTRY_NAME = re.compile(r"(\d{8}-\d{6}\.\d{6})-(\d+)-(\d+)\.png")
_counter = itertools.count(1)


class ResultArchive:
    def __init__(self, folder: Path, max_bytes: int):
        self.folder = Path(folder)
        self.max_bytes = _checked_budget(max_bytes)
        self._lock = threading.Lock()
        self._pinned: set[Path] = set()
        clean_leftovers(self.folder)  # temp files of results whose writer was killed mid-save

    def add(self, image: Image.Image, info: ResultInfo, sketch: Image.Image | None = None) -> Path:
        """Write one result (carrying `sketch`, the sketch it was made from, unless None); then prune
        the oldest entries beyond the budget, never this one.

        Raises SketchpadError (one line) when it cannot be written; nothing half-written is left.
        """
        path = save_result(image, info, self.folder / _new_name(), sketch=sketch)
        with self._lock:
            self._prune(keep=path)
        return path

    def pin(self, path: Path) -> bool:
        """Keep this entry whatever the budget until unpin(); False (nothing pinned) if it is gone."""
        path = Path(path)
        with self._lock:
            try:
                kept = path.parent == self.folder and path.stat().st_size > 0
            except OSError:
                return False
            if kept:
                self._pinned.add(path)
            return kept

    def unpin(self, path: Path) -> None:
        """The picture is in memory again, or no longer listed: the budget applies to it again."""
        with self._lock:
            self._pinned.discard(Path(path))

    def entries(self) -> list[Path]:
        """The kept results, newest first."""
        try:
            names = os.listdir(self.folder)
        except OSError:  # not made yet, or unreadable: nothing to show
            return []
        found = [m for m in map(_ENTRY_NAME.fullmatch, names) if m]
        found.sort(key=lambda m: (m[1], int(m[3]), int(m[2])), reverse=True)
        return [self.folder / m[0] for m in found]

    def load(self, path) -> tuple[Image.Image, ResultInfo]:
        """A kept result and its settings; SketchpadError when the file is damaged or not one of ours."""
        path = Path(path)
        info = read_png_parameters(path)  # checks the whole file without decoding it
        if info is None:
            raise SketchpadError(f"{path.name} holds no generation settings")
        try:
            with Image.open(path, formats=["PNG"]) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError, SyntaxError) as error:
            raise SketchpadError(f"cannot read {path}: {error}") from error
        return image, info

    def set_max_bytes(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = _checked_budget(max_bytes)
            self._prune(keep=None)

    def total_bytes(self) -> int:
        return sum(size for _, size in self._sizes())

    def _sizes(self) -> list[tuple[Path, int]]:
        sized = []
        for path in self.entries():
            try:
                sized.append((path, path.stat().st_size))
            except OSError:  # pruned by another window meanwhile
                continue
        return sized

    def _prune(self, keep: Path | None) -> None:
        sized = self._sizes()
        total = sum(size for _, size in sized)
        for path, size in reversed(sized):  # oldest first
            if total <= self.max_bytes:
                break
            if path == keep or path in self._pinned:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError:  # read-only now, say: keep what cannot go, the budget is a bound not a promise
                continue
            total -= size


def _new_name() -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}"
    return f"{stamp}-{os.getpid()}-{next(_counter)}.png"


def _checked_budget(max_bytes: int) -> int:
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise SketchpadError(f"the space for kept results must be a whole number of bytes, 0 or more "
                             f"(got {max_bytes!r})")
    return max_bytes
