"""HistoryStrip: the session's results as a horizontal row of thumbnails, newest first.

Each entry carries an opaque payload (the window's: a session HistoryEntry) and hands it back on
click (show it), double-click or menu "Restore settings", and menu "Use as sketch". The session
decides what is kept (remove() drops one); the strip itself never holds more than MAX_ENTRIES.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QMenu, QStyle, QVBoxLayout, QWidget

from .history import MAX_HISTORY as MAX_ENTRIES
from .history import THUMB_SIDE as THUMB

KEY_ROLE = Qt.ItemDataRole.UserRole  # an int key into _payloads


class HistoryStrip(QWidget):
    entry_selected = Signal(object)
    restore_requested = Signal(object)
    use_as_sketch_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # Payloads stay Python-side: a dict or list put in item data would come back as a copy
        # (PySide converts them to QVariantMap/List), breaking identity for the window.
        self._payloads: dict[int, object] = {}
        self._next_key = 0
        self.list_widget = QListWidget(self)
        lw = self.list_widget
        lw.setViewMode(QListView.ViewMode.IconMode)
        lw.setFlow(QListView.Flow.LeftToRight)
        lw.setWrapping(False)  # one row, scrolled sideways
        lw.setMovement(QListView.Movement.Static)
        lw.setResizeMode(QListView.ResizeMode.Adjust)
        lw.setIconSize(QSize(THUMB, THUMB))
        lw.setGridSize(QSize(THUMB + 8, THUMB + 8))
        lw.setSpacing(2)
        lw.setUniformItemSizes(True)
        lw.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lw.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        lw.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        lw.itemClicked.connect(lambda item: self.entry_selected.emit(self._payload_of(item)))
        lw.itemDoubleClicked.connect(lambda item: self.restore_requested.emit(self._payload_of(item)))
        lw.customContextMenuRequested.connect(self._open_menu)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(lw)
        # a row of thumbnails and, below it, the sideways scrollbar a full strip shows
        bar = lw.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, lw)
        self.setFixedHeight(lw.gridSize().height() + bar + 2 * lw.frameWidth())
        self.setToolTip("Results of this session: click to view, double-click to restore its settings")
        self._collapse_when_empty()

    # ---- public API ---------------------------------------------------------------------
    def add_entry(self, image: QImage, payload: object, tooltip: str) -> None:
        """Put a result first (leftmost, the newest); drop the oldest beyond MAX_ENTRIES."""
        item = QListWidgetItem()
        thumb = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
        item.setIcon(QPixmap.fromImage(thumb))
        item.setToolTip(tooltip)
        item.setData(KEY_ROLE, self._next_key)
        self._payloads[self._next_key] = payload
        self._next_key += 1
        self.list_widget.insertItem(0, item)
        while self.list_widget.count() > MAX_ENTRIES:
            oldest = self.list_widget.takeItem(self.list_widget.count() - 1)  # taken: Python frees it
            del self._payloads[oldest.data(KEY_ROLE)]
        self.list_widget.scrollToItem(item)
        self._collapse_when_empty()

    def remove(self, payload: object) -> None:
        for row in range(self.list_widget.count()):
            if self.payload(row) is payload:
                item = self.list_widget.takeItem(row)
                del self._payloads[item.data(KEY_ROLE)]
                break
        self._collapse_when_empty()

    def count(self) -> int:
        return self.list_widget.count()

    def payload(self, row: int) -> object:
        """Row 0 is the newest entry."""
        return self._payload_of(self.list_widget.item(row))

    def payloads(self) -> list[object]:
        return [self.payload(row) for row in range(self.count())]

    def clear(self) -> None:
        self.list_widget.clear()
        self._payloads.clear()
        self._collapse_when_empty()

    def _collapse_when_empty(self) -> None:
        """An empty strip takes no room: a short window needs it for the controls."""
        self.setVisible(self.list_widget.count() > 0)

    # ---- internals ------------------------------------------------------------------------
    def menu_for(self, item: QListWidgetItem) -> QMenu:
        """The context menu of one entry (separate from showing it, so tests can trigger it)."""
        payload = self._payload_of(item)
        menu = QMenu(self)
        menu.addAction("Show", lambda: self.entry_selected.emit(payload))
        menu.addAction("Restore settings", lambda: self.restore_requested.emit(payload))
        menu.addAction("Use as sketch", lambda: self.use_as_sketch_requested.emit(payload))
        return menu

    def _payload_of(self, item: QListWidgetItem) -> object:
        return self._payloads[item.data(KEY_ROLE)]

    def _open_menu(self, pos: QPoint) -> None:
        item = self.list_widget.itemAt(pos)
        if item is not None:
            menu = self.menu_for(item)
            menu.exec(self.list_widget.viewport().mapToGlobal(pos))
            menu.deleteLater()
