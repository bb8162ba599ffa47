"""Menus and shortcuts of the main window, in one table-like place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QFileDialog, QInputDialog, QMainWindow

from ..logs import log_folder
from .canvas import SketchCanvas
from .extend_dialog import extend_from_dialog
from .file_actions import FileActions
from .mask_tools import MASK_TOOL_BUTTONS
from .generation_panel import GenerationPanel
from .sd15_fit import native_size_for
from .session import Session
from .session_state import ModelState

SD15_CANVAS_SIZES = ((512, 512), (768, 512), (512, 768), (768, 768))
# SDXL's own sizes (its training buckets, about a megapixel each): square, landscape, portrait, wide
SDXL_CANVAS_SIZES = ((1024, 1024), (1216, 832), (832, 1216), (1344, 768))


def canvas_presets(native: int) -> tuple[tuple[int, int], ...]:
    """The Canvas menu's sizes for a model made at `native` x `native`: SDXL's for 1024-class models,
    SD 1.5's for 512, and SD 1.5's scaled (to multiples of 64) in between (SD 2.x's 768)."""
    table, base = (SDXL_CANVAS_SIZES, 1024) if native >= 1024 else (SD15_CANVAS_SIZES, 512)
    return tuple((round(w * native / base / 64) * 64, round(h * native / base / 64) * 64) for w, h in table)


def build_menus(window: QMainWindow, session: Session, files: FileActions, canvas: SketchCanvas,
                panel: GenerationPanel, generate: Callable[[], object], cancel: Callable[[], None],
                mask_edits: dict[str, QAction] | None = None, sweep: Callable[[], None] | None = None,
                save_sheet: Callable[[], None] | None = None) -> dict[str, QAction]:
    """The menus; `window` is only the menus' owner and the dialogs' parent. `mask_edits`: the tool
    bar's edits of the whole mask, listed (with their shortcuts) under Canvas → Mask. `sweep` opens
    Generate → Sweep…, `save_sheet` saves the contact sheet on show."""
    actions: dict[str, QAction] = {}
    bar = window.menuBar()

    def add(menu, key, text, slot, shortcuts=()):
        action = QAction(text, window)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.triggered.connect(lambda checked=False: slot())
        menu.addAction(action)
        actions[key] = action
        return action

    menu = bar.addMenu("&File")
    add(menu, "open", "&Open sketch…", files.open_sketch_dialog, ["Ctrl+O"])
    add(menu, "save_sketch", "Save s&ketch…", files.save_sketch_dialog)
    menu.addSeparator()
    add(menu, "save", "&Save result", files.save_result, ["Ctrl+S"])
    add(menu, "save_as", "Save result &as…", files.save_result_as, ["Ctrl+Shift+S"])
    if save_sheet is not None:
        add(menu, "save_sheet", "Save contact s&heet", save_sheet)
    embed = add(menu, "embed_sketch", "Keep the sketch inside saved pictures",
                lambda: session.set_embed_sketch(embed.isChecked()))
    embed.setCheckable(True)
    embed.setChecked(session.embed_sketch)
    embed.setToolTip("Saved and kept pictures carry the sketch they were made from, so opening one can "
                     "restore it; off: only the picture and its settings")
    session.embed_sketch_changed.connect(embed.setChecked)
    menu.addSeparator()
    add(menu, "model_folder", "Choose model &folder…", lambda: _choose_model_folder(window, session))
    add(menu, "model_file", "Choose model f&ile (.safetensors)…", lambda: _choose_model_file(window, session))
    add(menu, "output_dir", "Output folder…", lambda: _choose_output_dir(window, session))
    add(menu, "kept_space", "Space for kept results…", lambda: _choose_kept_space(window, session))
    menu.addSeparator()
    add(menu, "quit", "&Quit", window.close, ["Ctrl+Q"])

    menu = bar.addMenu("&Edit")
    stack = canvas.undo_stack()
    # the stack's own actions name what they take back (a stroke, a mask, an extension…)
    undo = _stack_action(menu, actions, "undo", stack.createUndoAction(window, "&Undo"), ["Ctrl+Z"])
    redo = _stack_action(menu, actions, "redo", stack.createRedoAction(window, "&Redo"), ["Ctrl+Shift+Z", "Ctrl+Y"])
    keys_to_canvas = _UndoKeysToCanvas([*undo.shortcuts(), *redo.shortcuts()], window)
    for spin_box in window.findChildren(QAbstractSpinBox):
        spin_box.installEventFilter(keys_to_canvas)
    menu.addSeparator()
    add(menu, "paste", "&Paste picture as sketch", files.paste, ["Ctrl+V"])
    add(menu, "copy", "&Copy result", files.copy_result, ["Ctrl+Shift+C"])
    add(menu, "use_result", "Use result as s&ketch", files.use_result_as_sketch)
    add(menu, "clear", "C&lear canvas", canvas.clear)

    menu = bar.addMenu("&Canvas")
    custom = add(menu, "size_custom", "Custom size…", lambda: _custom_size(window, session, canvas))
    sizes = _CanvasSizes(menu, custom, actions, lambda w, h: _resize(session, canvas, w, h))
    session.model_changed.connect(sizes.follow)
    sizes.follow(session.model)
    add(menu, "extend", "E&xtend…", lambda: extend_from_dialog(window, session, canvas))
    menu.addSeparator()
    add(menu, "brush", "&Brush", lambda: canvas.set_tool("brush"), ["B"])
    add(menu, "eraser", "&Eraser", lambda: canvas.set_tool("eraser"), ["E"])
    add(menu, "bigger", "Bigger brush", canvas.grow_brush, ["]"])
    add(menu, "smaller", "Smaller brush", canvas.shrink_brush, ["["])
    mask_menu = menu.addMenu("&Mask")
    for tool, text, _tip, shortcut in MASK_TOOL_BUTTONS:
        add(mask_menu, tool, f"{text} tool", lambda tool=tool: canvas.set_tool(tool), [shortcut] if shortcut else [])
    mask_menu.addSeparator()
    for key, action in (mask_edits or {}).items():
        mask_menu.addAction(action)
        actions[key] = action

    menu = bar.addMenu("&Generate")
    add(menu, "generate", "&Generate", generate, ["Ctrl+Return", "Ctrl+Enter"])
    add(menu, "cancel", "&Cancel", cancel, ["Esc"])
    if sweep is not None:
        add(menu, "sweep", "&Sweep…", sweep, ["Ctrl+Shift+Return", "Ctrl+Shift+Enter"])
    live = add(menu, "live", "&Live mode", lambda: panel.set_live(live.isChecked()))
    live.setCheckable(True)
    panel.live_changed.connect(live.setChecked)

    menu = bar.addMenu("&Help")
    add(menu, "log_folder", "Open &log folder", lambda: _open_log_folder(session))
    return actions


def _stack_action(menu, actions: dict[str, QAction], key: str, action: QAction, shortcuts: list[str]) -> QAction:
    action.setShortcuts([QKeySequence(s) for s in shortcuts])
    menu.addAction(action)
    actions[key] = action
    return action


class _CanvasSizes(QObject):
    """The Canvas menu's sizes, before Custom size…: those of the model in use (SDXL's for SDXL)."""

    def __init__(self, menu, before: QAction, actions: dict[str, QAction], resize: Callable[[int, int], None]):
        super().__init__(menu)
        self._menu, self._before, self._actions, self._resize = menu, before, actions, resize
        self._model: tuple | None = None
        self._shown: list[QAction] = []

    def follow(self, model: ModelState) -> None:
        if (model.on_server, model.model) == self._model:
            return  # the same model: its native size is known (reading it opens the model's configs)
        self._model = (model.on_server, model.model)
        for action in self._shown:
            self._menu.removeAction(action)
            del self._actions[action.objectName()]
            action.deleteLater()
        self._shown = []
        for width, height in canvas_presets(native_size_for(model)):
            action = QAction(f"{width} × {height}", self._menu)
            action.setObjectName(f"size_{width}x{height}")
            action.triggered.connect(lambda checked=False, w=width, h=height: self._resize(w, h))
            self._menu.insertAction(self._before, action)
            self._actions[action.objectName()] = action
            self._shown.append(action)


class _UndoKeysToCanvas(QObject):
    """A spin box claims Ctrl+Z for the digits typed into it, so the canvas's undo never came while
    one had focus. Its digits are a value, not text a painter composes: the undo keys go to the
    canvas there, as from the dial, a combo box or a button. Fields of free text (the prompts, the
    LoRA line, the ControlNet) keep their own undo."""

    def __init__(self, shortcuts: list[QKeySequence], parent: QObject):
        super().__init__(parent)
        self._keys = {shortcut[0] for shortcut in shortcuts}

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and event.keyCombination() in self._keys:
            event.ignore()  # not claimed: Qt hands the keys to the window's shortcuts
            return True
        return False


def _open_log_folder(session: Session) -> None:
    """The folder of sketchpad.log, in the desktop's file manager: the file to attach to a bug report."""
    folder = log_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        session.say(f"cannot create the log folder {folder}: {error.strerror}", error=True)
        return
    if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
        session.say(f"The log is in {folder}")  # no file manager to show it: say where it is


def _choose_model_folder(window: QMainWindow, session: Session) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Choose a diffusers model folder")
    if folder:
        session.load_model(folder, server_url="")  # a folder on this computer: paint here


def _choose_model_file(window: QMainWindow, session: Session) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Choose a checkpoint", "", "Safetensors (*.safetensors)")
    if path:
        session.load_model(path, server_url="")  # a file on this computer: paint here


def _choose_output_dir(window: QMainWindow, session: Session) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Where Ctrl+S saves results", str(session.output_dir))
    if folder:
        session.set_output_dir(Path(folder))
        session.say(f"Results will be saved in {folder}")


def _choose_kept_space(window: QMainWindow, session: Session) -> None:
    if session.archive is None:
        session.say("Results are not being kept: the app's data folder cannot be written", error=True)
        return
    mib, ok = QInputDialog.getInt(window, "Kept results",
                                  "Every result is kept until this much space is used (MiB; oldest go first):",
                                  session.archive.max_bytes // (1 << 20), 0, 1 << 20)
    if ok:
        session.set_archive_budget(mib << 20)
        session.say(f"Kept results may take up to {mib} MiB")


def _resize(session: Session, canvas: SketchCanvas, width: int, height: int) -> None:
    try:
        canvas.resize_canvas(width, height)
    except ValueError as error:
        session.say(str(error), error=True)


def _custom_size(window: QMainWindow, session: Session, canvas: SketchCanvas) -> None:
    size = canvas.canvas_size()
    text, ok = QInputDialog.getText(window, "Canvas size", "Width × height (multiples of 8, 64–2048):",
                                    text=f"{size.width()}x{size.height()}")
    if not ok:
        return
    try:
        width, height = (int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        session.say(f"'{text}' is not a size like 640x480", error=True)
        return
    _resize(session, canvas, width, height)
