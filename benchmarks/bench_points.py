"""Per-point overhead, per-run fixed cost, queue/in-process and queue hand-off, in one run.

Every figure is the median of ``--repeats`` (>= 3) runs, the runs of all configurations
interleaved (repeat 1 of everything, then repeat 2, ...) so that a load change on this shared
machine hits every configuration alike; the spread (min-max of the runs) is printed beside it.
With ``--compare`` each run is made twice in a row, with adscan's client-side levers off
(``ADSCAN_CLIENT_LEVERS=0``: ophyd's behaviour) and on, so "before" and "after" come from one
invocation.

* overhead per point: median over the run's points of (trigger -> next trigger) minus the
  ideal point (frames x acquire period + the motors' move), from RunEngine message stamps;
* per-run fixed cost: RE call -> first trigger plus last event -> RE returns;
* whole run: (start -> stop document - ideal) / points, as ``bench_scans.py``;
* queue/in-process: the same plan through the RE Manager (queue_start -> stop document) over
  in-process (start -> stop document), 50 points;
* queue hand-off: stop document of item i -> start document of item i+1 in a queue of items.

Usage: ``python benchmarks/bench_points.py [--quick] [--compare] [--repeats N]
[--budget-min M]``.  ``--quick`` (a couple of minutes): 16x16 and 1024x1024, 3 frames, 20
points, no queue.  Each run's figures are printed as soon as it is measured; the table of
medians comes at the end.  With ``--budget-min`` the matrix stops cleanly (between runs) once
M minutes are spent, and the table shows what was measured (``n=`` runs when fewer than
``--repeats``); the budget counts from the start, service start-up included.  The full
matrix (3 sizes x 3 frame counts x 4 plans x 3 repeats, 30 points) takes well over 25
minutes on 2 loaded cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Budget, report  # noqa: E402
from _service import Bench, move_time  # noqa: E402
from bench_scans import plan_call, position, set_acquire  # noqa: E402
from profile_point import Stamps, set_size, spec  # noqa: E402

PLANS = ("adscan_count", "adscan_scan", "adscan_scan2", "adscan_grid_scan")
MOTORS = {
    "adscan_count": [],
    "adscan_scan": ["m1"],
    "adscan_scan2": ["m1", "m2"],
    "adscan_grid_scan": ["m1", "m2"],
}


def levers(on: bool) -> None:
    os.environ["ADSCAN_CLIENT_LEVERS"] = "1" if on else "0"


def one_run(bench: Bench, plan: str, n: int, frames: int, period: float) -> dict:
    """One in-process run, stamped: per-point overhead, fixed cost, whole-run overhead (s)."""
    RE, det = bench.ns["RE"], bench.device("simdet")
    a, k, pts = spec(plan, n, frames)
    position(bench, pts)
    st = Stamps()
    RE.msg_hook = st.hook
    try:
        r = bench.run_inproc(plan_call(bench, plan, a, k))
    finally:
        RE.msg_hook = None
    velocity = float(bench.device("m1").velocity.get())
    accel = float(bench.device("m1").acceleration.get())
    trig = [t for t, cmd, obj in st.msgs if cmd == "trigger" and obj == det.name]
    saves = [t for t, cmd, _ in st.msgs if cmd == "save"]
    over = []
    for i in range(len(trig) - 1):
        moves = [move_time(pts[i + 1][m] - pts[i][m], velocity, accel) for m in pts[i]]
        over.append(trig[i + 1] - trig[i] - frames * period - max(moves or [0.0]))
    ideal = n * frames * period + sum(
        max([move_time(b[m] - a_[m], velocity, accel) for m in b] or [0.0])
        for a_, b in zip(pts, pts[1:], strict=False)
    )
    return {
        "point": statistics.median(over) if over else float("nan"),
        "fixed": (trig[0] - r["t_call"]) + (r["t_return"] - saves[-1]),
        "whole": (r["stop"] - r["start"] - ideal) / n,
    }


def queue_ratio(bench: Bench, plan: str, n: int, frames: int) -> float:
    """(queue_start -> stop doc) / in-process (start -> stop doc), same plan, one run each."""
    a, k, pts = spec(plan, n, frames)
    position(bench, pts)
    ip = bench.run_inproc(plan_call(bench, plan, a, k))
    position(bench, pts)
    q = bench.run_queue(plan, a, k)
    return (q["stop"] - q["t_queue_start"]) / (ip["stop"] - ip["start"])


def hand_off(bench: Bench, items: int) -> list[float]:
    """Stop document of each item -> start document of the next, in one queue (s)."""
    from bluesky_queueserver_api import BPlan

    rm = bench.rm
    n0 = rm.status()["items_in_history"]
    res = rm.item_add_batch([BPlan("adscan_count", num=1, frames=1) for _ in range(items)])
    if not res["success"]:
        raise RuntimeError(res["msg"])
    rm.queue_start()
    bench.wait_idle(n0 + items)
    hist = rm.history_get()["items"][n0:]
    docs = [bench.run_docs(bench.cfg, h["result"]["run_uids"][-1]) for h in hist]
    return [b[0]["time"] - a[1]["time"] for a, b in zip(docs, docs[1:], strict=False)]


def spread(values: list[float], scale: float = 1e3) -> tuple[float, float, float]:
    v = [x * scale for x in values if x == x]
    return statistics.median(v), min(v), max(v)


def fmt(values: list[float], scale: float = 1e3, digits: int = 1, want: int = 0) -> str:
    """median [min-max], with the number of runs when fewer than ``want`` were made."""
    if not [x for x in values if x == x]:
        return "-"
    med, lo, hi = spread(values, scale)
    n = f" n={len(values)}" if len(values) < want else ""
    return f"{med:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]{n}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--compare", action="store_true", help="levers off and on, alternating")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--sizes", default=None, help="frame regions, e.g. 16,256,1024")
    ap.add_argument("--frames", default=None, help="frames per point, e.g. 1,3,10")
    ap.add_argument("--plans", default=",".join(PLANS))
    ap.add_argument("--acquire", type=float, default=0.01)
    ap.add_argument("--no-queue", action="store_true")
    ap.add_argument("--items", type=int, default=10, help="queue items for the hand-off")
    ap.add_argument(
        "--budget-min", type=float, default=None, help="stop cleanly after this many minutes"
    )
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (medians of at least 3 runs)")
    n = args.points or (20 if args.quick else 30)
    sizes = [
        int(x) for x in (args.sizes or ("16,1024" if args.quick else "16,256,1024")).split(",")
    ]
    frames_list = [int(x) for x in (args.frames or ("3" if args.quick else "1,3,10")).split(",")]
    plans = args.plans.split(",")
    modes = [False, True] if args.compare else [True]
    queue = not (args.no_queue or args.quick)
    budget = Budget(args.budget_min)

    bench = Bench(log=print)
    res: dict[tuple, dict[str, list[float]]] = {}
    qres: dict[tuple, list[float]] = {}
    handoff: dict[bool, list[float]] = {}
    loads = []
    try:
        bench.start(queue=queue)
        set_acquire(bench, args.acquire)
        bench.run_inproc(plan_call(bench, "adscan_count", [], {"num": 2, "frames": 1}))
        if queue:
            bench.run_queue("adscan_count", [], {"num": 2, "frames": 1})  # worker's first run
        t0 = time.monotonic()
        print(f"  per run, ms: per point (median) | fixed | whole run/pt; {n} points", flush=True)
        for rep in range(args.repeats):
            if budget.over():
                break
            loads.append(os.getloadavg()[0])
            for size in sizes:
                if budget.over():
                    break
                set_size(bench, size)
                # the first run after a frame-size change costs seconds more (HDF1 follows the
                # new dimensions): a throw-away run, so that it is charged to no configuration
                bench.run_inproc(plan_call(bench, "adscan_count", [], {"num": 2, "frames": 1}))
                for frames in frames_list:
                    for plan in plans:
                        for on in modes:
                            if budget.over():
                                break
                            levers(on)
                            r = one_run(bench, plan, n, frames, args.acquire)
                            d = res.setdefault((plan, size, frames, on), {})
                            for key, v in r.items():
                                d.setdefault(key, []).append(v)
                            print(
                                f"  [{rep + 1}/{args.repeats} {time.monotonic() - t0:5.0f} s"
                                f" load {os.getloadavg()[0]:.1f}] {plan:<17}{size:>5}px "
                                f"x{frames:<3}{'' if on else ' levers off'} "
                                f"{r['point'] * 1e3:7.1f} | {r['fixed'] * 1e3:5.0f} | "
                                f"{r['whole'] * 1e3:7.1f}",
                                flush=True,
                            )
            print(
                f"  repeat {rep + 1}/{args.repeats} done at {time.monotonic() - t0:.0f} s, "
                f"load {loads[-1]:.1f}",
                flush=True,
            )
        levers(True)
        if queue and not budget.over():  # queue workers take ADSCAN_CLIENT_LEVERS at start-up
            set_size(bench, 1024)
            bench.run_inproc(plan_call(bench, "adscan_count", [], {"num": 2, "frames": 1}))
            for _rep in range(args.repeats):
                for plan in plans:
                    if budget.over():
                        break
                    ratio = queue_ratio(bench, plan, 50, 3)
                    qres.setdefault((plan, 1024, 3), []).append(ratio)
                    print(f"  queue/in-process {plan} 50 pts x3 1024px: {ratio:.3f}", flush=True)
            if not budget.over():
                handoff[True] = hand_off(bench, args.items)
                print(f"  queue hand-off: {fmt(handoff[True])} ms", flush=True)
        loads.append(os.getloadavg()[0])
    finally:
        levers(True)
        try:
            bench.stop()
        finally:
            if res or qres:
                table(args, n, res, qres, handoff, loads, budget)
            else:
                print("  no run finished: nothing to tabulate", flush=True)
    return 0


def table(args, n: int, res: dict, qres: dict, handoff: dict, loads: list, budget) -> None:
    """The medians of what was measured (also after a budget stop or an interruption)."""
    want = args.repeats
    rows = [
        ("load average (1 min) at each repeat", " ".join(f"{x:.1f}" for x in loads), ""),
        ("points per run / acquire period", f"{n} / {args.acquire:g} s", ""),
    ]
    if budget.hit:
        rows.append(("stopped by the time budget (min)", f"{budget.minutes:g}", ""))
    print(f"\nmedian [min-max] of {want} interleaved runs; ms")
    head = (
        f"{'plan':<17}{'px':>6}{'fr':>4}  {'levers':<7}{'per point':>26} {'fixed/run':>24} "
        f"{'whole run/pt':>26}"
    )
    print(head)
    for (plan, size, frames, on), d in res.items():
        tag = "on" if on else "off"
        print(
            f"{plan:<17}{size:>6}{frames:>4}  {tag:<7}{fmt(d['point'], want=want):>26} "
            f"{fmt(d['fixed'], digits=0, want=want):>24} {fmt(d['whole'], want=want):>26}"
        )
        rows.append(
            (
                f"{plan.removeprefix('adscan_')} {size}px x{frames} levers {tag}",
                f"per point {fmt(d['point'], want=want)} | "
                f"fixed {fmt(d['fixed'], digits=0, want=want)} | "
                f"whole run {fmt(d['whole'], want=want)}",
                "ms",
            )
        )
    for (plan, size, frames), ratios in qres.items():
        shown = fmt(ratios, scale=1, digits=3, want=want)
        print(f"queue/in-process {plan} 50 pts x{frames} {size}px: {shown}")
        rows.append(
            (f"queue/in-process {plan.removeprefix('adscan_')} 50x{frames} {size}px", shown, "")
        )
    for _on, gaps in handoff.items():
        shown = fmt(gaps)
        print(f"queue hand-off (stop doc -> next start doc), {len(gaps)} gaps: {shown} ms")
        rows.append(("queue hand-off per item, stop doc -> next start doc", shown, "ms"))
    report(
        "points",
        rows,
        {
            "quick": args.quick,
            "compare": args.compare,
            "budget_hit": budget.hit,
            "runs": {"|".join(map(str, k)): v for k, v in res.items()},
            "queue": {"|".join(map(str, k)): v for k, v in qres.items()},
            "handoff": handoff.get(True, []),
            "loads": loads,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
