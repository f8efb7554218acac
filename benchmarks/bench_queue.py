"""Queue server: start latency, items/s for trivial plans, RE Manager memory.

* latency: ``item_add`` + ``queue_start`` -> the run's start document (its ``time`` read back
  from the catalog), for the stock ``count([m1], num=1)``, repeated;
* items/s: a queue of N trivial plans (``count([m1], num=1)``; N = 1,000, quick 100) from
  ``queue_start`` until the manager is idle again;
* memory: psutil RSS of the RE Manager and its worker after those items.

Prints a table, writes ``benchmarks/results/queue.json``.
Usage: ``python benchmarks/bench_queue.py [--quick] [--items N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _service import Bench  # noqa: E402

TRIVIAL = ("count", [["m1"]], {"num": 1})


def rss_mb(pid: int) -> tuple[float, float]:
    """(manager, manager + children) resident memory in MB."""
    import psutil

    proc = psutil.Process(pid)
    own = proc.memory_info().rss
    kids = sum(c.memory_info().rss for c in proc.children(recursive=True))
    return own / 1e6, (own + kids) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 items, 5 latency samples")
    ap.add_argument("--items", type=int, default=None)
    args = ap.parse_args(argv)
    n_items = args.items or (100 if args.quick else 1000)
    n_lat = 5 if args.quick else 20
    from bluesky_queueserver_api import BPlan

    from adscan.services import re_manager_pid

    bench = Bench(log=lambda s: print(s, flush=True))
    rows = []
    try:
        bench.start(inproc=False)
        pid = re_manager_pid(bench.cfg)
        mem0 = rss_mb(pid)
        name, a, k = TRIVIAL
        bench.run_queue(name, a, k)  # first item: imports, connections
        lat, lat_run = [], []
        for _ in range(n_lat):
            q = bench.run_queue(name, a, k)
            lat.append(q["start"] - q["t_add"])
            lat_run.append(q["start"] - q["t_queue_start"])
            time.sleep(0.2)
        print(f"  latency: {[round(x * 1e3) for x in lat]} ms", flush=True)
        rm = bench.rm
        n0 = rm.status()["items_in_history"]
        for i in range(0, n_items, 100):
            items = [BPlan(name, *a, **k) for _ in range(min(100, n_items - i))]
            res = rm.item_add_batch(items)
            if not res["success"]:
                raise RuntimeError(res["msg"])
        print(f"  {n_items} items queued; running ...", flush=True)
        t0 = time.time()
        rm.queue_start()
        last = t0
        while True:
            st = rm.status()
            if st["manager_state"] == "idle" and st["items_in_history"] >= n0 + n_items:
                break
            if st["manager_state"] == "idle" and not st["items_in_queue"]:
                raise RuntimeError("queue stopped early")
            if time.time() - last > 15:
                done = st["items_in_history"] - n0
                print(
                    f"  ... {done}/{n_items} items, {done / (time.time() - t0):.2f} items/s",
                    flush=True,
                )
                last = time.time()
            time.sleep(0.05)
        seconds = time.time() - t0
        mem1 = rss_mb(pid)
        failed = [
            h for h in rm.history_get()["items"][n0:] if h["result"]["exit_status"] != "completed"
        ]
        rows = [
            (
                "latency item_add+queue_start -> start doc, median",
                statistics.median(lat) * 1e3,
                "ms",
            ),
            ("  max", max(lat) * 1e3, "ms"),
            ("latency queue_start -> start doc, median", statistics.median(lat_run) * 1e3, "ms"),
            (f"queue of {n_items} x count([m1], num=1)", seconds, "s"),
            ("  items/s", n_items / seconds, "items/s"),
            ("  seconds per item", seconds / n_items, "s"),
            ("  items not completed", str(len(failed)), ""),
            ("RE Manager RSS before / after", f"{mem0[0]:.0f} / {mem1[0]:.0f}", "MB"),
            (
                "RE Manager + worker (+ children) RSS before / after",
                f"{mem0[1]:.0f} / {mem1[1]:.0f}",
                "MB",
            ),
        ]
    finally:
        bench.stop()
    report("queue", rows, {"items": n_items, "latency_s": lat})
    return 0


if __name__ == "__main__":
    sys.exit(main())
