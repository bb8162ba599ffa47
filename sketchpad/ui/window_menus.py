"""Menus and shortcuts of the main window, in one table-like place."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog

CANVAS_PRESETS = ((512, 512), (768, 512), (512, 768), (768, 768))


def build_menus(window) -> dict[str, QAction]:
    actions: dict[str, QAction] = {}
    bar = window.menuBar()

    def add(menu, key, text, slot, shortcuts=()):
        action = QAction(text, window)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.triggered.connect(lambda checked=False: slot())
        menu.addAction(action)
        actions[key] = action
        return action

    files = bar.addMenu("&File")
    add(files, "open", "&Open sketch…", window.files.open_sketch_dialog, ["Ctrl+O"])
    add(files, "save_sketch", "Save s&ketch…", window.files.save_sketch_dialog)
    files.addSeparator()
    add(files, "save", "&Save result", window.files.save_result, ["Ctrl+S"])
    add(files, "save_as", "Save result &as…", window.files.save_result_as, ["Ctrl+Shift+S"])
    files.addSeparator()
    add(files, "model_folder", "Choose model &folder…", lambda: _choose_model_folder(window))
    add(files, "model_file", "Choose model f&ile (.safetensors)…", lambda: _choose_model_file(window))
    add(files, "output_dir", "Output folder…", lambda: _choose_output_dir(window))
    files.addSeparator()
    add(files, "quit", "&Quit", window.close, ["Ctrl+Q"])

    edit = bar.addMenu("&Edit")
    stack = window.canvas.undo_stack()
    add(edit, "undo", "&Undo stroke", stack.undo, ["Ctrl+Z"])
    add(edit, "redo", "&Redo stroke", stack.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
    edit.addSeparator()
    add(edit, "paste", "&Paste picture as sketch", window.files.paste, ["Ctrl+V"])
    add(edit, "copy", "&Copy result", window.files.copy_result, ["Ctrl+Shift+C"])
    add(edit, "use_result", "Use result as s&ketch", lambda: _use_result_as_sketch(window))
    add(edit, "clear", "C&lear canvas", window.canvas.clear)

    canvas = bar.addMenu("&Canvas")
    for width, height in CANVAS_PRESETS:
        add(canvas, f"size_{width}x{height}", f"{width} × {height}",
            lambda w=width, h=height: _resize(window, w, h))
    add(canvas, "size_custom", "Custom size…", lambda: _custom_size(window))
    canvas.addSeparator()
    add(canvas, "brush", "&Brush", lambda: window.canvas.set_tool("brush"), ["B"])
    add(canvas, "eraser", "&Eraser", lambda: window.canvas.set_tool("eraser"), ["E"])
    add(canvas, "bigger", "Bigger brush", window.canvas.grow_brush, ["]"])
    add(canvas, "smaller", "Smaller brush", window.canvas.shrink_brush, ["["])

    run = bar.addMenu("&Generate")
    add(run, "generate", "&Generate", window.generate, ["Ctrl+Return", "Ctrl+Enter"])
    add(run, "cancel", "&Cancel", window.cancel, ["Esc"])
    live = add(run, "live", "&Live mode", lambda: window.panel.set_live(live.isChecked()))
    live.setCheckable(True)
    window.panel.live_changed.connect(live.setChecked)
    return actions


def _choose_model_folder(window) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Choose a diffusers model folder")
    if folder:
        window.load_model(folder)


def _choose_model_file(window) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Choose a checkpoint", "", "Safetensors (*.safetensors)")
    if path:
        window.load_model(path)


def _choose_output_dir(window) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Where Ctrl+S saves results", str(window.output_dir))
    if folder:
        window.output_dir = Path(folder)
        window.report(f"Results will be saved in {folder}")


def _use_result_as_sketch(window) -> None:
    outcome = window.shown_outcome()
    if outcome is None:
        window.report("There is no result yet to use as the sketch", error=True)
    else:
        window.files.use_image_as_sketch(outcome.image, "Using the result as the sketch")


def _resize(window, width: int, height: int) -> None:
    try:
        window.canvas.resize_canvas(width, height)
    except ValueError as error:
        window.report(str(error), error=True)


def _custom_size(window) -> None:
    size = window.canvas.canvas_size()
    text, ok = QInputDialog.getText(window, "Canvas size", "Width × height (multiples of 8, 64–2048):",
                                    text=f"{size.width()}x{size.height()}")
    if not ok:
        return
    try:
        width, height = (int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        window.report(f"'{text}' is not a size like 640x480", error=True)
        return
    _resize(window, width, height)
