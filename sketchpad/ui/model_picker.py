"""ModelPicker: the model in use, visible in the panel, and "Choose…" for another one.

The picker only says what was chosen (model_chosen); the window loads it and tells the picker
what is in use (set_model). The Choose… menu is a plain QMenu, so another source (a server)
is one more action in it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMenu,
                               QSizePolicy, QToolButton, QWidget)

from ..core.sources import DEFAULT_MODEL

MAX_RECENT = 8


def model_display_name(model: str) -> str:
    """A folder or file by its name, a Hugging Face id as it is."""
    path = Path(model)
    return path.name if (path.is_absolute() or model.startswith(("~", "."))) and path.name else model


class ModelPicker(QWidget):
    model_chosen = Signal(str)  # a folder, a .safetensors file or a Hugging Face id

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.combo = QComboBox(self, toolTip="The model that paints; pick a recent one or Choose… another")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(8)  # a long path must not widen the panel
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.choose_button = QToolButton(self, text="Choose…", toolTip="Use another model",
                                         popupMode=QToolButton.ToolButtonPopupMode.InstantPopup,
                                         styleSheet="QToolButton::menu-indicator { image: none; }")
        self.menu = QMenu(self)
        self.menu.addAction("Model folder (diffusers)…", self.choose_folder)
        self.menu.addAction("Model file (.safetensors)…", self.choose_file)
        self.menu.addAction("Hugging Face model id…", self.choose_hub_id)
        self.choose_button.setMenu(self.menu)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Model", self))
        row.addWidget(self.combo, 1)
        row.addWidget(self.choose_button)
        self.combo.activated.connect(self._picked)
        self._on_server = False
        self._in_use = ""  # the checkpoint in use on the server
        self._local: list[tuple[str, str]] = []  # this computer's recent models while a server's are shown

    # ---- public API ---------------------------------------------------------------------
    def show_checkpoints(self, names, current: str) -> None:
        """On a server: its checkpoints to pick from (no local files); does not emit model_chosen."""
        if not self._on_server:
            self._local = [(self.combo.itemText(i), self.combo.itemData(i)) for i in range(self.combo.count())]
            self._on_server = True
        names = list(names) or ([current] if current else [])
        if [self.combo.itemData(i) for i in range(self.combo.count())] != names:
            self.combo.clear()
            for name in names:
                self.combo.addItem(name, name)
        self._in_use = current
        self.combo.setCurrentIndex(max(0, self.combo.findData(current)))
        self.combo.setPlaceholderText("the server's checkpoints, once connected")
        self.combo.setToolTip("The server's checkpoint that paints")
        self.choose_button.hide()

    def show_local(self, model: str) -> None:
        """Back on this computer: its recent models again, `model` first."""
        if self._on_server:
            self._on_server = False
            self.combo.clear()
            for text, data in self._local:
                self.combo.addItem(text, data)
            self.choose_button.show()
            self.combo.setPlaceholderText("")
        self.set_model(model)

    def model(self) -> str:
        return self.combo.currentData() or ""

    def set_model(self, model: str) -> None:
        """Show the model in use (first among the recent ones); does not emit model_chosen."""
        index = self.combo.findData(model)
        if index >= 0:
            self.combo.removeItem(index)
        self.combo.insertItem(0, model_display_name(model), model)
        self.combo.setItemData(0, model, Qt.ItemDataRole.ToolTipRole)  # the full path or id
        while self.combo.count() > MAX_RECENT:
            self.combo.removeItem(self.combo.count() - 1)
        self.combo.setCurrentIndex(0)
        self.combo.setToolTip(f"Model: {model}")

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a diffusers model folder (with model_index.json)")
        if folder:
            self.model_chosen.emit(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a checkpoint", "", "Safetensors (*.safetensors)")
        if path:
            self.model_chosen.emit(path)

    def choose_hub_id(self) -> None:
        text, ok = QInputDialog.getText(self, "Hugging Face model",
                                        "Model id (downloaded once into the Hugging Face cache):",
                                        text=DEFAULT_MODEL)
        if ok and text.strip():
            self.model_chosen.emit(text.strip())

    # ---- internals ------------------------------------------------------------------------
    def _picked(self, index: int) -> None:
        model = self.combo.itemData(index)
        if self._on_server:  # every checkpoint is listed, the one in use among them
            if model and model != self._in_use:
                self.model_chosen.emit(model)
            return
        if model and index != 0:  # item 0 is the model in use
            self.model_chosen.emit(model)
