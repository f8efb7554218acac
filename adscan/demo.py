"""``adscan demo``: the how-to's four plans through the queue, then a summary.

Brings the service up on the configured defaults (embedded catalog, simulated IOC),
queues count, a one-motor scan, a two-motor scan and a snake grid scan with 3 frames
per point through the real RE Manager, waits for them, and prints what landed where.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

#: The how-to's four plans, as users queue them.
DEMO_PLANS: list[tuple[str, list, dict]] = [
    ("adscan_count", [], {"num": 5, "frames": 3}),
    ("adscan_scan", ["m1", -1, 1, 5], {"frames": 3}),
    ("adscan_scan2", ["m1", -1, 1, "m2", 4, 1.5, 5], {"frames": 3}),
    ("adscan_grid_scan", ["m1", -1, 1, 5, "m2", -0.5, 0.5, 4], {"snake": True, "frames": 3}),
]


def queue_plans(cfg: dict, plans: list[tuple[str, list, dict]], timeout: float = 600.0,
                progress=print) -> list[dict[str, Any]]:
    """Queue ``plans``, run the queue, wait until idle; return their history items."""
    from bluesky_queueserver_api import BPlan

    from adscan.services import re_manager_api

    rm = re_manager_api(cfg, timeout=10)
    try:
        before = len(rm.history_get()["items"])
        for name, args, kwargs in plans:
            result = rm.item_add(BPlan(name, *args, **kwargs))
            if not result["success"]:
                raise RuntimeError(f"queue refused {name}: {result['msg']}")
            progress(f"queued   {name}{tuple(args)} {kwargs}")
        rm.queue_start()
        t0 = time.monotonic()
        done = 0
        while True:
            status = rm.status()
            items = rm.history_get()["items"][before:]
            if len(items) > done:
                for item in items[done:]:
                    res = item.get("result", {})
                    progress(f"finished {item['name']}: {res.get('exit_status')} "
                             f"({res.get('time_stop', 0) - res.get('time_start', 0):.1f} s)")
                done = len(items)
            if status["manager_state"] == "idle" and (done >= len(plans) or
                                                      not status["items_in_queue"]):
                break
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"queue not done after {timeout} s")
            time.sleep(0.2)
        return rm.history_get()["items"][before:]
    finally:
        rm.close()


def _fmt(value: float) -> str:
    return f"{int(value):>24d}" if value.is_integer() else f"{value:>24.6g}"


def summarize(cfg: dict, history: list[dict[str, Any]]) -> str:
    """Run uids, a stats table per point, HDF5 files and the SPEC file."""
    from adscan.catalog import image_files, open_catalog

    cat = open_catalog(cfg)
    out: list[str] = []
    for item in history:
        res = item.get("result", {})
        uids = res.get("run_uids", [])
        out.append(f"\n== {item['name']}  exit={res.get('exit_status')}  uids={uids}")
        for uid in uids:
            run = cat[uid]
            ds = run.primary.read()
            cols = [c for c in ds.data_vars if c != "simdet_image"]
            out.append("  point  " + "  ".join(f"{c:>24}" for c in cols))
            for i in range(ds.sizes["time"]):
                vals = "  ".join(_fmt(float(ds[c].values[i])) for c in cols)
                out.append(f"  {i + 1:>5}  {vals}")
            if "simdet_image" in ds:
                out.append(f"  images: simdet_image shape {tuple(ds['simdet_image'].shape)}")
            for path in image_files(run):
                out.append(f"  HDF5:   {path}")
    spec = Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]
    out.append(f"\nSPEC file: {spec}")
    out.append(f"catalog:   {cfg['catalog'].get('mongo_uri') or cfg['catalog']['directory']}")
    return "\n".join(out)


def run_demo(cfg: dict, plans: list[tuple[str, list, dict]] | None = None) -> int:
    """Bring the service up, run the four plans, print the summary; 0 if all succeeded."""
    from adscan import services

    print("adscan demo: bringing the service up ...", flush=True)
    for info in services.up(cfg):
        print(f"  {info.name:<12} {info.state:<9} {info.address}", flush=True)
    history = queue_plans(cfg, plans or DEMO_PLANS, progress=lambda s: print(s, flush=True))
    print(summarize(cfg, history), flush=True)
    ok = all(h.get("result", {}).get("exit_status") == "completed" for h in history)
    print("\nadscan demo:", "all plans completed" if ok else "SOME PLANS FAILED",
          "- the service keeps running; `./run status` shows it, `./run down` stops it.")
    return 0 if ok and len(history) == len(plans or DEMO_PLANS) else 1
