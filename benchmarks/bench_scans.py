"""Scan efficiency: the how-to's four plans through the queue and in-process, v. the ideal time.

For each plan (adscan_count, adscan_scan, adscan_scan2, adscan_grid_scan), 3 frames per point,
AcquireTime = AcquirePeriod = 0.01 s and 0.1 s, 5 / 50 / 500 points (grid 1x5, 5x10, 20x25):

* in-process: the profile's RunEngine (``adscan.instrument``) in this process, timed from the
  start document to the stop document;
* queue: the same plan through the RE Manager, timed from the client's ``queue_start`` to the
  stop document ("queue") and from start to stop document ("queue run");
* ideal: points x frames x acquire period + the motors' travel between points at the
  configured velocity and acceleration (moves of several motors overlap).

Overhead per point = (time - ideal) / points.  Prints a table, writes
``benchmarks/results/scans.json``.  Usage: ``python benchmarks/bench_scans.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _service import Bench, move_time  # noqa: E402

GRID = {5: (1, 5), 50: (5, 10), 500: (20, 25)}
FRAMES = 3


def plan_spec(plan: str, n: int) -> tuple[list, dict, list[dict[str, float]]]:
    """(args, kwargs, motor positions per point) for ``plan`` with ``n`` points."""
    kw = {"frames": FRAMES}
    if plan == "adscan_count":
        return [], {"num": n, **kw}, [{} for _ in range(n)]
    if plan == "adscan_scan":
        return ["m1", -1, 1, n], kw, [{"m1": x} for x in np.linspace(-1, 1, n)]
    if plan == "adscan_scan2":
        return (
            ["m1", -1, 1, "m2", 4, 1.5, n],
            kw,
            [
                {"m1": a, "m2": b}
                for a, b in zip(np.linspace(-1, 1, n), np.linspace(4, 1.5, n), strict=True)
            ],
        )
    if plan == "adscan_grid_scan":
        n1, n2 = GRID[n]
        pts = []
        inner = list(np.linspace(-0.5, 0.5, n2))
        for i, a in enumerate(np.linspace(-1, 1, n1)):
            for b in inner if i % 2 == 0 else inner[::-1]:  # snake
                pts.append({"m1": a, "m2": b})
        return (["m1", -1, 1, n1, "m2", -0.5, 0.5, n2], {"snake": True, **kw}, pts)
    raise ValueError(plan)


def ideal_seconds(points: list[dict], period: float, velocity: float, accel: float) -> float:
    """Frames plus motor travel between consecutive points (motors start at the first point)."""
    t = len(points) * FRAMES * period
    for prev, cur in zip(points, points[1:], strict=False):
        t += max([move_time(cur[m] - prev[m], velocity, accel) for m in cur] or [0.0])
    return t


def plan_call(bench: Bench, plan: str, args: list, kwargs: dict):
    fn = bench.ns[plan]
    return fn(*args, **kwargs)


def position(bench: Bench, points: list[dict]) -> None:
    """Move the motors to the first point (both modes start from the same place)."""
    sts = [bench.device(m).set(float(v)) for m, v in (points[0] if points else {}).items()]
    for st in sts:
        st.wait(60)


def set_acquire(bench: Bench, seconds: float) -> None:
    cam = bench.device("simdet").cam
    cam.acquire_time.put(seconds, wait=True)
    cam.acquire_period.put(seconds, wait=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 and 50 points at 0.01 s only")
    ap.add_argument("--plans", default="adscan_count,adscan_scan,adscan_scan2,adscan_grid_scan")
    ap.add_argument("--points", default=None, help="comma-separated point counts")
    ap.add_argument("--acquire", default=None, help="comma-separated acquire times (s)")
    ap.add_argument("--no-queue", action="store_true", help="in-process only")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in (args.points or ("5,50" if args.quick else "5,50,500")).split(",")]
    acquires = [
        float(x) for x in (args.acquire or ("0.01" if args.quick else "0.01,0.1")).split(",")
    ]
    plans = args.plans.split(",")

    bench = Bench(log=lambda s: print(s, flush=True))
    rows, records = [], []
    try:
        bench.start(queue=not args.no_queue)
        cfg = bench.cfg
        velocity = float(cfg["ioc"]["motor_velocity"])
        accel = float(bench.device("m1").acceleration.get())
        rows.append(
            (
                "motor velocity (configured) / acceleration time",
                f"{velocity:g} u/s, {accel:g} s",
                "",
            )
        )
        # one throw-away run: connections, first stage, HDF1 file open (reported separately)
        set_acquire(bench, acquires[0])
        a, k, pts = plan_spec("adscan_count", 5)
        first = bench.run_inproc(plan_call(bench, "adscan_count", a, k))
        again = bench.run_inproc(plan_call(bench, "adscan_count", a, k))
        rows.append(
            (
                "first in-process run v. second (count 5x3)",
                f"{first['stop'] - first['start']:.2f} s / {again['stop'] - again['start']:.2f} s",
                "",
            )
        )
        if not args.no_queue:
            bench.run_queue("adscan_count", a, k)  # worker's first run, not measured
        for acq in acquires:
            set_acquire(bench, acq)
            for n in sizes:
                for plan in plans:
                    a, k, pts = plan_spec(plan, n)
                    ideal = ideal_seconds(pts, acq, velocity, accel)
                    position(bench, pts)
                    ip = bench.run_inproc(plan_call(bench, plan, a, k))
                    t_in = ip["stop"] - ip["start"]
                    rec = {
                        "plan": plan,
                        "points": n,
                        "frames": FRAMES,
                        "acquire": acq,
                        "ideal_s": ideal,
                        "inproc_s": t_in,
                        "inproc_overhead_ms": (t_in - ideal) / n * 1e3,
                        "events": ip["num_events"],
                    }
                    if not args.no_queue:
                        position(bench, pts)
                        q = bench.run_queue(plan, a, k)
                        t_q = q["stop"] - q["t_queue_start"]
                        t_qrun = q["stop"] - q["start"]
                        rec.update(
                            queue_s=t_q,
                            queue_run_s=t_qrun,
                            queue_idle_s=q["t_idle"] - q["t_queue_start"],
                            queue_overhead_ms=(t_q - ideal) / n * 1e3,
                            queue_run_overhead_ms=(t_qrun - ideal) / n * 1e3,
                            queue_over_ideal=t_q / ideal,
                            queue_over_inproc=t_q / t_in,
                            queue_run_over_inproc=t_qrun / t_in,
                            start_latency_s=q["start"] - q["t_queue_start"],
                        )
                    records.append(rec)
                    shown = (
                        f"{plan:<17} n={n:<4} acq={acq:<5} ideal {ideal:7.2f} s  "
                        f"in-proc {t_in:7.2f} s ({rec['inproc_overhead_ms']:6.1f} ms/pt)"
                    )
                    if "queue_s" in rec:
                        shown += (
                            f"  queue {rec['queue_s']:7.2f} s "
                            f"({rec['queue_overhead_ms']:6.1f} ms/pt, run "
                            f"{rec['queue_run_overhead_ms']:6.1f})  q/in "
                            f"{rec['queue_over_inproc']:.3f}"
                        )
                    print("  " + shown, flush=True)
    finally:
        bench.stop()

    for r in records:
        label = f"{r['plan'].removeprefix('adscan_')} {r['points']}x{FRAMES} @{r['acquire']:g}s"
        value = (
            f"ideal {r['ideal_s']:.2f} | in {r['inproc_s']:.2f} "
            f"({r['inproc_overhead_ms']:.1f} ms/pt)"
        )
        if "queue_s" in r:
            value += (
                f" | queue {r['queue_s']:.2f} / run {r['queue_run_s']:.2f} "
                f"({r['queue_overhead_ms']:.1f} / {r['queue_run_overhead_ms']:.1f} ms/pt)"
                f" | q/ideal {r['queue_over_ideal']:.2f} q/in {r['queue_over_inproc']:.3f}"
            )
        rows.append((label, value, ""))
    report("scans", rows, {"records": records, "quick": args.quick})
    return 0


if __name__ == "__main__":
    sys.exit(main())
