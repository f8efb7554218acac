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
import functools
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - LZ4 filter for h5py
import numpy as np
import psutil
import pytest
from bluesky_queueserver_api import BPlan
from helpers import (
    catalog_run,
    kill,
    sha,
    spec_path,
    spec_rows,
    spec_scan_block,
    wait_for,
    wait_idle,
)
from helpers import qserver as _qserver

from adscan import services

pytestmark = pytest.mark.timeout(240)


#: Seconds within which a plan must fail once its IOC is gone.
IOC_LOSS_BOUND = 30.0

#: The CLI with this module's 30 s bound per call.
qserver = functools.partial(_qserver, timeout=30)


def data_files(cfg: dict) -> dict[str, str]:
    """sha256 of every file below the images, catalog and SPEC directories."""
    out = {}
    for key in (
        cfg["detector"]["read_path"],
        cfg["catalog"]["directory"],
        cfg["spec"]["directory"],
    ):
        for p in sorted(Path(key).rglob("*")):
            if p.is_file():
                out[str(p)] = sha(p)
    return out


def ioc_pid(cfg: dict) -> int:
    pid = services.ioc_pid(cfg)
    assert pid, "the private IOC is not running"
    return pid


def run_plan(api, plan: BPlan, timeout: float = 60.0) -> dict:
    """Queue ``plan``, start the queue, wait; return its history item."""
    n0 = api.status()["items_in_history"]
    assert api.item_add(plan)["success"]
    api.queue_start()
    return wait_idle(api, n0 + 1, timeout)[-1]


# --------------------------------------------------------------------------------- 1. IOC lost


def check_hdf5_matches_run(run, frames: int) -> int:
    """Every frame of the run's HDF5 file reads; the recorded points match it; return frames."""
    from adscan.data.catalog import image_files

    ds = run.primary.read()
    points = len(ds["time"])
    files = image_files(run)
    assert len(files) == 1, files
    with h5py.File(files[0], "r", locking=False) as f:
        data = f["/entry/data/data"]
        uid = f["/entry/instrument/NDAttributes/NDArrayUniqueId"][()]
        n = data.shape[0]
        assert n >= points * frames, (n, points, frames)
        assert len(uid) == n and np.all(np.diff(uid) == 1)
        for k in range(n):  # every frame decompresses
            assert data[k].shape == (256, 256)
        for p in range(points):
            last = data[frames * p + frames - 1]
            assert int(last.sum()) == int(ds["simdet_stats1_total"].values[p]), p
            assert int(uid[frames * p + frames - 1]) == int(ds["simdet_stats1_unique_id"].values[p])
    return n


def test_ioc_lost_mid_scan_then_recovers(stack):
    cfg, api = stack
    before = run_plan(api, BPlan("adscan_count", num=2, frames=2))
    assert before["result"]["exit_status"] == "completed", before["result"]
    n0 = api.status()["items_in_history"]
    assert api.item_add(BPlan("adscan_scan", "m1", -1, 1, 400, frames=2))["success"]
    api.queue_start()
    # kill the IOC once the run has a few points in the SPEC file
    text0 = spec_path(cfg).read_text()
    wait_for(
        lambda: len(spec_rows(spec_path(cfg).read_text()[len(text0) :])) >= 5,
        30,
        what="5 SPEC rows",
    )
    t_kill = time.monotonic()
    kill(ioc_pid(cfg))
    wait_for(lambda: api.status()["items_in_history"] > n0, IOC_LOSS_BOUND + 30, what="plan failed")
    elapsed = time.monotonic() - t_kill
    st = api.status()  # the manager answers
    assert st["manager_state"] == "idle" and st["worker_environment_exists"], st
    item = api.history_get()["items"][-1]
    res = item["result"]
    print(f"\nIOC killed: plan failed after {elapsed:.1f} s: {res['msg'][:300]}")
    assert elapsed < IOC_LOSS_BOUND
    assert res["exit_status"] == "failed", res
    assert (
        "disconnected" in res["msg"]
        and cfg["ioc"]["motors_prefix"] in res["msg"]
        or cfg["ioc"]["ad_prefix"] in res["msg"]
    ), res["msg"]
    # the partial run: closed with 'fail' in the catalog and the SPEC file, frames readable
    uid = res["run_uids"][-1]
    run = catalog_run(cfg, uid)
    assert run.metadata["stop"]["exit_status"] == "fail", run.metadata["stop"]
    points = len(run.primary.read()["time"])
    assert 5 <= points < 400
    block = spec_scan_block(cfg, uid)
    assert "#C" in block and "exit_status = fail" in block, block[-500:]
    assert len(spec_rows(block)) == points
    check_hdf5_matches_run(run, frames=2)
    # the failed item went back to the queue: drop it, restart the IOC, run the next plan
    assert [i["name"] for i in api.queue_get()["items"]] == ["adscan_scan"]
    api.queue_clear()
    services.ensure_ioc(cfg)
    t_up = time.monotonic()
    after = run_plan(api, BPlan("adscan_scan", "m1", -0.5, 0.5, 5, frames=2))
    print(f"IOC restarted: the next plan completed {time.monotonic() - t_up:.1f} s later")
    assert after["result"]["exit_status"] == "completed", after["result"]
    run = catalog_run(cfg, after["result"]["run_uids"][0])
    assert run.metadata["stop"]["exit_status"] == "success"
    assert check_hdf5_matches_run(run, frames=2) == 10
    # the configured exposure is back (the restarted IOC came up with AcquireTime 1.0)
    baseline = run.baseline.read()
    assert float(baseline["simdet_cam_acquire_time"].values[0]) == pytest.approx(
        cfg["detector"]["acquire_time"]
    )


# ------------------------------------------------------------- 4. unusable image dir, disk full


def caget(pv: str) -> float:
    from caproto.threading.client import Context

    ctx = Context()
    try:
        (chan,) = ctx.get_pvs(pv, timeout=5)
        chan.wait_for_connection(timeout=5)
        return float(chan.read(timeout=5).data[0])
    finally:
        ctx.disconnect()


def test_image_directory_not_a_directory(stack):
    """``images/`` replaced by a file (root ignores chmod): refused before anything moves."""
    cfg, api = stack
    images = Path(cfg["detector"]["read_path"])
    saved = images.with_name("images.saved")
    before = data_files(cfg)
    spec_before = sha(spec_path(cfg))
    m1 = caget(f"{cfg['ioc']['motors_prefix']}m1.RBV")
    images.rename(saved)
    images.write_text("not a directory\n")
    try:
        item = run_plan(api, BPlan("adscan_scan", "m1", m1 + 0.5, m1 + 1.0, 3, frames=2))
    finally:
        images.unlink()
        saved.rename(images)
    res = item["result"]
    print(f"\nimage dir is a file: {res['msg']}")
    assert res["exit_status"] == "failed" and res["run_uids"] == [], res
    assert f"image directory {images}" in res["msg"] and "not a directory" in res["msg"]
    assert caget(f"{cfg['ioc']['motors_prefix']}m1.RBV") == pytest.approx(m1, abs=1e-6)
    assert data_files(cfg) == before
    assert sha(spec_path(cfg)) == spec_before
    api.queue_clear()


def start_ioc_with_file_limit(cfg: dict, limit: int) -> subprocess.Popen:
    """The stack's IOC again, with RLIMIT_FSIZE = ``limit`` bytes: writes fail with EFBIG."""
    import resource

    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    log = Path(cfg["instrument"]["data_dir"]) / "logs" / "ioc-fsize.log"
    log.unlink(missing_ok=True)  # the limit applies to the IOC's log too: start it empty
    started = services.start_ioc(
        services.ioc_argv_for(cfg),
        log,
        env=services.child_env(cfg, PYTHONUNBUFFERED="1"),
        preexec_fn=limit_files,
    )
    return started.proc


def test_disk_full_fails_at_first_frame(stack):
    """File size limit on the IOC (no root tmpfs needed): the plan fails at the first point."""
    cfg, api = stack
    before = data_files(cfg)
    spec_before = spec_path(cfg).read_bytes()
    kill(ioc_pid(cfg), signal.SIGTERM)
    proc = start_ioc_with_file_limit(cfg, 16_000)  # HDF5 header fits, one 64 kB frame does not
    try:
        item = run_plan(api, BPlan("adscan_count", num=3, frames=2), timeout=90)
    finally:
        proc.terminate()
        proc.wait(15)
        services.ensure_ioc(cfg)
    res = item["result"]
    print(f"\nfile size limit: {res['msg'][:300]}")
    assert res["exit_status"] == "failed", res
    assert "HDF5 file writer error: Error writing" in res["msg"], res["msg"]
    assert "[Errno 27]" in res["msg"], res["msg"]  # EFBIG: the file size limit
    uid = res["run_uids"][-1]
    run = catalog_run(cfg, uid)
    assert run.metadata["stop"]["exit_status"] == "fail"
    assert run.metadata["stop"]["num_events"].get("primary", 0) == 0  # no event without frames
    block = spec_scan_block(cfg, uid)
    assert "exit_status = fail" in block and spec_rows(block) == []
    after = data_files(cfg)
    spec = str(spec_path(cfg))
    for path, digest in before.items():  # everything written before is unchanged
        if path != spec:
            assert after[path] == digest, path
    assert spec_path(cfg).read_bytes().startswith(spec_before)  # the SPEC file only grew
    api.queue_clear()


# ------------------------------------------------------------------ 2. RE Manager killed


def queue_uids(api) -> list[str]:
    return [i["item_uid"] for i in api.queue_get()["items"]]


def history_uids(api) -> list[str]:
    return [i["item_uid"] for i in api.history_get()["items"]]


def test_re_manager_sigkill_keeps_queue_and_history(stack):
    cfg, api = stack
    api.queue_clear()
    for k in range(3):
        assert api.item_add(BPlan("adscan_count", num=2, frames=1, md={"k": k}))["success"]
    queued, history = queue_uids(api), history_uids(api)
    pid = services.re_manager_pid(cfg)
    family = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    os.kill(pid, signal.SIGKILL)
    for child in family[1:]:  # the orphaned worker: ours, by pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    wait_for(lambda: not any(services.pid_alive(p) for p in family), 10, what="manager gone")
    assert services.re_manager_status(cfg) is None
    t0 = time.monotonic()
    services.ensure_re_manager(cfg)
    services.open_environment(cfg)
    print(f"\nRE Manager restarted, environment open in {time.monotonic() - t0:.1f} s")
    assert queue_uids(api) == queued
    assert history_uids(api) == history
    api.queue_start()
    items = wait_idle(api, len(history) + 3, timeout=90)
    new = items[len(history) :]
    assert [i["item_uid"] for i in new] == queued
    assert [i["result"]["exit_status"] for i in new] == ["completed"] * 3
    assert queue_uids(api) == []


# ------------------------------------------------------------------------ 3. Redis restarted


def restart_redis(cfg: dict, sig=signal.SIGTERM, down_for: float = 1.0) -> None:
    pid = services.redis_pid(cfg)
    assert pid
    kill(pid, sig)
    assert not services.redis_ping(cfg["queueserver"]["redis_addr"])
    time.sleep(down_for)
    services.ensure_redis(cfg)


def test_redis_restart_idle(stack):
    cfg, api = stack
    api.queue_clear()
    h0 = history_uids(api)
    for k in range(3):
        assert api.item_add(BPlan("adscan_count", num=2, frames=1, md={"r": k}))["success"]
    queued = queue_uids(api)
    time.sleep(1.2)  # appendfsync everysec: let the AOF catch up before a hard kill
    restart_redis(cfg, signal.SIGKILL)  # idle, hard kill
    assert queue_uids(api) == queued and history_uids(api) == h0
    # The manager's first Redis write after a restart fails (its connection is stale) and
    # says so: the item is not added; the retry is.  Never silent, never doubled.
    long_plan = BPlan("adscan_count", num=3, frames=2)
    try:
        api.item_add(long_plan, pos="front")
    except api.RequestFailedError as ex:
        assert "Connection closed" in str(ex), ex
        assert queue_uids(api) == queued
        api.item_add(long_plan, pos="front")
    assert queue_uids(api)[1:] == queued and len(queue_uids(api)) == 4
    queue_uids_before_start = queue_uids(api)
    api.queue_start()
    items = wait_idle(api, len(h0) + 4, timeout=60)
    new = [i["item_uid"] for i in items[len(h0) :]]
    assert new == queue_uids_before_start, (new, queue_uids_before_start)
    assert [i["result"]["exit_status"] for i in items[len(h0) :]] == ["completed"] * 4
    assert queue_uids(api) == []


@pytest.mark.xfail(
    strict=True,
    reason=(
        "bluesky-queueserver 0.0.25: after Redis restarts under a running plan the manager never "
        "records the plan's end (stale Redis connection) and stays in executing_queue"
    ),
)
def test_redis_restart_while_running(stack):
    cfg, api = stack
    h0 = history_uids(api)
    assert api.item_add(BPlan("adscan_count", num=20, frames=2, delay=0.1))["success"]
    assert api.item_add(BPlan("adscan_count", num=2, frames=1))["success"]
    queued = queue_uids(api)
    time.sleep(1.2)  # appendfsync everysec
    api.queue_start()
    wait_for(lambda: api.status()["manager_state"] == "executing_queue", 20)
    time.sleep(1.0)
    restart_redis(cfg, signal.SIGKILL)
    # The plans take about 5 s: 20 s is ample for the fixed manager, and this strict xfail waits
    # the whole bound every run while the bug is there.
    items = wait_idle(api, len(h0) + 2, timeout=20)
    new = [i["item_uid"] for i in items[len(h0) :]]
    assert new == queued and queue_uids(api) == []
