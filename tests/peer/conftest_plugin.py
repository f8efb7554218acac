"""pytest plugin for the peer suites (ophyd's and apstools' own tests, run from the wheels).

Loaded with ``-p conftest_plugin`` by tests/test_peer_suites.py into a subprocess that runs
the installed test modules against a private simulator IOC.  It:

* registers the markers the suites use (motorsim, adsim, local);
* maps the docker paths apstools' CI uses (the IOC's ``/tmp`` seen by bluesky at
  ``/tmp/docker_ioc/iocad/tmp``) to one private directory ``ADSCAN_PEER_IOC_TMP``: the
  simulator runs on this machine, so the IOC-side and the bluesky-side paths are the same;
* deselects the tests listed as out of scope in ``out_of_scope.yml`` (beside this file);
* makes apstools' ``caput_AD`` (a pyepics ``caput`` without wait, after which ``stage``
  reads the readbacks through the device) wait for the put to complete and for the device's
  cached readback to catch up: the write and the device's monitors go over two CA circuits
  (two client libraries on the caproto layer), so ``stage`` could read a readback from
  before the write (a race in the test, seen in CI, not in the IOC; the test still compares
  every readback itself);
* on the pyepics layer, makes ophyd's ``release_pvs`` wait for the PV's metadata task
  (``pyepics_release.py``: clearing a channel that task still reads segfaults the client,
  bluesky/ophyd#937; seen in CI in ophyd's ``ad_prefix`` fixture);
* with ``ADSCAN_PEER_LAYER`` (ophyd's suite, whose conftest runs every test on both control
  layers), deselects the other layer's cases, so each layer runs in its own process;
* appends every test's outcome to ``ADSCAN_PEER_RESULTS`` (JSON lines, keyed
  ``<module>::<test name>``) as it goes: the deselected ones at collection, ``started``
  before a test runs, then its reports.  A process that crashes (a segfault in a control
  layer's C library) still leaves every result before the crash and names the test it
  died in.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
DOCKER_TMP = "/tmp/docker_ioc/iocad/tmp"
DOCKER_ROOT = "/tmp/docker_ioc/iocad"
#: Module globals of the apstools suites that hold IOC-side or bluesky-side paths.
PATH_GLOBALS = (
    "AD_IOC_MOUNT_PATH",
    "BLUESKY_MOUNT_PATH",
    "BLUESKY_FILES_ROOT",
    "BLUESKY_PATH",
    "WRITE_PATH_TEMPLATE",
    "READ_PATH_TEMPLATE",
)

_results: dict[str, dict] = {}


def _emit(key: str, rec: dict) -> None:
    """Append ``key``'s record to the results file (flushed: it survives a crash)."""
    out = os.environ.get("ADSCAN_PEER_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"key": key, **rec}) + "\n")


def read_results(path) -> dict[str, dict]:
    """The records of a results file (the last line per test wins); a test whose last
    record is ``started`` was running when the process ended."""
    results: dict[str, dict] = {}
    p = Path(path)
    if not p.exists():
        return results
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut by a crash
            continue
        results[rec.pop("key")] = rec
    return results


def load_lists() -> dict[str, list[dict]]:
    """``{"out_of_scope": [entry, ...], "known_gaps": [entry, ...]}``; an entry has ``test``
    (an fnmatch pattern of ``<module>::<test name>``), ``reason`` and optionally
    ``unless_marker`` (the entry covers only tests carrying none of those markers)."""
    raw = yaml.safe_load((HERE / "out_of_scope.yml").read_text()) or {}
    return {k: list(raw.get(k) or []) for k in ("out_of_scope", "known_gaps")}


def entry_for(item, entries: list[dict]) -> dict | None:
    key = item_key(item)
    for e in entries:
        if not fnmatch.fnmatchcase(key, e["test"]):
            continue
        unless = e.get("unless_marker") or []
        if unless and any(item.get_closest_marker(m) for m in unless):
            continue
        return e
    return None


def item_key(item) -> str:
    return f"{item.module.__name__}::{item.name}"


def _private_tmp() -> tuple[str, str] | None:
    tmp = os.environ.get("ADSCAN_PEER_IOC_TMP")
    if not tmp:
        return None
    return tmp, str(Path(tmp).parent)


def _map_path(value, ioc_side: bool):
    """A docker path (or, with ``ioc_side``, an IOC /tmp path) mapped to the private dir."""
    paths = _private_tmp()
    if paths is None:
        return value
    tmp, root = paths
    is_path = isinstance(value, Path)
    s = str(value) if is_path else value
    if not isinstance(s, str) or s.startswith(root):  # already mapped (private dir in /tmp)
        return value
    if s.startswith(DOCKER_TMP):
        s = tmp + s[len(DOCKER_TMP) :]
    elif s.startswith(DOCKER_ROOT):
        s = root + s[len(DOCKER_ROOT) :]
    elif ioc_side and (s == "/tmp" or s.startswith("/tmp/")):
        s = tmp + s[len("/tmp") :]
    return Path(s) if is_path else s


#: Seconds a patched ``caput_AD`` waits for its put to complete, then for the device's cache.
CAPUT_TIMEOUT = 10.0
CACHE_TIMEOUT = 5.0


def _same(a, b) -> bool:
    import numpy as np

    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def _caput_completed(signal, value) -> None:
    """apstools' ``caput_AD``, then wait until the device sees what the IOC holds.

    The put waits for completion (the IOC completes it after setting the readback), then the
    signal's cached readback (a monitor on the device's own CA circuit) is given up to
    ``CACHE_TIMEOUT`` s to equal a fresh read from the IOC.  A wrong readback still fails the
    test: it is compared by the test itself, as before.
    """
    import time

    import epics

    pv = signal._write_pv.pvname
    ret = epics.caput(pv, value, wait=True, timeout=CAPUT_TIMEOUT)
    if ret is None or ret < 0:  # not connected / not completed in time
        raise TimeoutError(f"caput {pv}={value!r} did not complete within {CAPUT_TIMEOUT} s")
    deadline = time.monotonic() + CACHE_TIMEOUT
    while time.monotonic() < deadline:
        if _same(signal.get(), signal.get(use_monitor=False)):
            return
        time.sleep(0.01)


def _patch_module(mod) -> None:
    if callable(getattr(mod, "caput_AD", None)):
        mod.caput_AD = _caput_completed
    for name in PATH_GLOBALS:
        if hasattr(mod, name):
            ioc_side = name in ("AD_IOC_MOUNT_PATH", "WRITE_PATH_TEMPLATE")
            setattr(mod, name, _map_path(getattr(mod, name), ioc_side))


def _patch_components(mod) -> None:
    """Path keyword arguments of the module's device classes' components (bound at import)."""
    try:
        from ophyd import Device
    except ImportError:  # pragma: no cover
        return
    for obj in list(vars(mod).values()):
        if not (isinstance(obj, type) and issubclass(obj, Device)):
            continue
        for cpt in getattr(obj, "_sig_attrs", {}).values():
            kw = getattr(cpt, "kwargs", None)
            if not isinstance(kw, dict):
                continue
            for key, ioc_side in (("write_path_template", True), ("read_path_template", False)):
                if key in kw:
                    kw[key] = _map_path(kw[key], ioc_side)


def _patch_params(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _patch_params(v)
        return obj
    if isinstance(obj, list):
        obj[:] = [_patch_params(v) for v in obj]
        return obj
    return _map_path(obj, ioc_side=False)


def pytest_configure(config):
    for marker in (
        "motorsim: needs the motor IOC",
        "adsim: needs the area detector IOC",
        "local: apstools tests run locally only",
    ):
        config.addinivalue_line("markers", marker)
    if os.environ.get("ADSCAN_PEER_LAYER") == "pyepics":
        import ophyd
        from ophyd import _pyepics_shim
        from pyepics_release import patch

        patch(_pyepics_shim, (ophyd.cl,))
    if _private_tmp() is not None:
        Path(_private_tmp()[0]).mkdir(parents=True, exist_ok=True)
        try:
            import apstools.tests as aps_tests
        except ImportError:  # pragma: no cover - apstools is a dependency
            return
        _patch_module(aps_tests)


def _layer_of(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("cl_selector") if callspec is not None else None


def pytest_collection_modifyitems(config, items):
    lists = load_lists()
    layer = os.environ.get("ADSCAN_PEER_LAYER")
    keep, drop, other = [], [], []
    seen = set()
    for item in items:
        mod = item.module
        apstools = mod.__name__.startswith("apstools.")
        if apstools and id(mod) not in seen:
            seen.add(id(mod))
            _patch_module(mod)
            _patch_components(mod)
        if apstools and getattr(item, "callspec", None) is not None:
            for v in item.callspec.params.values():
                _patch_params(v)
        if layer and _layer_of(item) not in (None, layer):
            other.append(item)  # run by the other layer's process
            continue
        entry = entry_for(item, lists["out_of_scope"])
        if entry is not None:
            drop.append(item)
            rec = {"outcome": "out_of_scope", "reason": entry["reason"], "entry": entry["test"]}
            _results[item_key(item)] = rec
            _emit(item_key(item), rec)
        else:
            keep.append(item)
    if drop or other:
        config.hook.pytest_deselected(items=drop + other)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    _emit(item_key(item), {"outcome": "started"})


def pytest_runtest_logreport(report):
    key = report.nodeid
    item_key_ = getattr(report, "_adscan_key", None) or key
    rec = _results.setdefault(item_key_, {"outcome": "passed"})
    if report.when == "call" or report.failed or report.skipped:
        if hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfailed"
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "passed"
        if rec["outcome"] in ("passed", "xpassed") or outcome in ("failed", "error"):
            rec["outcome"] = outcome
        if report.failed or report.skipped:
            rec.setdefault("message", str(report.longrepr)[-1500:])
    rec["seconds"] = rec.get("seconds", 0.0) + report.duration
    if report.when == "teardown":  # runs after every setup, failed or not
        _emit(item_key_, rec)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result()._adscan_key = item_key(item)
