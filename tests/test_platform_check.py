"""Before Qt aborts: no display, or missing system libraries of its xcb plugin, said in one line."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sketchpad.platform_check import (XCB_PACKAGES, debian_package, display_problem, explain_missing,
                                      install_command, missing_libraries, uses_xcb, window_problem, xcb_plugins,
                                      xcb_problem)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
PYSIDE = Path(importlib.util.find_spec("PySide6").submodule_search_locations[0])
PLUGIN = PYSIDE / "Qt" / "plugins" / "platforms" / "libqxcb.so"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None,
                                reason="the xcb plugin and ldd exist on Linux only")


def test_recorded_debian_with_only_libxcb_cursor0():
    """The issue's machine: libxcb-cursor0 installed, two libraries still missing."""
    missing = missing_libraries((DATA / "ldd_libqxcb_without_icccm_keysyms.txt").read_text())
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]  # each once, though ldd lists them twice
    line = explain_missing(missing)
    assert "\n" not in line
    assert line.endswith(install_command(["libxcb-icccm4", "libxcb-keysyms1"]))
    assert "cursor" not in line


def test_recorded_fresh_debian12_needs_exactly_the_readme_packages():
    """ldd in a fresh `debootstrap --variant=minbase bookworm` with python3: every missing library
    maps to one of the packages, and every package is needed."""
    missing = missing_libraries((DATA / "ldd_libqxcb_fresh_debian12.txt").read_text())
    assert len(missing) == 25
    assert {debian_package(soname) for soname in missing} == set(XCB_PACKAGES)


def test_readme_names_every_package():
    readme = (ROOT / "README.md").read_text()
    assert install_command(XCB_PACKAGES) in readme
    assert "one system library" not in readme


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
@pytest.mark.parametrize("has_sudo", [False, True])
def test_the_install_line_works_as_root_and_as_a_user_without_a_question(tmp_path, has_sudo):
    """Run by a shell with stand-ins for apt-get (and sudo): a root shell may have no sudo, apt-get
    must not stop to ask (-y), and a fresh system has no package lists yet (update first)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    stand_ins = {"apt-get": f'echo "apt-get $*" >> {log}'}
    if has_sudo:
        stand_ins["sudo"] = f'echo sudo >> {log}; exec "$@"'
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!{shutil.which('sh')}\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "sh").symlink_to(shutil.which("sh"))  # PATH holds nothing else: no real sudo
    done = subprocess.run(["sh", "-c", install_command(["libxcb-icccm4", "libxcb-keysyms1"])],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["sudo"] * has_sudo + [
        "apt-get update", "apt-get install -y --no-install-recommends libxcb-icccm4 libxcb-keysyms1"]


@pytest.mark.parametrize("soname, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11-xcb.so.1", "libx11-xcb1"), ("libX11.so.6", "libx11-6"), ("libdbus-1.so.3", "libdbus-1-3"),
    ("libglib-2.0.so.0", "libglib2.0-0"), ("libGL.so.1", "libgl1"), ("libz.so.1", "zlib1g"),
    ("libQt6XcbQpa.so.6", None),
])
def test_debian_package_names(soname, package):
    assert debian_package(soname) == package


@linux_only
@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian/Ubuntu package database")
def test_package_names_agree_with_dpkg_for_installed_libraries():
    """For every system library the plugin resolves here, dpkg names the package we would name."""
    done = subprocess.run(["ldd", str(PLUGIN)], capture_output=True, text=True, check=True)
    checked = 0
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] != "=>" or str(PYSIDE) in parts[2] or parts[2] == "not":
            continue
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(parts[2]).replace("/usr/lib/", "/lib/", 1)],
                               capture_output=True, text=True)
        if owner.returncode != 0:  # usrmerge: the database may know the /usr path only
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(parts[2])], capture_output=True, text=True)
        if owner.returncode == 0:
            assert debian_package(parts[0]) == owner.stdout.split(":")[0], line
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("environ, platform, expected", [
    ({}, "linux", True), ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"QT_QPA_PLATFORM": "xcb:nograb;offscreen"}, "linux", True),
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False), ({"QT_QPA_PLATFORM": "wayland"}, "linux", False),
    ({"XDG_SESSION_TYPE": "wayland"}, "linux", False), ({}, "darwin", False), ({}, "win32", False),
])
def test_only_where_qt_tries_xcb(environ, platform, expected):
    assert uses_xcb(environ, platform) is expected


def _pyside_with_broken_xcb_plugin(root: Path) -> Path:
    """PySide6 as links to the real one, except a copy of libqxcb.so that needs a library no
    system has: the loader's lookup fails for real, as on a machine missing a package."""
    def mirror(src: Path, dst: Path, descend: list[str]) -> None:
        dst.mkdir(parents=True)
        for entry in src.iterdir():
            if descend and entry.name == descend[0]:
                mirror(entry, dst / entry.name, descend[1:])
            elif descend or entry.name != "libqxcb.so":
                (dst / entry.name).symlink_to(entry)
    mirror(PYSIDE, root / "PySide6", ["Qt", "plugins", "platforms"])
    data = PLUGIN.read_bytes()
    needed, absent = b"libxcb-shape.so.0\0", b"libxcb-nothe.so.0\0"  # same length: the ELF stays valid
    assert data.count(needed) == 1 and len(needed) == len(absent)
    (root / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so").write_bytes(data.replace(needed, absent))
    return root


@linux_only
def test_app_names_the_missing_library_instead_of_qt_aborting(tmp_path):
    """The real app started as the README says, against a PySide6 whose xcb plugin cannot load:
    one line and exit 2, not Qt's abort (134) blaming libxcb-cursor0."""
    fake = _pyside_with_broken_xcb_plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]), "QT_QPA_PLATFORM": "xcb",
           "DISPLAY": ":0"}
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    done = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    named, _, command = lines[0].partition("; install with: ")
    assert "libxcb-nothe.so.0" in named
    packages = command.split("--no-install-recommends ")[1].rstrip("'").split()
    assert "libxcb-nothe0" in packages
    # any other package named is one this machine really lacks
    really_missing = missing_libraries(subprocess.run(["ldd", str(PLUGIN)], capture_output=True, text=True).stdout)
    assert set(packages) - {"libxcb-nothe0"} == {debian_package(soname) for soname in really_missing}
    assert "libxcb-cursor" not in lines[0]


def _without_display(**extra) -> dict:
    environ = {key: value for key, value in os.environ.items()
               if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")}
    return {**environ, **extra}


@linux_only
def test_without_a_display_the_app_says_so_and_how_to_run_without_one(tmp_path):
    """As over ssh: the system libraries may all be there, yet Qt would abort (134) blaming
    libxcb-cursor0. One line instead: no display; `generate`, or a virtual display."""
    env = _without_display(PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no display" in lines[0] and "DISPLAY and WAYLAND_DISPLAY are unset" in lines[0]
    assert "python main.py generate SKETCH --prompt TEXT" in lines[0]
    assert "xvfb-run -a python main.py" in lines[0]
    assert "libxcb" not in lines[0] and "apt-get" not in lines[0]


@pytest.mark.parametrize("environ, expected", [
    ({}, "DISPLAY and WAYLAND_DISPLAY"), ({"QT_QPA_PLATFORM": "xcb"}, "DISPLAY is"),
    ({"QT_QPA_PLATFORM": "wayland-egl"}, "WAYLAND_DISPLAY is"),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "WAYLAND_DISPLAY and DISPLAY"),
    ({"DISPLAY": ":1"}, None), ({"WAYLAND_DISPLAY": "wayland-0"}, None),
    ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, None),
    ({"QT_QPA_PLATFORM": "offscreen"}, None), ({"QT_QPA_PLATFORM": "xcb;offscreen"}, None),
    ({"QT_QPA_PLATFORM": "vnc"}, None), ({"QT_QPA_PLATFORM": "minimal"}, None),
])
def test_a_display_is_needed_only_by_the_platforms_that_draw_on_one(environ, expected):
    problem = display_problem(environ, "linux", "sketchpad")
    if expected is None:
        assert problem is None
    else:
        assert f"no display ({expected}" in problem and "xvfb-run -a sketchpad" in problem


def test_offscreen_without_a_display_opens_the_window_as_before():
    """What the app asks before loading Qt: offscreen needs neither a display nor the xcb libraries."""
    assert window_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


@linux_only
def test_a_working_fallback_plugin_is_no_problem(tmp_path):
    """Qt falls back from QT_QPA_PLATFORM_PLUGIN_PATH to PySide6's own plugin: only when no
    plugin can load is there something to say."""
    fake = _pyside_with_broken_xcb_plugin(tmp_path) / "PySide6" / "Qt" / "plugins" / "platforms"
    environ = {"QT_QPA_PLATFORM": "xcb", "QT_QPA_PLATFORM_PLUGIN_PATH": str(fake)}
    assert xcb_plugins(environ)[0] == fake / "libqxcb.so"
    real = subprocess.run(["ldd", str(PLUGIN)], capture_output=True, text=True).stdout
    if missing_libraries(real):  # this machine itself lacks a package: then both are a problem
        assert xcb_problem(environ, "linux") is not None
    else:
        assert xcb_problem(environ, "linux") is None
