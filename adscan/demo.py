"""``adscan demo``: the how-to's four plans through the queue, then a summary.

Brings the service up on the configured defaults (embedded catalog, simulated IOC),
queues count, a one-motor scan, a two-motor scan and a snake grid scan with 3 frames
per point through the real RE Manager, waits for them, and prints what landed where.
"""

from __future__ import annotations

import contextlib
import sys
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


class ProgressBar:
    """A one-line bar from ``adscan_progress()``, the profile function the queue server runs.

    The figures (points done/total, time left) come from the worker itself, asked through
    ``function_execute`` as any client may, not from the console text.
    """

    def __init__(self, progress=print, width: int = 30, period: float = 0.5):
        self.active = progress is print and sys.stdout.isatty()
        self.width = width
        self.period = period
        self._next = 0.0

    def poll(self, rm) -> None:
        """Ask the worker (at most every ``period`` s) and redraw the bar."""
        if not self.active or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.period
        with contextlib.suppress(Exception):  # a busy or closing worker: next time
            self.feed(adscan_progress(rm))

    def feed(self, value: dict[str, Any]) -> None:
        if not self.active or value.get("state") != "running":
            return
        done, total = value.get("points_done", 0), value.get("points_total") or 0
        fill = self.width * done // max(total, 1)
        left = value.get("remaining_s")
        sys.stdout.write(
            f"\r  scan {value.get('scan_id')} {value.get('plan', ''):<18} "
            f"[{'#' * fill}{'.' * (self.width - fill)}] {done}/{total or '?'}"
            + (f"  ~{left:.0f} s left " if left is not None else "")
        )
        sys.stdout.flush()

    def clear(self) -> None:
        if self.active:
            sys.stdout.write("\r" + " " * (self.width + 64) + "\r")
            sys.stdout.flush()


def adscan_progress(rm, timeout: float = 5.0) -> dict[str, Any]:
    """``adscan_progress()`` executed by the RE Worker (see :mod:`adscan.callbacks.progress`)."""
    from bluesky_queueserver_api import BFunc

    result = rm.function_execute(BFunc("adscan_progress"), run_in_background=True)
    if not result["success"]:
        raise RuntimeError(result["msg"])
    rm.wait_for_completed_task(result["task_uid"], timeout=timeout)
    return rm.task_result(result["task_uid"])["result"]["return_value"]


def queue_plans(
    cfg: dict,
    plans: list[tuple[str, list, dict]],
    timeout: float = 600.0,
    progress=print,
    clear_queue: bool = False,
) -> list[dict[str, Any]]:
    """Queue ``plans``, run the queue, wait until idle; return their history items.

    The queue must be empty to begin with (items left by someone else would run first);
    ``clear_queue`` empties it.  A plan that fails stops the wait at once.
    """
    from bluesky_queueserver_api import BPlan

    from adscan.services import re_manager_api

    rm = re_manager_api(cfg, timeout=10)
    bar = ProgressBar(progress)
    try:
        left = rm.queue_get()["items"]
        if left and not clear_queue:
            names = ", ".join(item["name"] for item in left[:5])
            raise RuntimeError(
                f"the queue already holds {len(left)} item(s) ({names}); they would run first. "
                "Empty it with `qserver queue clear` or run `./run demo --clear-queue`."
            )
        if left:
            progress(f"clearing {len(left)} item(s) left in the queue")
            rm.queue_clear()
        before = len(rm.history_get()["items"])
        for name, args, kwargs in plans:
            result = rm.item_add(BPlan(name, *args, **kwargs))
            if not result["success"]:
                raise RuntimeError(f"queue refused {name}: {result['msg']}")
            progress(f"queued   {name}{tuple(args)} {kwargs}")
            sys.stdout.flush()
        rm.queue_start()
        t0 = time.monotonic()
        done = 0
        while True:
            bar.poll(rm)
            status = rm.status()
            items = rm.history_get()["items"][before:]
            if len(items) > done:
                bar.clear()
                for item in items[done:]:
                    res = item.get("result", {})
                    progress(
                        f"finished {item['name']}: {res.get('exit_status')} "
                        f"({res.get('time_stop', 0) - res.get('time_start', 0):.1f} s)"
                    )
                done = len(items)
            if status["manager_state"] == "idle" and (
                done >= len(plans) or not status["items_in_queue"]
            ):
                break
            failed = [i for i in items if i.get("result", {}).get("exit_status") != "completed"]
            if status["manager_state"] == "idle" and failed:
                res = failed[-1]["result"]
                raise RuntimeError(
                    f"{failed[-1]['name']} {res.get('exit_status')}: "
                    f"{res.get('msg')}; the queue stopped (see `./run status`)"
                )
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(
                    f"queue not done after {timeout} s; it is still running (`./run status`; "
                    "`qserver re pause immediate` then `qserver re abort` stops the plan)"
                )
            time.sleep(0.2)
        return rm.history_get()["items"][before:]
    finally:
        bar.clear()
        rm.close()


def nexus_file(cfg: dict, uid: str, timeout: float = 10.0) -> Path | None:
    """The run's NeXus file (written in a thread after the run), or None if NeXus is off."""
    nexus = cfg.get("nexus") or {}
    if not nexus.get("enabled", True):
        return None
    directory = Path(nexus.get("directory") or cfg["spec"]["directory"])
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(directory.glob(f"*-{uid[:7]}.nxs"))
        if found or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.2)


def _fmt(value: float) -> str:
    return f"{int(value):>24d}" if value.is_integer() else f"{value:>24.6g}"


def summarize(cfg: dict, history: list[dict[str, Any]]) -> str:
    """Run uids, a stats table per point, HDF5 files and the SPEC file."""
    from adscan.data.catalog import image_files, open_catalog

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
            nexus = nexus_file(cfg, uid)
            if nexus is not None:
                out.append(f"  NeXus:  {nexus}  (images linked; `silx view` shows total v. motor)")
    spec = Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]
    out.append(f"\nSPEC file: {spec}")
    out.append(f"catalog:   {cfg['catalog'].get('mongo_uri') or cfg['catalog']['directory']}")
    return "\n".join(out)


def run_demo(
    cfg: dict, plans: list[tuple[str, list, dict]] | None = None, clear_queue: bool = False
) -> int:
    """Bring the service up, run the four plans, print the summary; 0 if all succeeded."""
    from adscan import services

    print("adscan demo: bringing the service up ...", flush=True)
    for info in services.up(cfg):
        print(f"  {info.name:<12} {info.state:<9} {info.address}", flush=True)
    try:
        history = queue_plans(cfg, plans or DEMO_PLANS, clear_queue=clear_queue)
    except (RuntimeError, TimeoutError) as ex:
        print(f"adscan demo: {ex}", file=sys.stderr)
        return 1
    print(summarize(cfg, history), flush=True)
    ok = all(h.get("result", {}).get("exit_status") == "completed" for h in history)
    print(
        "\nadscan demo:",
        "all plans completed" if ok else "SOME PLANS FAILED",
        "- the service keeps running; `./run status` shows it, `./run down` stops it.",
    )
    return 0 if ok and len(history) == len(plans or DEMO_PLANS) else 1
