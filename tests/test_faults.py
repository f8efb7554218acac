"""Faults with real processes on loopback (issue 6, items 1-4).

A private stack on the spare session CA port ``CA_PORTS[1]``: its own simulated IOC (256x256
frames, started by ``services.up``), Redis, RE Manager, data directory and iconfig, so these
tests may kill and restart the IOC, Redis and the RE Manager without touching other modules.

1. IOC killed mid-scan: the plan fails within ``IOC_LOSS_BOUND`` s naming a PV, the manager
   answers, the run is closed in the catalog and SPEC file, the HDF5 file is readable; after
   the IOC is back the next queued plan completes (recovery is automatic).
2. RE Manager SIGKILLed with items queued: restarted, queue and history intact, queue runs.
3. Redis restarted idle and mid-plan: no queue item lost or duplicated.
4. Image directory unusable / file size limit: the plan fails with a clear message before
   or at the first frame; files written before are unchanged (hashed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - LZ4 filter for h5py
import numpy as np
import psutil
import pytest
import yaml
from bluesky_queueserver_api import BPlan
from conftest import CA_PORTS, SESSION_DIR, TAG, write_iconfig

from adscan import services
from adscan.config import load_iconfig

pytestmark = pytest.mark.timeout(240)

QSERVER = str(Path(sys.executable).with_name("qserver"))

#: Seconds within which a plan must fail once its IOC is gone.
IOC_LOSS_BOUND = 30.0

_ENV_KEYS = ("ADSCAN_ICONFIG", "EPICS_CA_SERVER_PORT", "EPICS_CAS_SERVER_PORT",
             "EPICS_CA_ADDR_LIST")


@contextlib.contextmanager
def stack_env(cfg: dict):
    """``os.environ`` as the private stack's children need it; the session's restored after."""
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    os.environ["ADSCAN_ICONFIG"] = cfg["_path"]
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_stack_config(name: str, ca_port: int, **epics) -> dict:
    """A private iconfig: own prefixes, ports, data dir; small frames, fast motors."""
    path = write_iconfig(SESSION_DIR / name, tag=f"{TAG}{name[:2]}", ca_port=ca_port)
    raw = yaml.safe_load(path.read_text())
    raw["ioc"]["frame_shape"] = [256, 256]
    raw["ioc"]["motor_velocity"] = 50.0
    raw["epics"].update(epics)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_iconfig(path)


def stack_up(cfg: dict, ioc: bool = True) -> None:
    with stack_env(cfg):
        services.up(cfg, ioc=ioc)


def qserver(cfg: dict, *words: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, QSERVER_ZMQ_CONTROL_ADDRESS=cfg["queueserver"]["zmq_control_addr"],
               QSERVER_ZMQ_INFO_ADDRESS=cfg["queueserver"]["zmq_info_addr"])
    proc = subprocess.run([QSERVER, *words], capture_output=True, text=True, env=env, timeout=30)
    if check:
        assert proc.returncode == 0, f"qserver {' '.join(words)}: {proc.stdout}\n{proc.stderr}"
    return proc


def wait_for(predicate, timeout: float, period: float = 0.1, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(period)


def wait_idle(api, n_history: int, timeout: float = 60.0) -> list[dict]:
    """Wait for an idle manager with ``n_history`` history items; return the new ones."""
    wait_for(lambda: (s := api.status())["manager_state"] == "idle"
             and s["items_in_history"] >= n_history, timeout, what=f"{n_history} in history")
    return api.history_get()["items"]


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spec_path(cfg: dict) -> Path:
    return Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]


def spec_scan_block(cfg: dict, uid: str) -> str:
    """The text of the SPEC scan whose ``#C uid = ...`` line names ``uid``."""
    text = spec_path(cfg).read_text()
    blocks = [b for b in text.split("\n#S ") if f"uid = {uid}" in b]
    assert len(blocks) == 1, f"{len(blocks)} SPEC scans for uid {uid}"
    return "#S " + blocks[0]


def spec_rows(block: str) -> list[list[float]]:
    return [[float(x) for x in line.split()] for line in block.splitlines()
            if line and not line.startswith("#")]


def catalog_run(cfg: dict, uid: str):
    from adscan.catalog import open_catalog

    return open_catalog(cfg)[uid]


def data_files(cfg: dict) -> dict[str, str]:
    """sha256 of every file below the images, catalog and SPEC directories."""
    out = {}
    for key in (cfg["detector"]["read_path"], cfg["catalog"]["directory"],
                cfg["spec"]["directory"]):
        for p in sorted(Path(key).rglob("*")):
            if p.is_file():
                out[str(p)] = sha(p)
    return out


def ioc_pid(cfg: dict) -> int:
    pid = services._ioc_pid(cfg)
    assert pid, "the private IOC is not running"
    return pid


def kill(pid: int, sig=signal.SIGKILL) -> None:
    os.kill(pid, sig)
    wait_for(lambda: not services._alive(pid), 10, what=f"pid {pid} gone")


@pytest.fixture(scope="module")
def stack():
    cfg = make_stack_config("faults", CA_PORTS[1])
    stack_up(cfg)
    api = services.re_manager_api(cfg, timeout=10)
    yield cfg, api
    with contextlib.suppress(Exception):
        api.close()
    with stack_env(cfg):
        services.down(cfg)


def run_plan(api, plan: BPlan, timeout: float = 60.0) -> dict:
    """Queue ``plan``, start the queue, wait; return its history item."""
    n0 = api.status()["items_in_history"]
    assert api.item_add(plan)["success"]
    api.queue_start()
    return wait_idle(api, n0 + 1, timeout)[-1]


# --------------------------------------------------------------------------------- 1. IOC lost


def test_ioc_lost_mid_scan(stack):
    cfg, api = stack
    before = run_plan(api, BPlan("adscan_count", num=2, frames=2))
    assert before["result"]["exit_status"] == "completed", before["result"]
    n0 = api.status()["items_in_history"]
    assert api.item_add(BPlan("adscan_scan", "m1", -1, 1, 400, frames=2))["success"]
    api.queue_start()
    from adscan.catalog import open_catalog

    cat = open_catalog(cfg)
    # kill once the run has several points in the SPEC file
    wait_for(lambda: api.status()["manager_state"] == "executing_queue", 20)
    time.sleep(2.0)
    t_kill = time.monotonic()
    kill(ioc_pid(cfg))
    wait_for(lambda: api.status()["items_in_history"] > n0, IOC_LOSS_BOUND + 30,
             what="plan failed")
    elapsed = time.monotonic() - t_kill
    item = api.history_get()["items"][-1]
    print(f"plan ended {elapsed:.1f} s after the IOC was killed: {item['result']['msg'][:300]}")
    assert elapsed < IOC_LOSS_BOUND
    assert api.status()["manager_state"] == "idle"
    del cat
