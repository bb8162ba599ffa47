"""The log a bug report can carry: one folder for the window and the command line, causes chained and
written there, the libraries' chatter kept off the terminal; Help → Open log folder; settings that
are bad fall back to defaults with a trace, while a bug in reading them shows."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QDesktopServices

from sketchpad.cli import main
from sketchpad.core.params import GenerationParams
from sketchpad.core.registry import app_state_dir
from sketchpad.logs import BACKUPS, LOG_FILE, MAX_BYTES, log_folder, setup_logging
from sketchpad.ui import settings_store
from window_harness import make_window

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def our_log_handler_removed_afterwards():
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__module__ == "sketchpad.logs" or
                    isinstance(h, logging.NullHandler)]:
        root.removeHandler(handler)
        handler.close()


@pytest.mark.parametrize("xdg_data_home", [None, "data", "relative/ignored"])
def test_the_command_line_finds_the_windows_state_folder_without_qt(tmp_path, xdg_data_home):
    env = {key: value for key, value in os.environ.items() if key != "XDG_DATA_HOME"}
    env["HOME"] = str(tmp_path)
    if xdg_data_home is not None:
        env["XDG_DATA_HOME"] = str(tmp_path / xdg_data_home) if xdg_data_home == "data" else xdg_data_home
    code = ("from PySide6.QtCore import QCoreApplication, QStandardPaths; from sketchpad.core.registry import "
            "APP_NAME, ORGANIZATION_NAME; app = QCoreApplication([]); app.setApplicationName(APP_NAME); "
            "app.setOrganizationName(ORGANIZATION_NAME); "
            "print(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == app_state_dir(env, platform="linux")


def test_the_log_rotates_and_keeps_at_most_four_small_files(tmp_path, our_log_handler_removed_afterwards):
    path = setup_logging(tmp_path)
    assert path == log_folder(tmp_path) / LOG_FILE == tmp_path / "logs" / "sketchpad.log"
    log = logging.getLogger("sketchpad.test")
    for number in range(12_000):  # about 5 MiB of records
        log.info("record %05d %s", number, "x" * 400)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == [LOG_FILE] + [f"{LOG_FILE}.{n}" for n in range(1, BACKUPS + 1)]
    assert all((path.parent / name).stat().st_size <= MAX_BYTES for name in files)
    assert "record 11999" in path.read_text(encoding="utf-8")


def test_the_libraries_retries_go_to_the_log_not_the_terminal(tmp_path):
    say = ("import logging, huggingface_hub; {setup}"
           "logging.getLogger('huggingface_hub.utils._http').warning('Retrying in 1s [Retry 1/5].')")
    setup = f"from sketchpad.logs import setup_logging; setup_logging({str(tmp_path)!r}); "
    before = subprocess.run([sys.executable, "-c", say.format(setup="")], capture_output=True, text=True, cwd=ROOT)
    assert "Retrying in 1s" in before.stderr  # what a person saw, eleven lines of it
    after = subprocess.run([sys.executable, "-c", say.format(setup=setup)], capture_output=True, text=True, cwd=ROOT)
    assert after.returncode == 0 and after.stderr == ""
    assert "Retrying in 1s" in (tmp_path / "logs" / LOG_FILE).read_text(encoding="utf-8")


def test_a_failed_generate_leaves_its_cause_in_the_log_and_one_line_on_screen(
    capsys, tmp_path, monkeypatch, stick_figure, our_log_handler_removed_afterwards
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    stick_figure.save(tmp_path / "stick.png")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"garbage" * 10)
    code = main(["generate", str(tmp_path / "stick.png"), "--prompt", "x", "--model", str(broken),
                 "--device", "cpu", "--out", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    logged = (app_state_dir() / "logs" / LOG_FILE).read_text(encoding="utf-8")
    # the cause: what the header reader found wrong (an impossible header length), with its traceback
    assert "reading the header of" in logged and "Traceback" in logged and "ValueError: a header of" in logged
    code = main(["generate", str(broken), "--prompt", "x", "--out", str(tmp_path / "out.png")])  # not a picture
    assert code == 2 and "not an image file" in capsys.readouterr().err
    logged = (app_state_dir() / "logs" / LOG_FILE).read_text(encoding="utf-8")
    assert "generate failed" in logged and "UnidentifiedImageError" in logged  # the cause behind the line


def test_an_unwritable_state_folder_means_no_log_and_no_noise(tmp_path, capfd, our_log_handler_removed_afterwards):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert setup_logging(blocker) is None
    logging.getLogger("sketchpad.test").warning("nowhere to go")
    assert capfd.readouterr().err == ""


def test_help_opens_the_log_folder(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    class Desktop(QObject):
        def __init__(self):
            super().__init__()
            self.opened = []

        @Slot("QUrl")
        def open(self, url):
            self.opened.append(url.toLocalFile())

    desktop = Desktop()
    QDesktopServices.setUrlHandler("file", desktop, "open")
    try:
        window = make_window(qtbot, tmp_path, "someone/not-loaded")
        window.actions["log_folder"].trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert desktop.opened == [str(log_folder())] and log_folder().is_dir()
    assert log_folder() == tmp_path / "data" / "Sketchpad" / "Sketchpad" / "logs"


# ---- settings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [
    '"just text"', "[1, 2]", "5", '{"prompt": 5}', '{"prompt": "x", "loras": 3}', '{"prompt": "x", "loras": ["a"]}',
    '{"prompt": "x", "loras": [{"weight": 1}]}', '{"prompt": "x", "control": [1]}', '{"prompt": "x", "steps": "9"}',
    '{"prompt": "x", "control": {"model": "m"}}', '{"prompt": "x", "strength": 2}', "{not json",
])
def test_bad_remembered_settings_fall_back_to_defaults_with_a_trace(stored, caplog):
    with caplog.at_level(logging.WARNING, logger="sketchpad.ui.settings_store"):
        assert settings_store.params_from_json(stored) is None
    assert stored == "{not json" or "not usable" in caplog.text


def test_a_bug_in_reading_settings_is_not_taken_for_no_settings(monkeypatch):
    def broken(self):
        raise AttributeError("a bug in this code")

    monkeypatch.setattr(GenerationParams, "validated", broken)
    with pytest.raises(AttributeError, match="a bug"):
        settings_store.params_from_json('{"prompt": "x"}')
