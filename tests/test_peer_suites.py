"""Peer suites: ophyd's and apstools' own EPICS tests, from the installed wheels, against the
simulator, on both ophyd control layers.

Nothing is copied into the repository: the test modules are collected from site-packages
(they match the installed library exactly).  Each suite runs in a ``python -m pytest``
subprocess with the project's plugin ``tests/peer/conftest_plugin.py`` and its own private
IOC (``python -m adscan.iocs``) serving the names the suite hard-codes:

* ophyd: motor ``XF:31IDA-OP{Tbl-Ax:X1}Mtr`` and detector ``ADSIM:``; ophyd's conftest runs
  every test on both layers: here each layer runs in its own process (pyepics and caproto
  never share one), one after the other on one IOC;
* apstools: motors ``gp:m1..m16``, bits ``gp:gp:bit1..20``, ``gp:UPTIME``, detector ``ad:``;
  run once per layer (``OPHYD_CONTROL_LAYER``), each run with its own IOC.

The three IOCs run concurrently, each on its own CA port block, away from the session's
beamlines' blocks; clients search only theirs.  A suite process that crashes fails its own
test, naming the test it died in; it cannot reach the session's beamline.
Every test must pass unless tests/peer/out_of_scope.yml lists it (out of scope: not run;
known gap: run, failure reported).  A skip is a failure: nothing is skipped silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

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

APSTOOLS_IOC = [
    "--prefix-motors",
    "gp:",
    "--motor-names",
    ",".join(f"m{i}" for i in range(1, 17)),
    "--bits",
    "20",
    "--prefix-ad",
    "ad:",
]
#: IOC name -> its command-line options ("--option value" pairs)
IOCS = {
    "ophyd": [
        "--prefix-motors",
        "XF:31IDA-OP{Tbl-Ax:X1}",
        "--motor-names",
        "Mtr",
        "--prefix-ad",
        "ADSIM:",
    ],
    "apstools-caproto": APSTOOLS_IOC,
    "apstools-pyepics": APSTOOLS_IOC,
}


@dataclass(frozen=True)
class Suite:
    package: str
    modules: list[str]
    layer: str  # ophyd control layer, each in its own process (no pyepics + caproto mix)
    ioc: str  # key of IOCS; suites sharing an IOC run one after the other


#: ophyd's conftest runs each test on both layers: one process per layer, one after the
#: other on one IOC (as ophyd runs them).  apstools: one run per layer, each with its IOC.
SUITES = {
    "ophyd-caproto": Suite("ophyd", OPHYD_MODULES, "caproto", "ophyd"),
    "ophyd-pyepics": Suite("ophyd", OPHYD_MODULES, "pyepics", "ophyd"),
    "apstools-caproto": Suite("apstools", APSTOOLS_MODULES, "caproto", "apstools-caproto"),
    "apstools-pyepics": Suite("apstools", APSTOOLS_MODULES, "pyepics", "apstools-pyepics"),
}
SUITE_TIMEOUT = 900.0
IOC_TIMEOUT = 120.0
#: at most this long a chain waits for the previous one's collection (see _run_chain)
COLLECT_WAIT = 60.0
PASSING = {"passed", "xfailed", "xpassed"}


def test_peer_modules_are_shipped():
    """The suites exist in the installed wheels (a missing module would silently shrink them)."""
    missing = [
        f"{s.package}/{m}"
        for s in SUITES.values()
        for m in s.modules
        if not (_site(s.package) / m).is_file()
    ]
    assert not missing, f"not shipped in the installed wheels: {missing}"


def _env(port: int) -> dict[str, str]:
    """The suite's environment: the one launcher's (motor and AD IOC ports of this beamline)."""
    from adscan.services.ioc import ioc_env

    return ioc_env(port)


def _log(work: Path, name: str) -> Path:
    return work / f"ioc-{name}.log"


def _ports(n: int) -> list[int]:
    """``n`` CA port blocks, distinct from each other and from the session's beamlines'
    (``helpers.CA_PORTS``, some not started yet): a peer IOC never answers in their place."""
    import helpers  # the session's ports (tests/ is on sys.path)

    from adscan.ports import CA_PORT_SPAN, free_port

    taken = {p + i for p in helpers.CA_PORTS for i in range(CA_PORT_SPAN)}
    return [free_port(udp=True, taken=taken) for _ in range(n)]


def _start_ioc(name: str, port: int, work: Path) -> subprocess.Popen:
    """Spawn IOC ``name`` with the one launcher's command line (not waiting: the peer IOCs
    start concurrently, then :func:`_wait_ready` waits for each)."""
    from adscan.services.ioc import ioc_argv
    from adscan.services.processes import spawn

    args = IOCS[name]
    opts = dict(zip(args[::2], args[1::2], strict=True))  # "--option value" pairs
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
    s = SUITES[suite]
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
        *[str(_site(s.package) / m) for m in s.modules],
    ]
    env = {
        "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")]),
        "ADSCAN_PEER_RESULTS": str(work / f"{suite}.jsonl"),
        "ADSCAN_PEER_IOC_TMP": str(work / "docker_ioc_iocad" / "tmp"),
        "OPHYD_CONTROL_LAYER": s.layer,
        "ADSCAN_PEER_LAYER": s.layer,
        "PYTHONFAULTHANDLER": "1",
    }
    return cmd, env


def _crash_report(out: str) -> str:
    """The faulthandler dump of a crashed run (its first lines name the thread that died)."""
    i = out.find("Fatal Python error")
    return out[i : i + 3000] if i >= 0 else out[-3000:]


def _started(work: Path, suite: str) -> bool:
    """True once the suite's first test started (its collection, the costly part, is over)."""
    path = work / f"{suite}.jsonl"
    return path.exists() and '"started"' in path.read_text()


def _run_chain(suites, port, works, deadline, results, after, collected) -> None:
    """Run ``suites`` one after the other against one IOC (called in a thread per IOC).

    Collection imports the libraries and connects the suites' module-level devices: the
    chains collect one at a time (``after``: the previous chain's ``collected``), so that
    on a loaded 2-core machine no connection waits behind three imports at once.
    """
    from conftest_plugin import read_results

    for i, suite in enumerate(suites):
        work = works[suite]
        cmd, extra = _pytest_cmd(suite, work)
        if i == 0 and after is not None:
            after.wait(COLLECT_WAIT)
        t0 = time.monotonic()
        with open(work / "pytest.out", "w") as out:
            proc = subprocess.Popen(
                cmd, env=dict(_env(port), **extra), cwd=work, stdout=out, stderr=subprocess.STDOUT
            )
            while proc.poll() is None and time.monotonic() < deadline:
                if not collected.is_set() and _started(work, suite):
                    collected.set()
                time.sleep(0.5)
            collected.set()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        text = (work / "pytest.out").read_text(errors="replace")
        results[suite] = {
            "rc": proc.returncode,
            "tests": read_results(work / f"{suite}.jsonl"),
            "tail": _crash_report(text) if proc.returncode < 0 else text[-4000:],
            "seconds": round(time.monotonic() - t0, 1),
        }


@pytest.fixture(scope="module")
def peer_results(tmp_path_factory) -> dict[str, dict]:
    """Run every suite (one private IOC per IOCS entry, the IOCs concurrently; suites sharing
    an IOC one after the other); return suite -> results."""
    import threading

    root = tmp_path_factory.mktemp("peer")
    works = {s: root / s for s in SUITES}
    for work in works.values():
        work.mkdir()
    chains = {name: [s for s, suite in SUITES.items() if suite.ioc == name] for name in IOCS}
    ports = dict(zip(IOCS, _ports(len(IOCS)), strict=True))
    iocs: dict[str, subprocess.Popen] = {}
    results: dict[str, dict] = {}
    try:
        for name in IOCS:
            iocs[name] = _start_ioc(name, ports[name], root)
        for name, proc in iocs.items():
            _wait_ready(proc, name, root)
        deadline = time.monotonic() + SUITE_TIMEOUT
        sys.path.insert(0, str(PLUGIN_DIR))
        collected = {n: threading.Event() for n in IOCS}
        after = dict(zip(IOCS, [None, *collected.values()], strict=False))
        threads = [
            threading.Thread(
                target=_run_chain,
                args=(chains[n], ports[n], works, deadline, results, after[n], collected[n]),
            )
            for n in IOCS
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, proc in iocs.items():
            if proc.poll() is not None:  # an IOC that died takes its suites' results with it
                for s in chains[name]:
                    results[s]["ioc_exit"] = proc.returncode
        _print_summary(results)
        return results
    finally:
        for proc in iocs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in iocs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _print_summary(results: dict[str, dict]) -> None:
    lines = ["", "peer suites (outcome counts per suite and module):"]
    for suite, res in results.items():
        by = Counter()
        for key, rec in res["tests"].items():
            mod = key.split("::", 1)[0].rsplit(".", 1)[-1]
            by[(mod, rec["outcome"])] += 1
        for mod in sorted({m for m, _ in by}):
            counts = {o: n for (m, o), n in by.items() if m == mod}
            text = " ".join(f"{o}={n}" for o, n in sorted(counts.items()))
            lines.append(f"  {suite:17} {mod:32} {text}")
        lines.append(f"  {suite:17} finished in {res['seconds']} s (rc={res['rc']})")
    print("\n".join(lines))


@pytest.mark.timeout(SUITE_TIMEOUT + 3 * IOC_TIMEOUT)
@pytest.mark.parametrize("suite", list(SUITES))
def test_peer_suite(peer_results, suite):
    import fnmatch

    from conftest_plugin import load_lists  # tests/peer on sys.path (see peer_results)

    res = peer_results[suite]
    tests = res["tests"]
    died = [k for k, r in tests.items() if r["outcome"] == "started"]
    assert res["rc"] in (0, 1) and "ioc_exit" not in res, (
        f"{suite}: pytest exit code {res['rc']}, IOC exit {res.get('ioc_exit')}"
        f" (running: {died}):\n{res['tail']}"
    )
    assert tests, f"{suite}: no results (rc={res['rc']}):\n{res['tail']}"
    gaps = load_lists()["known_gaps"]

    def gap(key):
        return next((g for g in gaps if fnmatch.fnmatchcase(key, g["test"])), None)

    bad = {
        k: r
        for k, r in tests.items()
        if r["outcome"] not in PASSING | {"out_of_scope"} and gap(k) is None
    }
    ran = [k for k, r in tests.items() if r["outcome"] != "out_of_scope"]
    assert ran, f"{suite}: every test was deselected"
    if SUITES[suite].package == "ophyd":  # ophyd's ids name the layer: only this one ran
        assert all(f"[{SUITES[suite].layer}" in k for k in ran), ran
    msg = "\n".join(
        f"{k}: {r['outcome']}\n{r.get('message', '')[-600:]}" for k, r in sorted(bad.items())
    )
    assert not bad, f"{suite}: {len(bad)} peer tests failed or were skipped:\n{msg}"


@pytest.mark.timeout(SUITE_TIMEOUT + 3 * IOC_TIMEOUT)
def test_out_of_scope_entries_match(peer_results):
    """Every out-of-scope entry still names at least one collected test (no stale entries).

    Deselections are recorded at collection, before any test runs, so a suite that crashed
    later still counts; a suite that did not even collect fails its own test, not this one.
    """
    from conftest_plugin import load_lists

    collected = {
        SUITES[s].package
        for s, res in peer_results.items()
        if any(r["outcome"] == "out_of_scope" for r in res["tests"].values())
    }
    used = {r.get("entry") for res in peer_results.values() for r in res["tests"].values()}
    stale = [
        e["test"]
        for e in load_lists()["out_of_scope"]
        if e["test"] not in used and e["test"].split(".", 1)[0] in collected
    ]
    assert collected, "no suite collected its tests"
    assert not stale, f"out_of_scope.yml entries that match no test: {stale}"
