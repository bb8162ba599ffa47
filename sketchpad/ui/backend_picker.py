"""BackendPicker: where the pictures are made, this computer or a ComfyUI server, visible in the panel.

It only says what the person chose (local_chosen, server_chosen); the window connects and tells
it the outcome through `show_state(ModelState)`. A server that cannot be reached gets one line
here and a button that switches back to this computer, so a remembered server that is down never
traps anyone.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ..core.errors import ServerState
from ..core.registry import BACKENDS
from ..core.server_address import display_address
from .session_state import ModelStatus

DEFAULT_SERVER = "http://127.0.0.1:8188"  # ComfyUI's own default address
PROBLEM_CHARS = 34  # what fits beside the button in the panel's narrowest width


class BackendPicker(QWidget):
    local_chosen = Signal()
    server_chosen = Signal(str)  # the URL as typed (it may carry credentials: never shown elsewhere)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.combo = QComboBox(self, toolTip="Paint on this computer or on a ComfyUI server")
        for key, label in BACKENDS.items():
            self.combo.addItem(label, key)
        self.url_edit = QLineEdit(self, placeholderText=DEFAULT_SERVER,
                                  toolTip="The ComfyUI server's address; user:password@ is allowed")
        self._full_url = ""  # the remembered URL with its credentials; the field shows it without them
        self.connect_button = QPushButton("Connect", self, toolTip="Connect and list the server's checkpoints")
        self.problem_label = QLabel(self, styleSheet="color: #ff7b72;")
        self.local_button = QPushButton("Use this computer", self, toolTip="Paint on this computer instead")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Runs on", self))
        top.addWidget(self.combo, 1)
        self.server_row = QWidget(self)
        row = QHBoxLayout(self.server_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.url_edit, 1)
        row.addWidget(self.connect_button)
        self.problem_row = QWidget(self)
        problem = QHBoxLayout(self.problem_row)
        problem.setContentsMargins(0, 0, 0, 0)
        problem.addWidget(self.problem_label, 1)
        problem.addWidget(self.local_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.server_row)
        column.addWidget(self.problem_row)
        self.server_row.hide()
        self.problem_row.hide()
        self.combo.activated.connect(self._picked)
        self.connect_button.clicked.connect(self._connect)
        self.url_edit.returnPressed.connect(self._connect)
        self.local_button.clicked.connect(self.local_chosen)

    # ---- public API ---------------------------------------------------------------------
    def on_server(self) -> bool:
        return self.combo.currentData() == "comfyui"

    def show_state(self, model) -> None:
        """Show the session's ModelState: the backend in use, its server, and what went wrong."""
        self._select("comfyui" if model.on_server else "local")
        if model.server_url and not self.url_edit.hasFocus():
            self._full_url = model.server_url
            self.url_edit.setText(display_address(model.server_url))
        self.server_row.setVisible(model.on_server)
        gone = model.server_state in _GONE
        problem = model.on_server and (gone or model.status is ModelStatus.FAILED)
        if problem:  # one short line here; the whole message is in the preview's error bar
            self.problem_label.setText(_GONE[model.server_state] if gone
                                       else _shorten(_first_line(model.message), PROBLEM_CHARS))
        self.problem_row.setVisible(problem)

    # ---- internals ------------------------------------------------------------------------
    def _select(self, key: str) -> None:
        self.combo.setCurrentIndex(self.combo.findData(key))

    def _picked(self, index: int) -> None:
        if self.combo.itemData(index) == "local":
            self.server_row.hide()
            self.local_chosen.emit()
            return
        self.server_row.show()
        if self.url_edit.text().strip():
            self._connect()
        else:
            self.url_edit.setText(DEFAULT_SERVER)
            self.url_edit.setFocus()

    def _connect(self) -> None:
        url = self.url_edit.text().strip() or DEFAULT_SERVER
        if self._full_url and url == display_address(self._full_url):
            url = self._full_url  # the same server as remembered: with the credentials it was given
        self.server_chosen.emit(url)


_GONE = {ServerState.UNREACHABLE: "The server cannot be reached.",
         ServerState.NOT_ANSWERING: "The server does not answer."}


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
