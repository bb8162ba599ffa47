"""The result archive as history entries: thumbnails and settings read back after a restart.

Only a thumbnail is decoded and the settings come from the PNG's text chunk; the full picture is read from its file when it is shown or saved.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImageReader

from ..core.errors import SketchpadError
from ..core.result_archive import ResultArchive
from ..core.storage import parse_parameters
from .history import MAX_HISTORY, THUMB_SIDE, HistoryEntry


def read_kept(path: Path) -> HistoryEntry | None:
    """One archived result, or None when the file is not a readable result of ours."""
    try:  # PIL reads the text chunks before the pixels without decoding them (Qt folds their newlines)
        with Image.open(path, formats=["PNG"]) as opened:
            text = opened.info.get("parameters")
        info = parse_parameters(str(text)) if text else None
    except (OSError, ValueError, SyntaxError, SketchpadError):
        return None
    if info is None:
        return None
    reader = QImageReader(str(path), b"png")
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(size.scaled(QSize(THUMB_SIDE, THUMB_SIDE), Qt.AspectRatioMode.KeepAspectRatio))
    thumbnail = reader.read()
    if thumbnail.isNull():
        return None
    return HistoryEntry(info, thumbnail, None, Path(path))


def kept_entries(archive: ResultArchive, limit: int = MAX_HISTORY) -> list[HistoryEntry]:
    """The newest `limit` readable results, newest first."""
    entries = []
    for path in archive.entries():
        entry = read_kept(path)
        if entry is not None:
            entries.append(entry)
            if len(entries) == limit:
                break
    return entries
