"""The session's results, as the history strip lists them: bounded, and never losing a picture.

Bounded in entries (MAX_HISTORY) and in full-size pixels held in memory: past the pixel budget an
older entry keeps only its thumbnail, and only once the result archive has its file and has
promised to keep it (pinned) until the entry leaves the history. A result whose file cannot be
verified stays in memory. A Live draft is one entry that its refine (or the next draft) replaces.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from ..core.errors import SketchpadError
from ..core.picture_key import PictureKey
from ..core.registry import scheduler_label
from ..core.result_archive import ResultArchive
from ..core.storage import ResultInfo, read_embedded_sketch
from ..qimages import qimage_to_pil

MAX_HISTORY = 100  # entries in the strip
# Full-size pictures kept in memory (the newest ones); older entries keep a thumbnail and their
# archived file. 48 MiB is ~60 results at 512x512, so a Live session stays bounded.
MAX_HISTORY_PIXEL_BYTES = 48 * 1024 * 1024
THUMB_SIDE = 96
PROMPT_IN_CAPTION = 40  # characters of the prompt a caption shows


@dataclass(eq=False)
class HistoryEntry:
    """One finished result. Identity matters (the strip hands entries back), so eq=False."""

    info: ResultInfo
    thumbnail: QImage
    image: QImage | None  # None once released from memory; then `path` has it, pinned in the archive
    path: Path | None = None  # where the archive keeps it, if it does
    seconds: float = 0.0
    key: PictureKey | None = None
    request_id: int = 0  # the run that made it; 0 for one reloaded from the archive
    sketch: QImage | None = None  # what it was made from, while in memory (else its file may carry it)

    @property
    def draft(self) -> bool:
        return self.info.params.draft

    def made_from(self) -> Image.Image | None:
        """The sketch it was made from: from memory, else from its kept file; None when neither has it."""
        if self.sketch is not None:
            return qimage_to_pil(self.sketch)
        try:
            return read_embedded_sketch(self.path) if self.path is not None else None
        except SketchpadError:  # gone or damaged: the picture is still saved, without it
            return None

    def picture(self) -> QImage:
        """The full picture, from memory or its file."""
        if self.image is not None:
            return self.image
        return QImage(str(self.path)) if self.path is not None else QImage()

    def caption(self) -> str:
        return describe(self.info)

    def pixel_bytes(self) -> int:
        return sum(image.sizeInBytes() for image in (self.image, self.sketch) if image is not None)


def shorten(text: str, limit: int = PROMPT_IN_CAPTION) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe(info: ResultInfo) -> str:
    """One line naming a result: its prompt (shortened), seed, knob, sampler and size."""
    params = info.params
    knob = (f"start {params.start_at_step}/{params.steps}" if params.start_at_step is not None
            else f"denoise {params.strength:.2f}")
    prompt = f"“{shorten(params.prompt)}” · " if params.prompt.strip() else ""
    draft = " · draft" if params.draft else ""
    return f"{prompt}seed {params.seed} · {knob} · {scheduler_label(info.sampler)} · {info.width}x{info.height}{draft}"


def thumbnail(image: QImage) -> QImage:
    return image.scaled(THUMB_SIDE, THUMB_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


class History:
    """Newest first. Plain Python: the session says what changed."""

    def __init__(self):
        self._entries: deque[HistoryEntry] = deque()
        self.archive: ResultArchive | None = None  # where released pictures are kept (pinned)

    def entries(self) -> list[HistoryEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def adopt(self, entry: HistoryEntry) -> bool:
        """An entry whose picture is only in the archive (from an earlier session): pinned there so
        a budget change cannot delete it while it is listed. False when its file is gone."""
        return entry.image is not None or self._pin(entry.path)

    def add(self, entry: HistoryEntry, shown: HistoryEntry | None) -> tuple[HistoryEntry | None, list[HistoryEntry]]:
        """Put `entry` first; a draft at the head is replaced by it (returned first). Also returns
        the entries dropped to stay within MAX_HISTORY."""
        replaced = None
        if self._entries and self._entries[0].draft:
            replaced = self._entries.popleft()
            self._unpin(replaced)
        self._entries.appendleft(entry)
        return replaced, self._trim(shown)

    def _trim(self, shown: HistoryEntry | None) -> list[HistoryEntry]:
        pixel_bytes = 0
        for entry in self._entries:
            pixel_bytes += entry.pixel_bytes()
            if pixel_bytes <= MAX_HISTORY_PIXEL_BYTES or entry is self._entries[0] or entry is shown:
                continue
            if entry.image is not None and self._pin(entry.path):  # the file is verified and kept: release
                pixel_bytes -= entry.pixel_bytes()
                entry.image = entry.sketch = None  # the kept file carries the sketch, unless told not to
        dropped = []
        while len(self._entries) > MAX_HISTORY:
            dropped.append(self._entries.pop())
            self._unpin(dropped[-1])
        return dropped

    def _pin(self, path: Path | None) -> bool:
        return path is not None and self.archive is not None and self.archive.pin(path)

    def _unpin(self, entry: HistoryEntry) -> None:
        if entry.path is not None and self.archive is not None:
            self.archive.unpin(entry.path)
