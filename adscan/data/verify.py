"""Check one run end to end: catalog, HDF5 image file and SPEC file agree.

Python::

    from adscan.data import verify_run
    report = verify_run(cfg, -1)        # uid, -N or scan_id
    print(report.table()); report.ok

Command line (wired as ``adscan verify <uid|-N|scan_id>``): :func:`main_verify`; exit status
0 when every check passes, 1 on any FAIL, 2 when the run is not in the catalog.

Checks (each PASS or FAIL with a detail):

=====================  =========================================================================
run complete           stop document present, exit_status success, primary event count matches
datum -> HDF5 file     every point's datum resolves to a resource whose HDF5 file exists and
                       holds that point's frames
frames per point       start ``frames_per_point`` = resource ``frame_per_point`` = image shape
unique ids consecutive NDArrayUniqueId of the run's frames increase by 1 (in point order)
unique id = stats      last frame of each point: NDArrayUniqueId = ``<det>_stats1_unique_id``
frame sum = total      last frame of each point: sum of pixels = ``<det>_stats1_total``
frame max = max_value  last frame of each point: max pixel = ``<det>_stats1_max_value``
SPEC scan found        a ``#S`` scan with ``#C ... uid = <uid>`` (else the run's scan number)
SPEC points            its number of data rows = number of points
SPEC columns           its stats (and motor) columns equal the catalog's
=====================  =========================================================================

The run's scalar columns are read from its documents in one pass (fast for long runs); the
HDF5 file is read one point at a time (only the last frame of each point is decoded).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adscan.core.schema import FRAMES_PER_POINT, plan_of
from adscan.data.runs import IMAGE_DATASET, RunData, open_run, read_run

UNIQUE_ID_DATASET = "/entry/instrument/NDAttributes/NDArrayUniqueId"
PASS, FAIL = "PASS", "FAIL"
SPEC_RTOL = 1e-9  # the SPEC writer renders 12 significant digits


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == PASS


@dataclass
class Report:
    """The outcome of :func:`verify_run`: one :class:`Check` per line of the table."""

    uid: str
    scan_id: Any
    plan: str
    points: int
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> Check:
        check = Check(name, PASS if ok else FAIL, detail)
        self.checks.append(check)
        return check

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def table(self) -> str:
        head = f"run {self.uid}  scan {self.scan_id}  {self.plan}  {self.points} points"
        width = max([len("check")] + [len(c.name) for c in self.checks])
        lines = [head, f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  {'-' * 50}"]
        lines += [f"{c.name:<{width}}  {c.status:<6}  {c.detail}" for c in self.checks]
        n_fail = len(self.failed)
        lines.append(f"{'-' * width}  ------  {'-' * 50}")
        lines.append(
            f"verify: PASS (all {len(self.checks)} checks)"
            if not n_fail
            else f"verify: FAIL ({n_fail} of {len(self.checks)} checks: {', '.join(self.failed)})"
        )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# helpers


def _first_mismatch(a: np.ndarray, b: np.ndarray, rtol: float = 0.0) -> int | None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    bad = ~np.isclose(a, b, rtol=rtol, atol=0.0, equal_nan=False)
    idx = np.flatnonzero(bad)
    return int(idx[0]) if idx.size else None


def _fmt(x: float) -> str:
    return str(int(x)) if np.isfinite(x) and float(x).is_integer() else repr(float(x))


def read_spec_scan(path: Path, uid: str, scan_number: Any = None) -> dict | None:
    """The SPEC scan of a run: ``{"number", "labels", "rows", "by"}`` or None.

    Found by its ``#C ... uid = <uid>`` line, else by ``#S <scan_number>`` (the last one).
    """
    if not path.exists():
        return None
    scans: list[dict] = []
    current: dict | None = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("#S "):
                parts = line.split()
                current = {
                    "number": parts[1] if len(parts) > 1 else "?",
                    "labels": [],
                    "rows": [],
                    "uid": None,
                }
                scans.append(current)
            elif current is None:
                continue
            elif line.startswith("#L "):
                current["labels"] = line[3:].strip().split("  ")
            elif line.startswith("#C") and " uid = " in line:
                current["uid"] = line.rsplit(" uid = ", 1)[1].strip()
            elif line.strip() and not line.startswith("#"):
                current["rows"].append(line.split())
    for scan in scans:
        if scan["uid"] == uid:
            scan["by"] = "uid"
            return scan
    if scan_number is not None:
        for scan in reversed(scans):
            if scan["number"] == str(scan_number) and scan["uid"] is None:
                scan["by"] = "scan number"
                return scan
    return None


def _spec_column(scan: dict, label: str) -> np.ndarray:
    i = scan["labels"].index(label)
    out = []
    for row in scan["rows"]:
        try:
            out.append(float(row[i]))
        except (IndexError, ValueError):
            out.append(math.nan)
    return np.array(out, dtype=float)


# ---------------------------------------------------------------------------------------------
# the checks


def _check_run(report: Report, data: RunData) -> None:
    stop = data.stop
    if stop is None:
        report.add("run complete", False, "no stop document (run still going or it died)")
        return
    status = stop.get("exit_status")
    n_stop = (stop.get("num_events") or {}).get("primary")
    ok = status == "success" and n_stop == data.points and data.points > 0
    report.add(
        "run complete",
        ok,
        f"exit_status={status}, num_events primary={n_stop}, events read={data.points}",
    )


def _check_images(report: Report, data: RunData, cfg: dict) -> None:
    import h5py
    import hdf5plugin  # noqa: F401 - LZ4 filter

    if not data.image_keys:
        report.add("datum -> HDF5 file", False, "the primary stream has no image field")
        return
    key = data.image_keys[0]
    ids = data.datum_ids.get(key, [])
    frames_cfg = data.start.get(FRAMES_PER_POINT)
    shape = list((data.descriptor or {}).get("data_keys", {}).get(key, {}).get("shape") or [])

    # --- frames per point: start doc, resources, data key shape
    fpps = {
        int((r.get("resource_kwargs") or {}).get("frame_per_point", -1))
        for r in data.resources.values()
        if r.get("spec") == "AD_HDF5"
    }
    expected = (
        int(frames_cfg)
        if frames_cfg is not None
        else (next(iter(fpps)) if len(fpps) == 1 else None)
    )
    ok = expected is not None and fpps == {expected} and (not shape or int(shape[0]) == expected)
    report.add(
        "frames per point",
        ok,
        f"start frames_per_point={frames_cfg}, resource frame_per_point="
        f"{sorted(fpps)}, {key} shape={shape}",
    )

    # --- every datum resolves to frames of an existing file; read last frames per point
    total = data.columns.get(data.stats_key("total", key))
    vmax = data.columns.get(data.stats_key("max_value", key))
    suid = data.columns.get(data.stats_key("unique_id", key))
    n = data.points
    sums = np.full(n, np.nan)
    maxes = np.full(n, np.nan)
    last_uid = np.full(n, np.nan)
    uid_seq: list[float] = []
    problems: list[str] = []
    files: dict[Path, Any] = {}
    try:
        for p in range(n):
            try:
                if p >= len(ids) or ids[p] not in data.datums:
                    raise LookupError(
                        f"point {p}: datum {ids[p] if p < len(ids) else None!r} not in the catalog"
                    )
                datum = data.datums[ids[p]]
                if datum["resource"] not in data.resources:
                    raise LookupError(f"point {p}: resource {datum['resource']} missing")
                path, first, fpp = data.frame_location(key, p)
                if path not in files:
                    if not path.exists():
                        raise LookupError(f"point {p}: file {path} does not exist")
                    files[path] = h5py.File(path, "r", locking=False)
                f = files[path]
                dset = f[IMAGE_DATASET]
                if first + fpp > dset.shape[0]:
                    raise LookupError(
                        f"point {p}: frames {first}..{first + fpp - 1} beyond "
                        f"the {dset.shape[0]} frames of {path.name}"
                    )
            except (LookupError, OSError, KeyError) as exc:
                problems.append(str(exc))
                continue
            last = np.asarray(dset[first + fpp - 1])
            sums[p] = float(last.sum(dtype=np.uint64))
            maxes[p] = float(last.max())
            if UNIQUE_ID_DATASET in f:
                ids_p = np.asarray(f[UNIQUE_ID_DATASET][first : first + fpp], dtype=float)
                uid_seq.extend(ids_p.tolist())
                last_uid[p] = ids_p[-1]
    finally:
        for f in files.values():
            f.close()
    names = ", ".join(str(p) for p in files) or "none"
    detail = (
        f"{n} points -> {len(files)} file(s): {names}"
        if not problems
        else f"{len(problems)} of {n} points unresolved; first: {problems[0]}"
    )
    report.add("datum -> HDF5 file", not problems and n > 0 and len(ids) == n, detail)

    # --- unique ids
    seq = np.array(uid_seq)
    if seq.size == 0:
        report.add("unique ids consecutive", False, f"no {UNIQUE_ID_DATASET} read")
    else:
        steps = np.diff(seq)
        bad = np.flatnonzero(steps != 1)
        report.add(
            "unique ids consecutive",
            bad.size == 0,
            f"{int(seq[0])}..{int(seq[-1])} ({seq.size} frames)"
            if bad.size == 0
            else f"{bad.size} gaps; first after frame {int(bad[0])}: "
            f"{int(seq[bad[0]])} -> {int(seq[bad[0] + 1])}",
        )

    def compare(name: str, got: np.ndarray, column: np.ndarray | None, colname: str):
        if column is None:
            report.add(name, False, f"no column {colname} in the catalog")
            return
        k = _first_mismatch(got, column)
        if k is None:
            report.add(name, True, f"{n} points equal {colname}")
        else:
            count = int(np.sum(~np.isclose(got, column, rtol=0, atol=0)))
            report.add(
                name,
                False,
                f"{count} of {n} points differ; first point {k}: "
                f"HDF5 {_fmt(got[k])} != {colname} {_fmt(column[k])}",
            )

    compare("unique id = stats", last_uid, suid, data.stats_key("unique_id", key))
    compare("frame sum = total", sums, total, data.stats_key("total", key))
    compare("frame max = max_value", maxes, vmax, data.stats_key("max_value", key))


def _check_spec(report: Report, data: RunData, cfg: dict) -> None:
    from adscan.callbacks.specfile import spec_file_path

    path = spec_file_path(cfg)
    scan = read_spec_scan(path, data.uid, data.scan_id)
    if scan is None:
        report.add(
            "SPEC scan found", False, f"no scan with uid {data.uid} or #S {data.scan_id} in {path}"
        )
        return
    report.add("SPEC scan found", True, f"#S {scan['number']} (by {scan['by']}) in {path}")
    rows = len(scan["rows"])
    report.add(
        "SPEC points", rows == data.points, f"{rows} data rows, catalog has {data.points} points"
    )
    wanted = [data.stats_key(w) for w in ("total", "max_value", "unique_id")]
    for m in data.motors:
        wanted += [m, f"{m}_user_setpoint"]
    missing = [c for c in wanted[:3] if c not in scan["labels"]]
    compared, diffs = [], []
    for col in wanted:
        if col not in scan["labels"] or col not in data.columns:
            continue
        spec_values = _spec_column(scan, col)
        cat_values = data.columns[col]
        if spec_values.size != cat_values.size:
            diffs.append(f"{col}: {spec_values.size} values v. {cat_values.size}")
            continue
        k = _first_mismatch(spec_values, cat_values, rtol=SPEC_RTOL)
        if k is not None:
            diffs.append(
                f"{col} row {k}: SPEC {_fmt(spec_values[k])} != catalog {_fmt(cat_values[k])}"
            )
        compared.append(col)
    ok = not missing and not diffs and bool(compared)
    detail = (
        f"{len(compared)} columns equal: {', '.join(compared)}"
        if ok
        else "; ".join(([f"missing {missing}"] if missing else []) + diffs)
    )
    report.add("SPEC columns", ok, detail)


def verify_data(cfg: dict, data: RunData) -> Report:
    """All checks on an already read run."""
    report = Report(
        uid=data.uid, scan_id=data.scan_id, plan=plan_of(data.start) or "?", points=data.points
    )
    _check_run(report, data)
    _check_images(report, data, cfg)
    _check_spec(report, data, cfg)
    return report


def verify_run(cfg: dict | None, uid_or_index: Any = -1) -> Report:
    """Verify one run (uid, ``-N`` or scan_id) of the catalog named by ``cfg``."""
    if cfg is None:
        from adscan.core.config import load_iconfig

        cfg = load_iconfig()
    return verify_data(cfg, read_run(open_run(cfg, uid_or_index)))


def main_verify(argv: list[str] | None = None) -> int:
    """``adscan verify <uid|-N|scan_id>``: print the PASS/FAIL table; exit 1 on any FAIL."""
    parser = argparse.ArgumentParser(
        prog="adscan verify",
        description="Check that a run's catalog, HDF5 frames and SPEC scan agree.",
    )
    parser.add_argument(
        "run",
        nargs="?",
        default="-1",
        help="run uid (or its start), -N (N-th most recent) or scan_id (default -1)",
    )
    parser.add_argument("--iconfig", default=None, help="iconfig.yml (default $ADSCAN_ICONFIG)")
    args = parser.parse_args(argv)
    from adscan.core.config import load_iconfig

    cfg = load_iconfig(args.iconfig)
    try:
        report = verify_run(cfg, args.run)
    except KeyError as exc:
        print(f"adscan verify: no run {args.run!r} in the catalog ({exc})", file=sys.stderr)
        return 2
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_verify())
