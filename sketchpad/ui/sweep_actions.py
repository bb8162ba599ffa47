"""Generate → Sweep… in the window: the dialog, the run, the sheet on show and a click on one of its cells.

The window builds one of these and wires it; the decisions are the session's and the run
controller's. A new sweep brings the contact sheet to the front; a click on a finished cell makes it
the result on show (framed on the sheet, the dial turned to its value) and a double click opens it
large under the Picture tab.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QWidget

from ..core.errors import SketchpadError
from ..core.server_address import display_address
from ..core.sweep import Cell
from .contact_sheet_view import ResultsPane, SheetPanel
from .file_actions import FileActions
from .history import HistoryEntry
from .run_controller import RunController
from .session import Session
from .sweep_controls import SweepDialog


class SweepActions(QObject):
    def __init__(self, session: Session, runs: RunController, files: FileActions, pane: ResultsPane,
                 sheet: SheetPanel, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.session, self.runs, self.files, self.pane, self.sheet = session, runs, files, pane, sheet
        self.dialog = SweepDialog(session, dialog_parent)
        self._shown_sheet = None
        session.sheet_changed.connect(self._sheet_changed)
        session.shown_changed.connect(self._frame_shown)
        sheet.view.cell_clicked.connect(self.take_cell)
        sheet.view.cell_opened.connect(self.open_cell)
        sheet.save_requested.connect(self.save_sheet)

    def restore(self, settings) -> None:
        self.dialog.servers_edit.setText(str(settings.value("sweep_servers", "") or ""))

    def save(self, settings) -> None:
        """The other servers listed for sweeps, without any user:password (as the server in use)."""
        listed = [display_address(url.strip()) for url in self.dialog.servers_edit.text().split(",") if url.strip()]
        settings.setValue("sweep_servers", ", ".join(listed))

    def ask(self) -> int:
        """Open the dialog; on Run, sweep. The sweep's id, or 0 when nothing was sent."""
        self.dialog.prepare()
        if self.dialog.exec() != QDialog.DialogCode.Accepted:
            return 0
        try:
            servers = self.dialog.servers()
        except SketchpadError as error:
            self.session.say(f"No sweep: {error}", error=True)
            return 0
        return self.run(*self.dialog.choice(), servers=servers)

    def run(self, axis: str | None, values, seeds: int = 1, servers=()) -> int:
        try:
            return self.runs.sweep(axis, values or None, seeds, servers)
        except SketchpadError as error:  # the dialog checks as it is typed; the request may have changed since
            self.session.say(f"No sweep: {error}", error=True)
            return 0

    def take_cell(self, cell: Cell) -> HistoryEntry | None:
        entry = self.session.take_cell(cell)
        if entry is not None:
            self.session.say(f"On show: {cell.label} (Ctrl+S saves it; double-click opens it large)")
        return entry

    def open_cell(self, cell: Cell) -> None:
        if self.take_cell(cell) is not None:
            self.pane.show_picture()

    def save_sheet(self) -> None:
        self.files.save_sheet()

    def _sheet_changed(self, sheet) -> None:
        self.sheet.show_sheet(sheet)
        if sheet is not self._shown_sheet:  # a new sweep: its sheet comes to the front
            self._shown_sheet = sheet
            self.pane.show_sheet()
        self._frame_shown(self.session.shown)

    def _frame_shown(self, entry: HistoryEntry | None) -> None:
        sheet = self.session.sheet
        cells = sheet.done.items() if sheet is not None and entry is not None else ()
        self.sheet.view.set_current(next((cell for cell, done in cells if done is entry), None))
