"""Malformed submissions: refused with a message naming the problem; nothing moves, nothing lost.

One real RE Manager (module fixture) takes a corpus of bad items through ``item_add``.

* ``STATIC``: refused at submission by the queue server's validation (plan annotations in
  ``plans/scans.py``): the reply names the problem, the queue and history are unchanged and the
  manager stays idle and answering.
* ``RUNTIME``: items that pass the static check (soft limits, NaN/inf, repeated motors, bad
  metadata...) are run: the plan raises ``PlanArgumentError`` before ``open_run``, so the item
  fails with a message naming the problem, produces no run, no HDF5 file, no catalog entry, no
  SPEC scan, and the motors do not move.  The failed item goes back to the queue (cleared after).

Plus a property-based test of the static validator against an independent oracle written from
the documented rules (offline: ``validate_plan`` with the committed plan list).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adscan.core.config import STARTUP_DIR

pytestmark = pytest.mark.timeout(600)

SCAN = ["m1", -1, 1, 3]
GRID = ["m1", -1, 1, 2, "m2", -1, 1, 2]


def plan(name, *args, **kwargs) -> dict:
    item = {"item_type": "plan", "name": name}
    if args:
        item["args"] = list(args)
    if kwargs:
        item["kwargs"] = kwargs
    return item


def nested(depth: int) -> dict:
    out: dict = {"leaf": 1}
    for _ in range(depth):
        out = {"n": out}
    return out


# (id, item, keyword the refusal must contain; several keywords: all of them)
STATIC = [
    # --- plan names: unknown, injection-like, private, wrong type
    ("unknown-plan", plan("no_such_plan"), "not in the list of allowed plans"),
    (
        "plan-shell-injection",
        plan("adscan_scan; rm -rf /", *SCAN),
        "not in the list of allowed plans",
    ),
    (
        "plan-python-injection",
        plan("__import__('os').system('id')"),
        "not in the list of allowed plans",
    ),
    ("plan-path-traversal", plan("../../etc/passwd"), "not in the list of allowed plans"),
    ("plan-private", plan("_with_frames"), "not in the list of allowed plans"),
    ("plan-unicode", plan("adscan_scän", *SCAN), "not in the list of allowed plans"),
    ("plan-nul", plan("adscan_scan\x00", *SCAN), "not in the list of allowed plans"),
    ("plan-empty-name", plan(""), "not in the list of allowed plans"),
    ("plan-name-int", {"item_type": "plan", "name": 42}, "name"),
    ("plan-name-missing", {"item_type": "plan", "args": SCAN}, "name"),
    ("item-type-bogus", {"item_type": "bogus", "name": "adscan_count"}, "item_type"),
    # --- devices
    ("motor-unknown", plan("adscan_scan", "m9", -1, 1, 3), "m9"),
    ("motor-is-detector", plan("adscan_scan", "simdet", -1, 1, 3), "simdet"),
    ("motor-injection", plan("adscan_scan", "m1; DROP TABLE runs", -1, 1, 3), "DROP TABLE"),
    ("motor-empty", plan("adscan_scan", "", -1, 1, 3), "motor"),
    ("motor-list", plan("adscan_scan", ["m1"], -1, 1, 3), "motor"),
    ("motor-dict", plan("adscan_scan", {"name": "m1"}, -1, 1, 3), "motor"),
    ("motor-subdevice", plan("adscan_scan", "m1.user_setpoint", -1, 1, 3), "motor"),
    ("motor2-unknown", plan("adscan_scan2", "m1", -1, 1, "m7", 0, 1, 3), "m7"),
    ("detector-unknown", plan("adscan_count", detectors=["nodet"]), "nodet"),
    ("detectors-str", plan("adscan_count", detectors="simdet"), "detectors"),
    ("detectors-dict", plan("adscan_count", detectors={"simdet": 1}), "detectors"),
    ("detectors-nested", plan("adscan_count", detectors=[["simdet"]]), "detectors"),
    ("grid-motor-unknown", plan("adscan_grid_scan", "m1", -1, 1, 2, "mX", -1, 1, 2), "mX"),
    # --- counts
    ("num-zero", plan("adscan_scan", "m1", -1, 1, 0), ["num", "out of range"]),
    ("num-negative", plan("adscan_scan", "m1", -1, 1, -5), ["num", "out of range"]),
    ("num-too-big", plan("adscan_scan", "m1", -1, 1, 100_001), ["num", "out of range"]),
    ("num-huge-int", plan("adscan_scan", "m1", -1, 1, 10**30), ["num"]),
    ("num-float", plan("adscan_scan", "m1", -1, 1, 5.5), "num"),
    ("num-float-integral", plan("adscan_scan", "m1", -1, 1, 5.0), "num"),
    ("num-str", plan("adscan_scan", "m1", -1, 1, "5"), "num"),
    ("num-bool", plan("adscan_scan", "m1", -1, 1, True), "num"),
    ("num-none", plan("adscan_scan", "m1", -1, 1, None), "num"),
    ("count-num-negative", plan("adscan_count", num=-1), ["num", "out of range"]),
    ("frames-zero", plan("adscan_scan", *SCAN, frames=0), ["frames", "out of range"]),
    ("frames-negative", plan("adscan_count", frames=-1), ["frames", "out of range"]),
    ("frames-too-many", plan("adscan_count", frames=1001), ["frames", "out of range"]),
    ("frames-float", plan("adscan_count", frames=2.0), "frames"),
    ("frames-str", plan("adscan_count", frames="3"), "frames"),
    ("frames-bool", plan("adscan_count", frames=False), "frames"),
    ("frames-list", plan("adscan_count", frames=[3]), "frames"),
    (
        "grid-num1-zero",
        plan("adscan_grid_scan", "m1", -1, 1, 0, "m2", -1, 1, 2),
        ["num1", "out of range"],
    ),
    ("grid-num2-str", plan("adscan_grid_scan", "m1", -1, 1, 2, "m2", -1, 1, "x"), "num2"),
    # --- positions and other numbers
    ("start-str", plan("adscan_scan", "m1", "minus one", 1, 3), "start"),
    ("start-none", plan("adscan_scan", "m1", None, 1, 3), "start"),
    ("start-list", plan("adscan_scan", "m1", [0, 1], 1, 3), "start"),
    ("start-dict", plan("adscan_scan", "m1", {"value": 1}, 1, 3), "start"),
    ("stop-nan-string", plan("adscan_scan", "m1", -1, "NaN", 3), "stop"),
    ("delay-negative", plan("adscan_count", delay=-1), ["delay", "out of range"]),
    ("delay-huge", plan("adscan_count", delay=1e9), ["delay", "out of range"]),
    ("delay-str", plan("adscan_count", delay="1"), "delay"),
    ("read-stats-delay-huge", plan("adscan_read_stats", delay=1e9), ["delay", "out of range"]),
    ("snake-str", plan("adscan_grid_scan", *GRID, snake="yes"), "snake"),
    ("snake-list", plan("adscan_grid_scan", *GRID, snake=[True]), "snake"),
    ("snake-float", plan("adscan_grid_scan", *GRID, snake=1.0), "snake"),
    # --- structure: missing, extra, duplicated, wrong containers
    ("missing-required", plan("adscan_scan", "m1", -1, 1), ["missing", "num"]),
    ("no-args", plan("adscan_grid_scan"), ["missing", "motor1"]),
    ("too-many-args", plan("adscan_count", ["simdet"], 5, 3, 0.0, {}, 99), "too many positional"),
    ("huge-args-array", plan("adscan_scan", "m1", *range(100_000)), "too many positional"),
    ("extra-kwarg", plan("adscan_scan", *SCAN, bogus=1), ["unexpected keyword", "bogus"]),
    ("kwarg-duplicates-arg", plan("adscan_scan", *SCAN, motor="m2"), ["multiple values", "motor"]),
    ("args-dict", {"item_type": "plan", "name": "adscan_scan", "args": {"motor": "m1"}}, "args"),
    ("kwargs-list", {"item_type": "plan", "name": "adscan_count", "kwargs": [1, 2]}, "kwargs"),
    ("md-list", plan("adscan_scan", *SCAN, md=[1, 2]), ["md", "dictionary"]),
    ("md-str", plan("adscan_scan", *SCAN, md="sample=1"), ["md", "dictionary"]),
    ("md-int", plan("adscan_count", md=5), ["md", "dictionary"]),
    # issue 12.5: stock plans are not queueable (no device check at submission; tweak loops)
    (
        "stock-tweak",
        plan("tweak", "simdet", "simdet_stats1_total", "m1", 0.1),
        "not in the list of allowed plans",
    ),
    ("stock-count-subdevice", plan("count", ["simdet.stats1"]), "not in the list of allowed"),
    (
        "stock-scan-unknown-motor",
        plan("scan", ["simdet"], "m9", 0, 1, num=2),
        "not in the list of allowed plans",
    ),
    (
        "stock-grid-scan",
        plan("grid_scan", ["simdet"], "m1", 0, 1, 2, "m2", 0, 1, 2),
        "not in the list of allowed plans",
    ),
]

# (id, item, keyword in the failure message) - accepted at submission, refused when run
RUNTIME = [
    ("start-outside-soft-limits", plan("adscan_scan", "m1", 1000.0, 0, 3), "soft limits"),
    ("stop-outside-soft-limits", plan("adscan_scan2", "m1", 0, 1, "m2", 0, -500, 3), "soft limits"),
    ("start-nan", plan("adscan_scan", "m1", math.nan, 1, 3), "finite number"),
    ("stop-inf", plan("adscan_scan", "m1", 0, math.inf, 3), "finite number"),
    ("start-bool", plan("adscan_scan", "m1", True, 1, 3), "finite number"),
    ("scan2-same-motor", plan("adscan_scan2", "m1", 0, 1, "m1", 0, 1, 3), "must differ"),
    ("grid-same-motor", plan("adscan_grid_scan", "m2", -1, 1, 2, "m2", -1, 1, 2), "must differ"),
    (
        "grid-too-many-points",
        plan("adscan_grid_scan", "m1", -1, 1, 1000, "m2", -1, 1, 1000),
        "exceeds",
    ),
    ("snake-int", plan("adscan_grid_scan", *GRID, snake=1), "snake"),
    ("detectors-repeated", plan("adscan_count", detectors=["simdet"] * 1000), "repeat"),
    ("md-reserved-uid", plan("adscan_scan", *SCAN, md={"uid": "0000"}), "reserved"),
    ("md-reserved-scan-id", plan("adscan_count", md={"scan_id": "'; DROP TABLE"}), "reserved"),
    ("md-mongo-operator-key", plan("adscan_count", md={"$where": "sleep(1000)"}), "not allowed"),
    ("md-dotted-key", plan("adscan_count", md={"a.b": 1}), "not allowed"),
    ("md-deeply-nested", plan("adscan_count", md=nested(200)), "nested deeper"),
    ("md-huge-array", plan("adscan_count", md={"data": list(range(200_000))}), "bytes"),
    ("md-nan", plan("adscan_count", md={"gain": math.nan}), "finite number"),
    ("md-nul-string", plan("adscan_count", md={"note": "a\x00b"}), "NUL"),
    ("md-sample-list", plan("adscan_count", md={"sample": [1, 2]}), "sample"),
    ("delay-nan", plan("adscan_count", delay=math.nan), "delay"),
    # issue 12.3 and 12.6: refused before anything moves, no run, no file, no scan number used
    ("md-int-beyond-int64", plan("adscan_count", md={"counts": 2**70}), ["md.counts", "64-bit"]),
    (
        "md-int-below-int64",
        plan("adscan_count", md={"n": {"counts": -(2**63) - 1}}),
        ["md.n.counts", "64-bit"],
    ),
    ("md-hints-str", plan("adscan_count", md={"hints": "x"}), ["hints", "reserved"]),
    (
        "md-hints-dict",
        plan("adscan_scan", *SCAN, md={"hints": {"dimensions": []}}),
        ["hints", "reserved"],
    ),
    ("detectors-empty", plan("adscan_count", detectors=[]), "detectors=[]"),
]

# Legitimate but hostile-looking metadata is stored verbatim, never interpreted.
INERT_MD = {
    "comment": "'; DROP TABLE runs; --",
    "shell": "$(rm -rf /) `id`",
    "spec": "line\n#S 999 fake scan",
    "unicode": "Ü∂🚀 ﷽",
    "html": "<script>x</script>",
}


def _keywords(kw) -> list[str]:
    return [kw] if isinstance(kw, str) else list(kw)


def snapshot(rm, cfg) -> dict:
    """What a refused or failed item must not change."""
    import epics

    prefix = cfg["ioc"]["motors_prefix"]
    spec = Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]
    images = Path(cfg["detector"]["write_path"])
    catalog = Path(cfg["catalog"]["directory"])
    return {
        "queue": [i["item_uid"] for i in rm.queue_get()["items"]],
        "m1": epics.caget(f"{prefix}m1.RBV", timeout=5),
        "m2": epics.caget(f"{prefix}m2.RBV", timeout=5),
        "images": sorted(p.name for p in images.rglob("*") if p.is_file())
        if images.exists()
        else [],
        "catalog": sorted(str(p) for p in catalog.rglob("*") if p.is_file())
        if catalog.exists()
        else [],
        "spec": hashlib.sha256(spec.read_bytes()).hexdigest() if spec.exists() else None,
    }


def assert_manager_fine(rm, queue_before: list, history_before: int) -> None:
    st = rm.status()
    assert st["manager_state"] == "idle", st
    assert st["worker_environment_exists"] is True
    assert [i["item_uid"] for i in rm.queue_get()["items"]] == queue_before
    assert st["items_in_history"] == history_before


@pytest.mark.parametrize("item,keyword", [c[1:] for c in STATIC], ids=[c[0] for c in STATIC])
def test_static_refusal(rm, item, keyword):
    queue_before = [i["item_uid"] for i in rm.queue_get()["items"]]
    history_before = rm.status()["items_in_history"]
    with pytest.raises(rm.RequestFailedError) as info:
        rm.item_add(item)
    response = info.value.response
    assert response["success"] is False
    msg = response["msg"]
    for word in _keywords(keyword):
        assert word in msg, f"{word!r} not in refusal: {msg[:600]}"
    assert len(msg) < 20_000, "refusal message echoes the whole payload"
    assert_manager_fine(rm, queue_before, history_before)


def test_corpus_is_large_enough():
    assert len(STATIC) + len(RUNTIME) >= 50
    assert len({c[0] for c in STATIC + RUNTIME}) == len(STATIC) + len(RUNTIME)


def _run_queue_until_idle(rm, history_before: int, timeout: float = 60.0) -> dict:
    rm.queue_start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = rm.status()
        if st["manager_state"] == "idle" and st["items_in_history"] > history_before:
            return rm.history_get()["items"][-1]
        time.sleep(0.1)
    raise TimeoutError(f"queue did not finish: {rm.status()}")


@pytest.mark.parametrize("item,keyword", [c[1:] for c in RUNTIME], ids=[c[0] for c in RUNTIME])
def test_runtime_refusal_moves_nothing(rm, service, item, keyword):
    before = snapshot(rm, service)
    assert before["queue"] == [], "queue must start empty"
    history_before = rm.status()["items_in_history"]
    added = rm.item_add(item)
    assert added["success"], f"expected static acceptance: {added['msg']}"
    last = _run_queue_until_idle(rm, history_before)
    result = last["result"]
    assert last["name"] == item["name"]
    assert result["exit_status"] == "failed", result
    assert "PlanArgumentError" in result["msg"] + result.get("traceback", ""), result["msg"]
    for word in _keywords(keyword):
        assert word in result["msg"], f"{word!r} not in failure: {result['msg'][:600]}"
    assert result["run_uids"] == [], "the plan opened a run before refusing its arguments"
    # The failed item is back at the front of the queue (queue stopped): the user can edit it.
    queue = rm.queue_get()["items"]
    assert [i["name"] for i in queue] == [item["name"]]
    rm.queue_clear()
    after = snapshot(rm, service)
    assert after["queue"] == []
    for key in ("m1", "m2"):
        assert after[key] == pytest.approx(before[key], abs=1e-6), f"{key} moved"
    assert after["images"] == before["images"], "an HDF5 file was written"
    assert after["catalog"] == before["catalog"], "a catalog entry was written"
    assert after["spec"] == before["spec"], "the SPEC file changed"
    st = rm.status()
    assert st["manager_state"] == "idle" and st["worker_environment_exists"]


def test_qserver_lists_and_accepts_only_adscan_plans(rm, service):
    """Issue 12.5 through the real CLI: `qserver allowed plans` and a refused `tweak`."""
    from helpers import qserver

    listed = qserver(service, "allowed", "plans").stdout
    plans_allowed = set(rm.plans_allowed()["plans_allowed"])
    assert plans_allowed == {
        "adscan_count",
        "adscan_scan",
        "adscan_scan2",
        "adscan_grid_scan",
        "adscan_read_stats",
    }
    for stock in ("count", "scan", "grid_scan", "tweak", "mv"):
        assert f"'{stock}'" not in listed, stock
    assert "adscan_grid_scan" in listed, listed[-2000:]
    before = [i["item_uid"] for i in rm.queue_get()["items"]]
    proc = qserver(
        service,
        "queue",
        "add",
        "plan",
        '{"name": "tweak", "args": ["simdet", "simdet_stats1_total", "m1", 0.1]}',
        check=False,
    )
    assert proc.returncode != 0 and "Plan 'tweak' is not in" in proc.stdout, proc.stdout
    assert [i["item_uid"] for i in rm.queue_get()["items"]] == before


def _spec_numbers(cfg) -> list[int]:
    from spec2nexus.spec import SpecDataFile

    path = Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]
    return [int(n) for n in SpecDataFile(str(path)).getScanNumbers()] if path.exists() else []


def test_failed_md_leaves_no_empty_file_and_no_scan_number_gap(rm, service):
    """Issue 12.3: int beyond int64 in md used to leave a 0-byte run file and skip a #S number."""
    n0 = rm.status()["items_in_history"]
    rm.item_add(plan("adscan_count", num=1, frames=1))
    assert _run_queue_until_idle(rm, n0, 120)["result"]["exit_status"] == "completed"
    before = _spec_numbers(service)
    rm.item_add(plan("adscan_count", num=1, frames=1, md={"counts": 2**70}))
    last = _run_queue_until_idle(rm, n0 + 1, 120)
    assert last["result"]["exit_status"] == "failed" and "md.counts" in last["result"]["msg"]
    rm.queue_clear()
    rm.item_add(plan("adscan_count", num=1, frames=1))
    assert _run_queue_until_idle(rm, n0 + 2, 120)["result"]["exit_status"] == "completed"
    after = _spec_numbers(service)
    assert after == [*before, before[-1] + 1], (before, after)
    catalog = Path(service["catalog"]["directory"])
    empty = [p for p in catalog.rglob("*") if p.is_file() and p.stat().st_size == 0]
    assert empty == [], f"empty run files in the catalog: {empty}"


def test_scan_larger_than_free_space_is_refused(rm, service):
    """Issue 12.6: 100000 points x 1000 frames (about 100 TB) is refused before anything moves."""
    before = snapshot(rm, service)
    n0 = rm.status()["items_in_history"]
    rm.item_add(plan("adscan_scan", "m1", -1, 1, 100_000, frames=1000))
    last = _run_queue_until_idle(rm, n0, 120)
    result = last["result"]
    assert result["exit_status"] == "failed" and result["run_uids"] == [], result
    assert "GB free" in result["msg"] and "100000 points x 1000 frames" in result["msg"], result
    rm.queue_clear()
    after = snapshot(rm, service)
    assert {k: after[k] for k in ("m1", "m2", "images", "catalog", "spec")} == {
        k: before[k] for k in ("m1", "m2", "images", "catalog", "spec")
    }


def test_hostile_looking_metadata_is_stored_verbatim(rm, service):
    """Injection-like strings in md values are data: the run completes and stores them as is."""
    from adscan.data.catalog import open_catalog

    history_before = rm.status()["items_in_history"]
    rm.item_add(plan("adscan_count", num=1, frames=1, md=INERT_MD))
    last = _run_queue_until_idle(rm, history_before, timeout=120)
    assert last["result"]["exit_status"] == "completed", last["result"]
    run = open_catalog(service)[last["result"]["run_uids"][0]]
    start = run.metadata["start"]
    for key, value in INERT_MD.items():
        assert start[key] == value, key
    spec = (Path(service["spec"]["directory"]) / service["spec"]["file"]).read_text()
    assert "#S 999 fake scan" not in spec.splitlines(), "a newline in md forged a SPEC line"


# --------------------------------------------------------------------------- property-based


@pytest.fixture(scope="module")
def offline_lists():
    from bluesky_queueserver.manager.profile_ops import load_allowed_plans_and_devices

    plans, devices = load_allowed_plans_and_devices(
        path_existing_plans_and_devices=str(STARTUP_DIR / "existing_plans_and_devices.yaml"),
        path_user_group_permissions=str(STARTUP_DIR / "user_group_permissions.yaml"),
    )
    return plans["primary"], devices["primary"]


MOTORS = ("m1", "m2")
LIMITS = yaml.safe_load((STARTUP_DIR / "existing_plans_and_devices.yaml").read_text())
_params = {p["name"]: p for p in LIMITS["existing_plans"]["adscan_scan"]["parameters"]}
NUM_MAX, FRAMES_MAX = int(_params["num"]["max"]), int(_params["frames"]["max"])


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def oracle(name: str, kwargs: dict) -> bool:
    """The documented submission rules (docs: plans/scans.py annotations, queueserver-facts).

    Motors: exactly a name from devices.yml.  Positions: a number (int, float, and - the
    queue server's type rule 'int may become float' - bool); never a string or None.  Counts:
    a true int (no bool, no float) within [1, max].  snake: bool, or int 0/1 (int is equal to
    the bool it becomes).  detectors: a list of detector names.  md: a dict.
    """

    def position(v):
        return isinstance(v, int | float)

    def count(v, hi):
        return _is_int(v) and 1 <= v <= hi

    ok = True
    for key, v in kwargs.items():
        if key.startswith("motor"):
            ok &= isinstance(v, str) and v in MOTORS
        elif key.startswith(("start", "stop")):
            ok &= position(v)
        elif key.startswith("num"):
            ok &= count(v, NUM_MAX)
        elif key == "frames":
            ok &= count(v, FRAMES_MAX)
        elif key == "snake":
            ok &= isinstance(v, bool) or (_is_int(v) and v in (0, 1))
        elif key == "detectors":
            ok &= isinstance(v, list) and all(d == "simdet" for d in v)
        elif key == "md":
            ok &= isinstance(v, dict)
    return ok


anything = st.one_of(
    st.integers(-10, 10),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, width=32),
    st.sampled_from(["m1", "m2", "m3", "simdet", "1", ""]),
    st.lists(st.sampled_from(["simdet", "m1"]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
)
# about half valid, half anything: both verdicts are common
counts = st.one_of(
    st.integers(1, 50),
    st.integers(1, 50),
    st.integers(-3, 1003),
    st.integers(99_990, 100_010),
    anything,
)
positions = st.one_of(st.floats(-100, 100), st.integers(-100, 100), anything)
motors = st.one_of(st.sampled_from(MOTORS), st.sampled_from(MOTORS), anything)
SCAN_PARAMS = {"motor": motors, "start": positions, "stop": positions, "num": counts}
GRID_PARAMS = {
    "motor1": motors,
    "start1": positions,
    "stop1": positions,
    "num1": counts,
    "motor2": motors,
    "start2": positions,
    "stop2": positions,
    "num2": counts,
    "snake": st.one_of(st.booleans(), anything),
}
OPTIONAL = {
    "frames": counts,
    "detectors": st.one_of(st.sampled_from([["simdet"], []]), anything),
    "md": st.one_of(st.dictionaries(st.text(max_size=5), st.integers()), anything),
}


@st.composite
def submissions(draw):
    name = draw(st.sampled_from(["adscan_scan", "adscan_grid_scan"]))
    required = SCAN_PARAMS if name == "adscan_scan" else GRID_PARAMS
    kwargs = {k: draw(s) for k, s in required.items() if k != "snake"}
    if name == "adscan_grid_scan" and draw(st.booleans()):
        kwargs["snake"] = draw(required["snake"])
    for key, strategy in OPTIONAL.items():
        if draw(st.booleans()):
            kwargs[key] = draw(strategy)
    n_pos = draw(st.integers(0, len(required)))  # some arguments positional
    keys = list(kwargs)
    args = [kwargs.pop(k) for k in keys[:n_pos] if k in required and k != "snake"]
    return name, args, kwargs, keys[: len(args)]


@settings(
    max_examples=int(os.environ.get("ADSCAN_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(submissions())
@example(
    (
        "adscan_scan",
        ["m1", 0, 1.5, 5],
        {"frames": 2, "md": {"a": 1}},
        ["motor", "start", "stop", "num"],
    )
)
@example(
    (
        "adscan_grid_scan",
        ["m1", -1, 1, 3],
        {"motor2": "m2", "start2": True, "stop2": 2, "num2": 4, "snake": 0, "detectors": []},
        ["motor1", "start1", "stop1", "num1"],
    )
)
@example(
    ("adscan_scan", [], {"motor": "m2", "start": 0, "stop": 1, "num": 100_000, "frames": 1000}, [])
)
def test_validator_matches_oracle(offline_lists, sub):
    from bluesky_queueserver import validate_plan

    name, args, kwargs, arg_keys = sub
    allowed_plans, allowed_devices = offline_lists
    ok, msg = validate_plan(
        {"name": name, "args": args, "kwargs": kwargs},
        allowed_plans=allowed_plans,
        allowed_devices=allowed_devices,
    )
    expected = oracle(name, {**dict(zip(arg_keys, args, strict=True)), **kwargs})
    assert ok == expected, (name, args, kwargs, msg)
    if not ok:
        assert "Plan validation failed" in msg and len(msg) > 30, msg


def test_oracle_can_refuse():
    """Guard against a vacuous oracle: it refuses what the docs refuse."""
    assert oracle("adscan_scan", {"motor": "m1", "start": 0, "stop": 1, "num": 5})
    assert not oracle("adscan_scan", {"motor": "m9", "start": 0, "stop": 1, "num": 5})
    assert not oracle("adscan_scan", {"motor": "m1", "start": "0", "stop": 1, "num": 5})
    assert not oracle("adscan_scan", {"motor": "m1", "start": 0, "stop": 1, "num": True})
    assert not oracle("adscan_scan", {"motor": "m1", "start": 0, "stop": 1, "num": 0})
    assert not oracle(
        "adscan_scan", {"motor": "m1", "start": 0, "stop": 1, "num": 5, "frames": FRAMES_MAX + 1}
    )
