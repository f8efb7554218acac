"""Soak: N queued adscan_scan runs in a row, then catalog, SPEC file and HDF5 files must agree.

CI runs the reduced count (default N=10, about half a minute).  The full soak::

    ADSCAN_SOAK_N=200 ./run test tests/test_soak.py -s        # or: python benchmarks/soak.py

prints the figures (duration, RE Manager + worker RSS after the first 20 % and at the end).
Each run is checked with :func:`adscan.data.verify.verify_run` (datum -> HDF5 frames, unique IDs,
stats = pixels, SPEC rows and columns); across runs the uids, HDF5 files, SPEC scans and
NDArrayUniqueId ranges must be one to one and disjoint.  Memory must not grow without bound:
end RSS - RSS after 20 % <= max(SOAK_RSS_SLACK_MB, 25 % of the early RSS).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import psutil
import pytest

from adscan import services

N = int(os.environ.get("ADSCAN_SOAK_N", "10"))
POINTS = 3
FRAMES = 3
RSS_SLACK_MB = float(os.environ.get("ADSCAN_SOAK_RSS_SLACK_MB", "96"))

pytestmark = [pytest.mark.timeout(600 + 30 * N)] + ([pytest.mark.slow] if N > 20 else [])


def manager_rss(cfg: dict) -> dict[str, float]:
    """RSS (MiB) of the RE Manager process and of its children (the worker)."""
    pid = services.re_manager_pid(cfg)
    assert pid, "RE Manager not running"
    root = psutil.Process(pid)
    children = root.children(recursive=True)
    mib = 1024 * 1024
    return {
        "manager": root.memory_info().rss / mib,
        "worker": sum(c.memory_info().rss for c in children) / mib,
        "total": (root.memory_info().rss + sum(c.memory_info().rss for c in children)) / mib,
    }


def growth_bound(early_total: float) -> float:
    return max(RSS_SLACK_MB, 0.25 * early_total)


def run_soak(cfg: dict, n: int, log=print) -> dict:
    """Queue ``n`` scans, run them, sample memory; return uids and figures."""
    from bluesky_queueserver_api import BPlan

    api = services.re_manager_api(cfg, timeout=10)
    try:
        n0 = api.status()["items_in_history"]
        assert api.status()["items_in_queue"] == 0
        for k in range(n):
            lo = -1.0 + 0.01 * (k % 50)
            api.item_add(
                BPlan(
                    "adscan_scan", "m1", lo, lo + 1.0, POINTS, frames=FRAMES, md={"soak_index": k}
                )
            )
        early_at = n0 + max(1, math.ceil(0.2 * n))
        early = None
        t0 = time.monotonic()
        api.queue_start()
        while True:
            st = api.status()
            done = st["items_in_history"] - n0
            if early is None and st["items_in_history"] >= early_at:
                early = manager_rss(cfg)
                early["after_runs"] = done
                early["seconds"] = time.monotonic() - t0
            if st["manager_state"] == "idle" and st["items_in_queue"] == 0 and done >= n:
                break
            if st["manager_state"] == "idle" and st["items_in_queue"] and done:
                last = api.history_get()["items"][-1]
                raise AssertionError(f"queue stopped after {done} runs: {last['result']}")
            if time.monotonic() - t0 > 60 + 20 * n:
                raise TimeoutError(f"soak not finished: {st}")
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        end = manager_rss(cfg)
        items = api.history_get()["items"][n0:]
    finally:
        api.close()
    figures = {
        "n": n,
        "points": POINTS,
        "frames": FRAMES,
        "seconds": round(elapsed, 1),
        "seconds_per_scan": round(elapsed / n, 2),
        "rss_early_mib": {k: round(v, 1) for k, v in early.items()},
        "rss_end_mib": {k: round(v, 1) for k, v in end.items()},
        "rss_growth_mib": round(end["total"] - early["total"], 1),
        "rss_growth_bound_mib": round(growth_bound(early["total"]), 1),
    }
    log("soak figures: " + json.dumps(figures))
    return {"items": items, "figures": figures}


def check_soak(cfg: dict, items: list[dict]) -> list[str]:
    """Cross-check every run; return the list of problems (empty: all agree)."""
    import h5py
    import hdf5plugin  # noqa: F401 - LZ4 filter

    from adscan.data.catalog import image_files, open_catalog
    from adscan.data.verify import UNIQUE_ID_DATASET, read_spec_scan, verify_run

    problems = []
    statuses = [i["result"]["exit_status"] for i in items]
    if statuses.count("completed") != len(items):
        problems.append(f"not all completed: {statuses}")
    uids = [u for i in items for u in i["result"]["run_uids"]]
    if len(uids) != len(items) or len(set(uids)) != len(uids):
        problems.append(f"{len(items)} items gave {len(uids)} run uids ({len(set(uids))} unique)")
    cat = open_catalog(cfg)
    spec_path = Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]
    files, ranges, scan_numbers = [], [], []
    for uid in uids:
        report = verify_run(cfg, uid)
        if not report.ok:
            problems.append(report.table())
        run = cat[uid]
        if run.metadata["start"].get("frames_per_point") != FRAMES:
            problems.append(f"{uid}: frames_per_point {run.metadata['start']}")
        paths = image_files(run)
        files += [str(p) for p in paths]
        for p in paths:
            with h5py.File(p, "r", locking=False) as f:
                ids = f[UNIQUE_ID_DATASET][()]
                if len(ids) != POINTS * FRAMES:
                    problems.append(f"{p}: {len(ids)} frames, expected {POINTS * FRAMES}")
                ranges.append((int(ids.min()), int(ids.max())))
        scan = read_spec_scan(spec_path, uid)
        if scan is None:
            problems.append(f"{uid}: no SPEC scan")
        else:
            scan_numbers.append(scan["number"])
    if len(files) != len(uids) or len(set(files)) != len(files):
        problems.append(f"HDF5 files not one per run: {len(files)} for {len(uids)} runs")
    if len(set(scan_numbers)) != len(uids):
        problems.append(f"SPEC scans not one per run: {scan_numbers}")
    ranges.sort()
    overlaps = [(a, b) for a, b in zip(ranges, ranges[1:], strict=False) if b[0] <= a[1]]
    if overlaps:
        problems.append(f"NDArrayUniqueId ranges overlap between runs: {overlaps[:3]}")
    spec_text = spec_path.read_text()
    for uid in uids:
        if spec_text.count(uid) < 1:
            problems.append(f"{uid} not in the SPEC file")
    return problems


@pytest.fixture(scope="module")
def soak(service):
    api = services.re_manager_api(service, timeout=10)
    try:
        api.queue_clear()  # items another module left in the session's Redis are not ours
    finally:
        api.close()
    return run_soak(service, N)


def test_all_runs_completed(soak):
    items = soak["items"]
    assert len(items) == N
    bad = [
        (i["name"], i["result"]["exit_status"], i["result"]["msg"])
        for i in items
        if i["result"]["exit_status"] != "completed"
    ]
    assert not bad, bad


def test_catalog_spec_hdf5_agree_one_to_one(soak, service):
    problems = check_soak(service, soak["items"])
    assert not problems, "\n".join(problems)


def test_memory_does_not_grow_without_bound(soak):
    fig = soak["figures"]
    growth = fig["rss_growth_mib"]
    assert growth <= fig["rss_growth_bound_mib"], (
        f"RE Manager + worker RSS grew {growth} MiB between run "
        f"{fig['rss_early_mib']['after_runs']} and run {N}: {fig}"
    )


def test_soak_checker_catches_a_missing_run(soak, service):
    """The cross-check is not vacuous: a duplicated item (same run twice) is reported."""
    items = soak["items"]
    problems = check_soak(service, [items[0], items[0]])
    assert any("unique" in p or "one per run" in p for p in problems), problems
