"""Before Qt opens a window on Linux: is there a display, and can Qt's xcb platform plugin load?

Without a display, or when a system library of the plugin is missing, Qt aborts (exit 134) with a
message that blames libxcb-cursor0 whatever is wrong. So the display variables are looked at first,
then `ldd` on the plugin lists every library the loader cannot find; each maps to the Debian/Ubuntu
package that ships it. Either way the person gets one line saying what to do instead. Imports
neither Qt nor torch.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

# What `apt-get install` needs so that the xcb plugin and the Qt libraries it loads find every
# library they link to directly (found with readelf -d on PySide6's libqxcb.so, libQt6XcbQpa,
# libQt6Gui, libQt6Widgets, libQt6DBus, libQt6Core), minus the few no Debian lacks (libc6,
# libgcc-s1, libstdc++6, zlib1g, libzstd1: apt itself needs them). apt pulls in what these need.
XCB_PACKAGES = (
    "libdbus-1-3", "libegl1", "libfontconfig1", "libfreetype6", "libgl1", "libglib2.0-0",
    "libx11-6", "libx11-xcb1", "libxcb1", "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0",
    "libxcb-keysyms1", "libxcb-randr0", "libxcb-render0", "libxcb-render-util0", "libxcb-shape0",
    "libxcb-shm0", "libxcb-sync1", "libxcb-util1", "libxcb-xfixes0", "libxcb-xkb1", "libxkbcommon0",
    "libxkbcommon-x11-0",
)
# Libraries whose Debian package name does not follow the soname (Debian policy 8.1: the name
# part, a hyphen when it ends in a digit, then the soname version).
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0", "libgio-2.0.so.0": "libglib2.0-0",
    "libgmodule-2.0.so.0": "libglib2.0-0", "libz.so.1": "zlib1g", "libgcc_s.so.1": "libgcc-s1",
    "libGLdispatch.so.0": "libglvnd0", "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1", "libharfbuzz.so.0": "libharfbuzz0b",
    **{glibc: "libc6" for glibc in ("libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1")},
}
# The platform plugins that need a display, and the variable that names it.
_DISPLAY_VARIABLE = {"xcb": "DISPLAY", "wayland": "WAYLAND_DISPLAY"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.MULTILINE)
EXIT_MISSING = 2


def debian_package(soname: str) -> str | None:
    """The Debian/Ubuntu package that ships a library, or None for PySide6's own Qt libraries."""
    if soname.startswith("libQt6") or soname.startswith(("libpyside6", "libshiboken6")):
        return None
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    name, _, version = soname.partition(".so.")
    if not version:
        return name.lower()
    return f"{name.lower()}{'-' if name[-1].isdigit() else ''}{version}"


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames ldd reports as not found, each once, in ldd's order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def explain_missing(missing: list[str]) -> str:
    """One line: what is missing and the command that installs it."""
    packages = list(dict.fromkeys(p for p in map(debian_package, missing) if p))
    ours = [soname for soname in missing if debian_package(soname) is None]
    fixes = []
    if packages:
        fixes.append(install_command(packages))
    if ours:
        fixes.append("pip install --force-reinstall PySide6 (its own Qt libraries are incomplete)")
    return (f"Qt cannot open a window: its xcb platform plugin is missing {', '.join(missing)}; "
            f"install with: {' and '.join(fixes)}")


def install_command(packages) -> str:
    """One shell line that installs Debian/Ubuntu packages without asking anything, as root (which
    may have no sudo) and as a user with sudo; it updates the package lists first, which a fresh
    system lacks."""
    return (f"$(command -v sudo) sh -c 'apt-get update && apt-get install -y --no-install-recommends "
            f"{' '.join(packages)}'")


def xcb_plugins(environ=os.environ) -> list[Path]:
    """The libqxcb.so files Qt may load, in its order: QT_QPA_PLATFORM_PLUGIN_PATH first, then
    PySide6's own (Qt falls back to it when the first will not load)."""
    folders = [Path(p) for p in environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep) if p]
    spec = importlib.util.find_spec("PySide6")  # finds the package without loading any Qt library
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) / "Qt" / "plugins" / "platforms" for p in spec.submodule_search_locations]
    return [f / "libqxcb.so" for f in folders if (f / "libqxcb.so").is_file()]


def named_platforms(environ=os.environ) -> list[str]:
    """The platform plugins QT_QPA_PLATFORM names, in the order Qt tries them, without options."""
    names = (entry.split(":")[0].strip() for entry in environ.get("QT_QPA_PLATFORM", "").split(";"))
    return [name for name in names if name]


def uses_xcb(environ=os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will try xcb first: on Linux when QT_QPA_PLATFORM names it or is unset, except
    in a Wayland session, where Qt prefers its Wayland plugin."""
    if not platform.startswith("linux"):
        return False
    named = named_platforms(environ)
    if named:
        return named[0] == "xcb"
    return environ.get("XDG_SESSION_TYPE", "") != "wayland"


def display_problem(environ=os.environ, platform: str = sys.platform, program: str = "python main.py") -> str | None:
    """The one-line explanation when every platform Qt may use needs a display and none is set
    (over ssh, in a container), else None. A platform without a display (offscreen, vnc, eglfs)
    named in QT_QPA_PLATFORM is left to Qt."""
    if not platform.startswith("linux"):
        return None
    tried = named_platforms(environ) or list(_DISPLAY_VARIABLE)  # unset: Qt picks by the session
    kinds = [next((kind for kind in _DISPLAY_VARIABLE if name.startswith(kind)), None) for name in tried]
    if None in kinds:
        return None
    variables = list(dict.fromkeys(_DISPLAY_VARIABLE[kind] for kind in kinds))
    if any(environ.get(variable) for variable in variables):
        return None
    return (f"Sketchpad cannot open its window: there is no display ({' and '.join(variables)} "
            f"{'is' if len(variables) == 1 else 'are'} unset, as over plain ssh). Without a window: "
            f"{program} generate SKETCH --prompt TEXT; on a virtual display: xvfb-run -a {program} "
            f"(package xvfb)")


def window_problem(environ=os.environ, platform: str = sys.platform, program: str = "python main.py") -> str | None:
    """Why Qt could not open a window, in one line, or None when nothing is known to stop it."""
    return display_problem(environ, platform, program) or xcb_problem(environ, platform)


def xcb_problem(environ=os.environ, platform: str = sys.platform) -> str | None:
    """The one-line explanation when no xcb plugin can load, else None. Silent when ldd or the
    plugin is not there: then nothing better than Qt's own message can be said."""
    if not uses_xcb(environ, platform):
        return None
    first_missing = None
    for plugin in xcb_plugins(environ):
        try:
            done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30,
                                  env={**environ, "LC_ALL": "C"})
        except (OSError, subprocess.SubprocessError):
            return None
        missing = missing_libraries(done.stdout)
        if not missing:
            return None
        first_missing = first_missing or missing
    return explain_missing(first_missing) if first_missing else None
