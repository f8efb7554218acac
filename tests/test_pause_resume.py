"""Pause, resume, stop, abort and halt from the real ``qserver`` CLI in the middle of a grid scan.

A private stack on ``CA_PORTS[2]`` (own IOC with 256x256 frames, Redis, RE Manager, data
directory).  Each test runs a 4 x 3 snake grid scan (2 frames per point), pauses it once a few
rows are in the SPEC file, then resumes / stops / aborts / halts it, and checks the catalog,
the HDF5 frames and the SPEC file against what happened: after a resume every grid point is
there once, in order; after stop the run ends 'success' with fewer points; abort and halt
end it 'abort'.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from bluesky_queueserver_api import BPlan
from helpers import (
    catalog_run,
    spec_path,
    spec_rows,
    spec_scan_block,
    wait_for,
    wait_idle,
)
from helpers import qserver as _qserver

pytestmark = pytest.mark.timeout(180)

#: The conftest ``stack`` of this module runs its IOC on CA_PORTS[2] (test_faults: [1]).
STACK_CA_PORT = 2

#: Motor speed (units/s) of this module's IOC: slow enough that a pause sent by the CLI (a
#: new Python process, seconds to start on a loaded machine) arrives mid-grid, never after
#: the last point (m2 steps 0.33 per point: ~0.7 s of motion per point).
STACK_MOTOR_VELOCITY = 0.5

#: The CLI with a 30 s bound per call.
qserver = functools.partial(_qserver, timeout=30)

OUTER = np.linspace(-1, 1, 4)
INNER = np.linspace(-0.5, 0.5, 3)
GRID = BPlan("adscan_grid_scan", "m1", -1, 1, 4, "m2", -0.5, 0.5, 3, snake=True, frames=2)
FRAMES = 2


def expected_setpoints() -> list[tuple[float, float]]:
    out = []
    for row, a in enumerate(OUTER):
        for b in INNER if row % 2 == 0 else INNER[::-1]:
            out.append((a, b))
    return out


def start_and_pause(cfg: dict, api, how: str, rows: int = 3) -> int:
    """Queue the grid scan, start it with the CLI, pause it once ``rows`` SPEC rows are in."""
    api.queue_clear()
    n0 = api.status()["items_in_history"]
    assert api.item_add(GRID)["success"]
    text0 = spec_path(cfg).read_text() if spec_path(cfg).exists() else ""
    qserver(cfg, "queue", "start")
    wait_for(
        lambda: (
            spec_path(cfg).exists()
            and len(spec_rows(spec_path(cfg).read_text()[len(text0) :])) >= rows
        ),
        30,
        what=f"{rows} SPEC rows",
    )
    qserver(cfg, "re", "pause", how)
    wait_for(lambda: api.status()["manager_state"] == "paused", 20, what="paused")
    return n0


def check_frame_index(run, ds) -> None:
    """Issue 12.6: the file says which frames are each point's; frames of an interrupted
    point (written, then re-taken after the resume) are -1."""
    import h5py

    from adscan.callbacks.frameindex import frames_of, point_index
    from adscan.data import image_files

    files = image_files(run)
    assert len(files) == 1, files
    index = point_index(files[0])
    assert index is not None, f"no /entry/adscan/point_index in {files[0]}"
    n = len(ds["time"])
    with h5py.File(files[0], "r", locking=False) as f:
        data = f["/entry/data/data"]
        assert len(index) == data.shape[0]
        assert set(index.tolist()) <= {-1, *range(n)}
        for p in range(n):
            frames = frames_of(index, p)
            assert len(frames) == FRAMES and np.all(np.diff(frames) == 1), (p, frames)
            assert int(data[frames[-1]].sum()) == int(ds["simdet_stats1_total"].values[p]), p


def check_run(cfg: dict, uid: str, exit_status: str, frame_index: bool = True) -> int:
    """Catalog, HDF5 and SPEC agree; setpoints follow the grid; return the number of points."""
    run = catalog_run(cfg, uid)
    assert run.metadata["stop"]["exit_status"] == exit_status, run.metadata["stop"]
    ds = run.primary.read()
    n = len(ds["time"])
    setpoints = list(zip(ds["m1_user_setpoint"].values, ds["m2_user_setpoint"].values, strict=True))
    np.testing.assert_allclose(setpoints, expected_setpoints()[:n], atol=1e-9)
    uids = ds["simdet_stats1_unique_id"].values
    assert np.all(np.diff(uids) >= FRAMES), uids  # each point has its own, later frames
    images = ds["simdet_image"].values  # through the datum of every event
    assert images.shape == (n, FRAMES, 256, 256)
    for p in range(n):
        assert int(images[p, -1].sum()) == int(ds["simdet_stats1_total"].values[p]), p
    if frame_index:
        check_frame_index(run, ds)
    block = spec_scan_block(cfg, uid)
    assert f"exit_status = {exit_status}" in block, block[-300:]
    rows = spec_rows(block)
    assert len(rows) == n
    return n


@pytest.mark.parametrize("how", ["deferred", "immediate"])
def test_pause_then_resume_completes_every_point_once(stack, how):
    cfg, api = stack
    n0 = start_and_pause(cfg, api, how)
    st = api.status()
    assert st["manager_state"] == "paused" and st["re_state"] == "paused", st
    qserver(cfg, "re", "resume")
    items = wait_idle(api, n0 + 1, timeout=60)
    res = items[-1]["result"]
    assert res["exit_status"] == "completed", res
    assert check_run(cfg, res["run_uids"][0], "success") == len(expected_setpoints())


@pytest.mark.parametrize(
    "action,item_status,run_status,requeued",
    [
        ("stop", "stopped", "success", False),
        ("abort", "aborted", "abort", True),
        ("halt", "halted", "abort", True),
    ],
)
def test_pause_then_end(stack, action, item_status, run_status, requeued):
    cfg, api = stack
    n0 = start_and_pause(cfg, api, "deferred")
    qserver(cfg, "re", action)
    items = wait_idle(api, n0 + 1, timeout=60)
    res = items[-1]["result"]
    print(f"\n{action}: item {res['exit_status']}, {res['msg'][:120]}")
    assert res["exit_status"] == item_status, res
    # halt skips the plan's clean-up: the index is written when the next run starts
    n = check_run(cfg, res["run_uids"][0], run_status, frame_index=action != "halt")
    assert 3 <= n < len(expected_setpoints())
    queue = [i["name"] for i in api.queue_get()["items"]]
    assert queue == (["adscan_grid_scan"] if requeued else []), queue
    assert api.status()["manager_state"] == "idle"
