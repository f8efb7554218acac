"""Issues 12.2 and 12.4: a crash leaves no orphan and no open run.

A private service (own Redis, RE Manager, data directory) on the session's simulated IOC,
driven through ``adscan up``/``down`` (the CLI) and the queue server API:

* ``environment_destroy`` in the middle of a scan: at the next environment open the partial
  run gets a stop document (``exit_status: abort`` with a reason) and its SPEC scan an
  ``exit_status = incomplete`` line; spec2nexus and silx read the file.
* ``kill -9`` of each process of the family in turn (watchdog, manager, worker) in the middle
  of a scan, then ``adscan down``: exit 0 only with no process of the family left, then
  ``adscan up``: the queue still holds the items behind the scan, every run is closed, the
  SPEC file reads, the next plan runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from bluesky_queueserver_api import BPlan
from helpers import CA_PORTS, TAG, spec_path, wait_for, write_iconfig
from spec2nexus.spec import SpecDataFile

from adscan import services
from adscan.core.config import load_iconfig
from adscan.services import procfamily

pytestmark = pytest.mark.timeout(900)

LONG = BPlan("adscan_scan", "m1", -1, 1, 400, frames=1)
BEHIND = BPlan("adscan_count", num=1, frames=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, beamline):
    cfg = load_iconfig(
        write_iconfig(tmp_path_factory.mktemp("family"), tag=TAG, ca_port=CA_PORTS[0])
    )
    up = cli(cfg, "up", "--no-ioc")
    assert up.returncode == 0, up.stdout + up.stderr
    yield cfg
    with contextlib.suppress(Exception):
        cli(cfg, "down")


def cli(cfg: dict, *words: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, ADSCAN_ICONFIG=cfg["_path"])
    return subprocess.run(
        [sys.executable, "-m", "adscan.cli", *words],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def family(cfg: dict) -> list[psutil.Process]:
    return procfamily.members(procfamily.marker(cfg, "re-manager"))


def roles(cfg: dict) -> dict[str, int]:
    """pids of the watchdog (pid file) and its two children: the manager (listens on the ZMQ
    control port) and the worker."""
    watchdog = services.re_manager_pid(cfg)
    assert watchdog, "no RE Manager started by adscan"
    port = int(cfg["queueserver"]["zmq_control_addr"].rsplit(":", 1)[1])
    children = psutil.Process(watchdog).children()
    assert len(children) == 2, children

    def listens(p: psutil.Process) -> bool:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port
            for c in p.net_connections("tcp")
        )

    manager = [c for c in children if listens(c)]
    assert len(manager) == 1, children
    worker = [c for c in children if c.pid != manager[0].pid]
    return {"watchdog": watchdog, "manager": manager[0].pid, "worker": worker[0].pid}


def spec_rows_of_last_scan(cfg: dict) -> int:
    path = spec_path(cfg)
    if not path.exists():
        return 0
    block = path.read_text().split("\n#S ")[-1]
    return sum(1 for ln in block.splitlines()[1:] if ln and not ln.startswith("#"))


def start_long_scan(api) -> tuple[str, str]:
    """Queue LONG then BEHIND, start; return both item uids once LONG is writing rows."""
    api.queue_clear()
    long_uid = api.item_add(LONG)["item"]["item_uid"]
    behind_uid = api.item_add(BEHIND)["item"]["item_uid"]
    api.queue_start()
    return long_uid, behind_uid


def open_run_uid(cfg: dict) -> str:
    files = list((Path(cfg["instrument"]["data_dir"]) / "run" / "open-runs").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())["uid"]


def check_closed(cfg: dict, uid: str, *, spec_incomplete: bool) -> None:
    """The run is closed in the catalog and the SPEC file, and both readers read the file."""
    from adscan.data import open_catalog

    run = open_catalog(cfg)[uid]
    stop = run.metadata["stop"]
    assert stop is not None, "the partial run has no stop document"
    assert stop["exit_status"] in ("abort", "fail"), stop
    if spec_incomplete:
        assert stop["exit_status"] == "abort" and "worker ended" in stop["reason"], stop
    path = spec_path(cfg)
    sdf = SpecDataFile(str(path))
    scans = [sdf.getScan(n) for n in sdf.getScanNumbers()]
    numbers = [int(n) for n in sdf.getScanNumbers()]
    assert numbers == sorted(set(numbers)), numbers
    for scan in scans:
        assert any("exit_status = " in c for c in scan.comments), f"scan {scan.scanNum} open"
    mine = [s for s in scans if any(c.endswith(f"uid = {uid}") for c in s.comments)]
    assert len(mine) == 1
    if spec_incomplete:
        assert mine[0].comments[-1].endswith("exit_status = incomplete (no stop document)")
    code = (
        "import sys\nfrom silx.io.specfile import SpecFile\nsf = SpecFile(sys.argv[1])\n"
        "print(len(sf), [sf[i].data.shape for i in range(len(sf))])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == str(len(scans))
    assert not list((Path(cfg["instrument"]["data_dir"]) / "run" / "open-runs").glob("*.json"))


def run_one(api) -> dict:
    n0 = api.status()["items_in_history"]
    api.queue_clear()
    api.item_add(BEHIND)
    api.queue_start()
    wait_for(
        lambda: (s := api.status())["manager_state"] == "idle" and s["items_in_history"] > n0,
        120,
        what="count completed",
    )
    return api.history_get()["items"][-1]


def test_environment_destroy_mid_scan_closes_the_run_at_next_open(stack):
    cfg = stack
    api = services.re_manager_api(cfg, timeout=10)
    try:
        start_long_scan(api)
        wait_for(lambda: spec_rows_of_last_scan(cfg) >= 3, 60, what="3 rows")
        uid = open_run_uid(cfg)
        api.environment_destroy()
        wait_for(lambda: not api.status()["worker_environment_exists"], 30, what="destroyed")
        services.open_environment(cfg)
        check_closed(cfg, uid, spec_incomplete=True)
        assert run_one(api)["result"]["exit_status"] == "completed"
    finally:
        api.close()


@pytest.mark.parametrize("role", ["watchdog", "manager", "worker"])
def test_kill9_of_each_family_member_mid_scan_then_down_up(stack, role):
    cfg = stack
    up = cli(cfg, "up", "--no-ioc")
    assert up.returncode == 0, up.stdout + up.stderr
    api = services.re_manager_api(cfg, timeout=10)
    try:
        _long_uid, behind_uid = start_long_scan(api)
        wait_for(lambda: spec_rows_of_last_scan(cfg) >= 3, 60, what="3 rows")
        uid = open_run_uid(cfg)
        pids = roles(cfg)
        os.kill(pids[role], signal.SIGKILL)
        time.sleep(1.0)
    finally:
        api.close()
    status = cli(cfg, "status", "--no-ioc")
    down = cli(cfg, "down")
    assert down.returncode == 0, f"{status.stdout}\n{down.stdout}\n{down.stderr}"
    assert family(cfg) == [], procfamily.describe(family(cfg))
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    up = cli(cfg, "up", "--no-ioc")
    assert up.returncode == 0, up.stdout + up.stderr
    api = services.re_manager_api(cfg, timeout=10)
    try:
        queue = [i["item_uid"] for i in api.queue_get()["items"]]
        assert behind_uid in queue, (role, queue)  # the queue survived
        check_closed(cfg, uid, spec_incomplete=False)
        assert run_one(api)["result"]["exit_status"] == "completed"
    finally:
        api.close()
    down = cli(cfg, "down")
    assert down.returncode == 0 and family(cfg) == [], down.stdout
