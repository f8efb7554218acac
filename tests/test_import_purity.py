"""Importing any adscan module but the start-up one does no work: no socket, no file written,
no configuration file read (BITS' import-purity test).  Each module is imported in a fresh
subprocess with ``socket`` and ``open`` watched (what libraries do when they are imported is
theirs, not counted); and the mapped packages refuse bare names.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest
from helpers import REPO

#: The start-up module composes on import; ``__main__`` modules run on import.
STARTUP = {"adscan.instrument", "adscan.iocs.__main__"}

WATCH = r'''
import builtins, io, json, os, socket, sys
REPO = sys.argv[2]
seen = []
def ours():
    """Whether adscan's code did it: walking out from the event, a frame of the repository
    comes before the import machinery (else it is a library's own import-time work)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib._bootstrap" in name or name.startswith("<frozen importlib"):
            return False
        if name.startswith(REPO) and "/.venv/" not in name:
            return True
        frame = frame.f_back
    return False
def note(kind, what):
    if ours():
        seen.append(f"{kind} {what}")
for name in ("connect", "connect_ex", "bind", "sendto", "listen"):
    orig = getattr(socket.socket, name)
    def watched(self, *args, _name=name, _orig=orig):
        note("socket." + _name, args[:1])
        return _orig(self, *args)
    setattr(socket.socket, name, watched)
_open = builtins.open
def watched_open(file, mode="r", *args, **kwargs):
    text = str(file)
    if any(c in mode for c in "wax+"):
        note("open-for-writing", text)
    elif text.endswith((".yml", ".yaml")):
        note("yaml-read", text)
    return _open(file, mode, *args, **kwargs)
builtins.open = io.open = watched_open
_os_open = os.open
def watched_os_open(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        note("os.open-for-writing", str(path))
    return _os_open(path, flags, *args, **kwargs)
os.open = watched_os_open
import importlib
importlib.import_module(sys.argv[1])
print("SEEN " + json.dumps(seen))
'''


def adscan_modules() -> list[str]:
    import adscan

    names = ["adscan"]
    for info in pkgutil.walk_packages(adscan.__path__, "adscan."):
        names.append(info.name)
    for sub in ("devices", "plans", "iocs"):  # mapped packages (pyproject package-dir)
        pkg = __import__(f"adscan.{sub}", fromlist=["x"])
        names.append(pkg.__name__)
        names += [i.name for i in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}.")]
    return sorted(set(names) - STARTUP)


MODULES = adscan_modules()


def test_every_package_is_covered():
    for expected in (
        "adscan.services.ioc",
        "adscan.callbacks.specfile",
        "adscan.data.plots",
        "adscan.core.startup",
        "adscan.plans.scans",
        "adscan.devices.area_detector",
        "adscan.iocs.server",
    ):
        assert expected in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_import_does_no_work(module, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", WATCH, module, str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("SEEN "))
    seen = json.loads(line[5:])
    assert seen == [], f"importing {module}: {seen}"
    assert list(tmp_path.iterdir()) == [], "a file was written in the working directory"


@pytest.mark.parametrize("bare", ["devices", "plans", "iocs"])
def test_mapped_packages_refuse_bare_names(bare):
    out = subprocess.run(
        [sys.executable, "-c", f"import {bare}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode != 0
    assert "ImportError" in out.stderr and f"adscan.{bare}" in out.stderr, out.stderr[-2000:]
