"""Peer suites: ophyd's and apstools' own EPICS tests, from the installed wheels, against the
simulator, on both ophyd control layers.

Nothing is copied into the repository: the test modules are collected from site-packages
(they match the installed library exactly).  Each suite runs in a ``python -m pytest``
subprocess with the project's plugin ``tests/peer/conftest_plugin.py`` and its own private
IOC (``python -m adscan.iocs``) serving the names the suite hard-codes:

* ophyd: motor ``XF:31IDA-OP{Tbl-Ax:X1}Mtr`` and detector ``ADSIM:`` (ophyd's conftest runs
  every test on both layers itself);
* apstools: motors ``gp:m1..m16``, bits ``gp:gp:bit1..20``, ``gp:UPTIME``, detector ``ad:``;
  run once per layer (``OPHYD_CONTROL_LAYER``), each run with its own IOC.

The three runs go concurrently (each IOC on its own CA port; clients search only theirs).
Every test must pass unless tests/peer/out_of_scope.yml lists it (out of scope: not run;
known gap: run, failure reported).  A skip is a failure: nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from adscan.ports import free_port

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE / "peer"


def _site(package: str) -> Path:
    import importlib

    return Path(importlib.import_module(package).__file__).parent


OPHYD_MODULES = ["tests/test_epicsmotor.py", "tests/test_areadetector.py"]
APSTOOLS_MODULES = [
    "devices/tests/test_SingleTrigger_V34.py",
    "devices/tests/test_adsingle.py",
    "devices/tests/test_area_detector_support.py",
    "devices/tests/test_issue651.py",
    "devices/tests/test_issue984_ad_factory.py",
    "devices/tests/test_motor_factory.py",
    "devices/tests/test_dict_device.py",
    "devices/tests/test_shutters.py",
    "utils/tests/test_findpv.py",
    "utils/tests/test_connect_pvlist.py",
    "callbacks/tests/test_nxwriter.py",
]

#: suite -> (package, modules, layer or None for both-in-one, IOC arguments)
SUITES = {
    "ophyd": (
        "ophyd",
        OPHYD_MODULES,
        None,
        [
            "--prefix-motors",
            "XF:31IDA-OP{Tbl-Ax:X1}",
            "--motor-names",
            "Mtr",
            "--prefix-ad",
            "ADSIM:",
        ],
    ),
    "apstools-caproto": (
        "apstools",
        APSTOOLS_MODULES,
        "caproto",
        [
            "--prefix-motors",
            "gp:",
            "--motor-names",
            ",".join(f"m{i}" for i in range(1, 17)),
            "--bits",
            "20",
            "--prefix-ad",
            "ad:",
        ],
    ),
    "apstools-pyepics": (
        "apstools",
        APSTOOLS_MODULES,
        "pyepics",
        [
            "--prefix-motors",
            "gp:",
            "--motor-names",
            ",".join(f"m{i}" for i in range(1, 17)),
            "--bits",
            "20",
            "--prefix-ad",
            "ad:",
        ],
    ),
}
SUITE_TIMEOUT = 900.0
IOC_TIMEOUT = 120.0
PASSING = {"passed", "xfailed", "xpassed"}


def test_peer_modules_are_shipped():
    """The suites exist in the installed wheels (a missing module would silently shrink them)."""
    missing = [
        f"{pkg}/{m}"
        for pkg, mods, _, _ in SUITES.values()
        for m in mods
        if not (_site(pkg) / m).is_file()
    ]
    assert not missing, f"not shipped in the installed wheels: {missing}"


def _env(port: int) -> dict[str, str]:
    """The suite's environment: the one launcher's (motor and AD IOC ports of this beamline)."""
    from adscan.services.ioc import ioc_env

    return ioc_env(port)


def _log(work: Path, name: str) -> Path:
    return work / f"ioc-{name}.log"


def _start_ioc(name: str, args: list[str], port: int, work: Path) -> subprocess.Popen:
    """Spawn the suite's IOC with the one launcher's command line (not waiting: the three
    peer IOCs start concurrently, then :func:`_wait_ready` waits for each)."""
    from adscan.services.ioc import ioc_argv
    from adscan.services.processes import spawn

    opts = dict(zip(args[::2], args[1::2], strict=True))  # SUITES: "--option value" pairs
    extra = [
        w for k, v in opts.items() if k not in ("--prefix-motors", "--prefix-ad") for w in (k, v)
    ]
    argv = ioc_argv(
        port=port,
        motors_prefix=opts["--prefix-motors"],
        ad_prefix=opts["--prefix-ad"],
        data_dir=work / f"ioc-data-{name}",
        velocity=10,
        extra=extra,
    )
    return spawn(argv, _log(work, name), env=_env(port))


def _wait_ready(proc: subprocess.Popen, name: str, work: Path) -> None:
    from adscan.services.ioc import wait_ready_line

    try:
        wait_ready_line(proc, _log(work, name), 0, IOC_TIMEOUT)
    except Exception as ex:
        proc.kill()
        raise RuntimeError(f"peer IOC {name} did not become ready: {ex}") from None


def _pytest_cmd(suite: str, work: Path) -> tuple[list[str], dict[str, str]]:
    pkg, modules, layer, _ = SUITES[suite]
    ini = work / "pytest.ini"
    ini.write_text("[pytest]\ntimeout = 180\n")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ini),
        "--rootdir",
        str(work),
        "-p",
        "conftest_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        "-W",
        "ignore::DeprecationWarning",
        f"--junitxml={work / f'{suite}.xml'}",
        *[str(_site(pkg) / m) for m in modules],
    ]
    env = {
        "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")]),
        "ADSCAN_PEER_RESULTS": str(work / f"{suite}.json"),
        "ADSCAN_PEER_IOC_TMP": str(work / "docker_ioc_iocad" / "tmp"),
    }
    if layer:
        env["OPHYD_CONTROL_LAYER"] = layer
    return cmd, env


@pytest.fixture(scope="module")
def peer_results(tmp_path_factory) -> dict[str, dict]:
    """Run every suite (concurrently, one private IOC each); return suite -> results."""
    root = tmp_path_factory.mktemp("peer")
    works = {s: root / s for s in SUITES}
    iocs, ports, runs = {}, {}, {}
    try:
        for suite, work in works.items():
            work.mkdir()
            ports[suite] = free_port(udp=True)
            iocs[suite] = _start_ioc(suite, SUITES[suite][3], ports[suite], work)
        for suite, proc in iocs.items():
            _wait_ready(proc, suite, works[suite])
        t0 = time.monotonic()
        for suite, work in works.items():
            cmd, extra = _pytest_cmd(suite, work)
            env = dict(_env(ports[suite]), **extra)
            out = open(work / "pytest.out", "w")  # noqa: SIM115 - closed below
            runs[suite] = (
                subprocess.Popen(cmd, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT),
                out,
            )
        results = {}
        for suite, (proc, out) in runs.items():
            try:
                proc.wait(timeout=max(1.0, SUITE_TIMEOUT - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
            path = works[suite] / f"{suite}.json"
            tail = (works[suite] / "pytest.out").read_text()[-4000:]
            results[suite] = {
                "rc": proc.returncode,
                "tests": json.loads(path.read_text()) if path.exists() else {},
                "tail": tail,
                "seconds": round(time.monotonic() - t0, 1),
            }
        _print_summary(results)
        return results
    finally:
        for proc, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc in iocs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _layer(key: str, suite: str) -> str:
    layer = SUITES[suite][2]
    if layer:
        return layer
    name = key.split("::", 1)[1]
    if "[caproto" in name:
        return "caproto"
    if "[pyepics" in name:
        return "pyepics"
    return "?"


def _print_summary(results: dict[str, dict]) -> None:
    sys.path.insert(0, str(PLUGIN_DIR))
    lines = ["", "peer suites (outcome counts per suite and control layer):"]
    for suite, res in results.items():
        by = Counter()
        for key, rec in res["tests"].items():
            mod = key.split("::", 1)[0].rsplit(".", 1)[-1]
            by[(mod, _layer(key, suite), rec["outcome"])] += 1
        mods = sorted({(m, layer) for m, layer, _ in by})
        for mod, layer in mods:
            counts = {o: n for (m, la, o), n in by.items() if (m, la) == (mod, layer)}
            text = " ".join(f"{o}={n}" for o, n in sorted(counts.items()))
            lines.append(f"  {suite:17} {layer:8} {mod:32} {text}")
        lines.append(f"  {suite:17} finished in {res['seconds']} s (rc={res['rc']})")
    print("\n".join(lines))


@pytest.mark.timeout(SUITE_TIMEOUT + 3 * IOC_TIMEOUT)
@pytest.mark.parametrize("suite", list(SUITES))
def test_peer_suite(peer_results, suite):
    from conftest_plugin import load_lists  # tests/peer on sys.path (see _print_summary)

    res = peer_results[suite]
    tests = res["tests"]
    assert tests, f"{suite}: no results (rc={res['rc']}):\n{res['tail']}"
    gaps = load_lists()["known_gaps"]
    import fnmatch

    def gap(key):
        return next((g for g in gaps if fnmatch.fnmatchcase(key, g["test"])), None)

    bad = {
        k: r
        for k, r in tests.items()
        if r["outcome"] not in PASSING | {"out_of_scope"} and gap(k) is None
    }
    ran = [k for k, r in tests.items() if r["outcome"] != "out_of_scope"]
    assert ran, f"{suite}: every test was deselected"
    layers = {_layer(k, suite) for k in ran}
    assert layers <= {"caproto", "pyepics"} and layers, layers
    msg = "\n".join(
        f"{k}: {r['outcome']}\n{r.get('message', '')[-600:]}" for k, r in sorted(bad.items())
    )
    assert not bad, f"{suite}: {len(bad)} peer tests failed or were skipped:\n{msg}"
    assert res["rc"] in (0, 1), f"{suite}: pytest exit code {res['rc']}:\n{res['tail']}"


@pytest.mark.timeout(SUITE_TIMEOUT + 3 * IOC_TIMEOUT)
def test_out_of_scope_entries_match(peer_results):
    """Every out-of-scope entry still names at least one collected test (no stale entries)."""
    sys.path.insert(0, str(PLUGIN_DIR))
    from conftest_plugin import load_lists

    used = {r.get("entry") for res in peer_results.values() for r in res["tests"].values()}
    stale = [e["test"] for e in load_lists()["out_of_scope"] if e["test"] not in used]
    assert not stale, f"out_of_scope.yml entries that match no test: {stale}"
