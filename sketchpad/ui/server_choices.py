"""On a ComfyUI server the LoRA line and the ControlNet row offer the server's own files.

Nothing is uploaded to a server: a LoRA or ControlNet must be one of its files. So on a server the
fields complete those names as a person types, Choose… lists them, and a name the server lacks is
said as soon as the entry is finished (Enter or leaving the field), not only when Generate fails.
On this computer the fields are as before: files, folders and Hugging Face ids.
"""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtWidgets import QCompleter, QLineEdit

from ..core.errors import SketchpadError
from ..core.lora_text import parse_loras
from ..core.server_files import missing_model, server_file
from .fast_live_controls import CONTROL_PLACEHOLDER, KeepMyLines, PresetRow
from .session import Session
from .session_state import ModelState, ModelStatus

SERVER_CONTROL_PLACEHOLDER = "ControlNet: one of the server's files"


class LastEntryCompleter(QCompleter):
    """Completes the entry after the last comma of a `name:weight, name:weight` line."""

    def __init__(self, edit: QLineEdit):
        super().__init__(QStringListModel(edit), edit)
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterMode(Qt.MatchFlag.MatchContains)  # "ink" finds styles/ink.safetensors
        self._edit = edit

    def set_names(self, names: tuple[str, ...]) -> None:
        self.model().setStringList(list(names))

    def splitPath(self, path: str) -> list[str]:
        return [path.rsplit(",", 1)[-1].strip()]

    def pathFromIndex(self, index) -> str:
        head, comma, _ = self._edit.text().rpartition(",")
        return (head + ", " if comma else "") + super().pathFromIndex(index)


class ServerChoices:
    """Binds the preset row's LoRA line and the Keep my lines rows to the session's server files."""

    def __init__(self, session: Session, presets: PresetRow, lines: KeepMyLines):
        self.session, self.presets, self.lines = session, presets, lines
        self.lora_completer = LastEntryCompleter(presets.lora_edit)
        self.control_completer = QCompleter(QStringListModel(lines.model_edit), lines.model_edit)
        self.control_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.control_completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self._local_actions = list(lines.choose_menu.actions())
        self._server_actions = []
        self._on_server: bool | None = None
        self._offered: tuple = ()
        presets.loras_changed.connect(self.flag_missing)
        lines.model_edit.finished.connect(self.flag_missing)
        session.model_changed.connect(self.show)
        self.show(session.model)

    def show(self, model: ModelState) -> None:
        on_server = model.on_server
        offered = (model.loras, model.controlnets)
        if on_server == self._on_server and offered == self._offered:
            return
        self._on_server, self._offered = on_server, offered
        self.lora_completer.set_names(model.loras)
        self.control_completer.model().setStringList(list(model.controlnets))
        self.presets.lora_edit.setCompleter(self.lora_completer if on_server else None)
        self.lines.model_edit.setCompleter(self.control_completer if on_server else None)
        self.lines.model_edit.setPlaceholderText(SERVER_CONTROL_PLACEHOLDER if on_server else CONTROL_PLACEHOLDER)
        menu = self.lines.choose_menu
        for action in self._local_actions:  # the file and folder dialogs: this computer's
            action.setVisible(not on_server)
        for action in self._server_actions:
            menu.removeAction(action)
            action.deleteLater()
        self._server_actions = []
        if on_server and not model.controlnets:
            self._server_actions.append(menu.addAction("The server has no ControlNet (its models/controlnet folder)"))
            self._server_actions[-1].setEnabled(False)
        for name in model.controlnets if on_server else ():
            self._server_actions.append(menu.addAction(name, lambda chosen=name: self.lines.model_edit.setText(chosen)))

    def flag_missing(self) -> None:
        """Say at once when a finished entry names a file the server does not have."""
        model = self.session.model
        if not model.on_server or model.status is not ModelStatus.READY:
            return
        try:
            loras = parse_loras(self.presets.lora_edit.finished_text())
        except SketchpadError:
            return  # the line itself is wrong: the request says so
        wanted = [("LoRA", lora.source, model.loras, "models/loras") for lora in loras]
        control = self.lines.model_edit.finished_text().strip()
        if self.lines.checkbox.isChecked() and control:
            wanted.append(("ControlNet", control, model.controlnets, "models/controlnet"))
        for kind, source, available, folder in wanted:
            if server_file(source, available) is None:
                self.session.warn_request(missing_model(kind, source, available, folder).message)
                return
