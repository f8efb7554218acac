"""Per-run progress: printed to the worker console and available as ``adscan_progress()``.

In the queue-server worker every primary event prints one line, e.g.::

    [adscan] scan 12 adscan_grid_scan: point 7/20 (35%), 3.1 s elapsed, ~5.8 s left

which ``qserver-console-monitor`` and the RE Manager log show.  ``adscan_progress()`` is a
function of the profile, so clients can ask while a plan runs::

    qserver function execute '{"name": "adscan_progress"}' background

It answers the running queue item's uid (``item_uid``), the uids of its runs so far
(``run_uids``), points done/total and the estimated time left.  Every start document also
carries ``item_uid`` (:func:`item_uid_preprocessor`, queueserver issue #374), so document
consumers (the catalog, ``adscan watch``) can tell which queue item made a run.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from bluesky import preprocessors as bpp
from bluesky.callbacks.core import CallbackBase

from adscan.core.schema import PROGRESS_PREFIX, plan_of, progress_point_line


def running_item_uid() -> str | None:
    """The uid of the queue item the RE Worker is running, or None outside the worker.

    bluesky-queueserver 0.0.25 runs the profile inside its ``RunEngineWorker`` process (a
    ``multiprocessing.Process``), which keeps the running item in ``_running_plan_info``
    (the same value its ``status`` reports as ``running_item_uid``).  There is no public
    accessor: this is the one place that reads it.
    """
    import multiprocessing

    info = getattr(multiprocessing.current_process(), "_running_plan_info", None)
    return info.get("item_uid") if isinstance(info, dict) else None


def item_uid_preprocessor(plan):
    """RunEngine preprocessor: every run opened by a queue item gets ``item_uid`` in its start."""

    def add_item_uid(msg):
        if msg.command == "open_run":
            uid = running_item_uid()
            if uid:
                return msg._replace(kwargs={**msg.kwargs, "item_uid": uid})
        return msg

    return (yield from bpp.msg_mutator(plan, add_item_uid))


class ProgressReporter(CallbackBase):
    """Counts the primary-stream points of the run in progress."""

    def __init__(self, stream: TextIO | None = sys.stdout, prefix: str = PROGRESS_PREFIX):
        super().__init__()
        self.stream = stream
        self.prefix = prefix
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle"}
        self._primary: str | None = None
        self._t0 = 0.0

    def _say(self, text: str) -> None:
        if self.stream is not None:
            print(f"{self.prefix} {text}", file=self.stream, flush=True)

    def start(self, doc):
        total = doc.get("num_points")
        item_uid = doc.get("item_uid")
        with self._lock:
            self._t0 = time.monotonic()
            self._primary = None
            same_item = item_uid is not None and item_uid == self._state.get("item_uid")
            run_uids = [*self._state.get("run_uids", []), doc["uid"]] if same_item else [doc["uid"]]
            self._state = {
                "state": "running",
                "uid": doc["uid"],
                "scan_id": doc.get("scan_id"),
                "item_uid": item_uid,
                "run_uids": run_uids,
                "time_start": doc.get("time"),
                "plan": plan_of(doc),
                "points_done": 0,
                "points_total": total,
                "elapsed_s": 0.0,
                "remaining_s": None,
                "exit_status": None,
            }
        self._say(
            f"scan {doc.get('scan_id')} {self._state['plan']}: started, "
            f"{total if total is not None else '?'} points"
        )

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary = doc["uid"]

    def event(self, doc):
        if doc.get("descriptor") != self._primary:
            return
        with self._lock:
            st = self._state
            st["points_done"] += 1
            st["elapsed_s"] = round(time.monotonic() - self._t0, 3)
            done, total = st["points_done"], st["points_total"]
            if total:
                st["remaining_s"] = round(st["elapsed_s"] / done * (total - done), 3)
            line = progress_point_line(
                st["scan_id"], st["plan"], done, total, st["elapsed_s"], st["remaining_s"]
            )
        self._say(line)

    def stop(self, doc):
        with self._lock:
            st = self._state
            st["state"] = "finished"
            st["exit_status"] = doc.get("exit_status")
            st["elapsed_s"] = round(time.monotonic() - self._t0, 3)
            st["remaining_s"] = 0.0
        self._say(
            f"scan {st.get('scan_id')} {st.get('plan')}: {doc.get('exit_status')} after "
            f"{st.get('points_done')} points in {st['elapsed_s']:.1f} s"
        )

    def snapshot(self) -> dict[str, Any]:
        """The current (or last) run's progress, JSON-serialisable."""
        with self._lock:
            return dict(self._state)


#: The profile's reporter (subscribed to RE by :func:`adscan.core.startup.make_writers`).
PROGRESS = ProgressReporter()


def adscan_progress() -> dict[str, Any]:
    """Progress of the run in progress (or the last one).

    Keys: ``state`` (idle/running/finished), ``uid`` and ``scan_id`` of the run, ``item_uid``
    (queue item), ``run_uids`` (every run of that item so far), ``plan``, ``points_done``,
    ``points_total``, ``elapsed_s``, ``remaining_s`` (linear estimate), ``exit_status``.
    """
    return PROGRESS.snapshot()
