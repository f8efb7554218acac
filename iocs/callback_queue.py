"""The IOC core's callback queues: their state, and a watch that logs any overflow.

Every softioc input record posts its value through ``scanIoRequest``, which queues one
entry on the callback queue of the record's ``PRIO``.  EPICS base's queues hold 2000
entries each (measured here: at most 36 in use during the test suite's scans); a full
queue drops the request and the record's last value may never reach a client.  The watch
says so in the IOC's log (areaDetector IOCs then raise ``callbackSetQueueSize`` in
``st.cmd``), instead of leaving a silent stale value.
"""

from __future__ import annotations

import ctypes
import functools
import logging

logger = logging.getLogger("adscan.ioc.callbacks")

PRIORITIES = ("low", "medium", "high")


class QueueStats(ctypes.Structure):
    """``callbackQueueStats`` of EPICS base 7 (callback.h)."""

    _fields_ = [
        ("size", ctypes.c_int),
        ("numUsed", ctypes.c_int * 3),
        ("maxUsed", ctypes.c_int * 3),
        ("numOverflow", ctypes.c_int * 3),
    ]


@functools.cache
def _queue_status_fn():
    """EPICS base's ``callbackQueueStatus`` with its C signature (softioc loads on first use)."""
    from softioc import imports

    fn = imports.dbCore.callbackQueueStatus
    fn.argtypes = (ctypes.c_int, ctypes.POINTER(QueueStats))
    fn.restype = ctypes.c_int
    return fn


def status(reset: bool = False) -> dict[str, object]:
    """Size, entries in use, high-water marks and overflows per priority (after iocInit)."""
    fn = _queue_status_fn()
    stats = QueueStats()
    if fn(int(reset), ctypes.byref(stats)) != 0:
        raise RuntimeError("callbackQueueStatus failed (callback queues not running)")
    return {
        "size": stats.size,
        "used": dict(zip(PRIORITIES, stats.numUsed, strict=True)),
        "max_used": dict(zip(PRIORITIES, stats.maxUsed, strict=True)),
        "overflows": dict(zip(PRIORITIES, stats.numOverflow, strict=True)),
    }


class OverflowWatch:
    """Call :meth:`poll` now and then: it logs an ERROR once per new overflow count."""

    def __init__(self) -> None:
        self._seen = dict.fromkeys(PRIORITIES, 0)

    def poll(self) -> dict[str, int]:
        """New overflows per priority since the last poll (logged); {} when none."""
        try:
            now = status()
        except Exception:  # noqa: BLE001 - a diagnostic never stops the IOC
            return {}
        new = {p: n - self._seen[p] for p, n in now["overflows"].items() if n > self._seen[p]}
        if new:
            self._seen.update(now["overflows"])
            logger.error(
                "callback queue overflow: %s request(s) dropped (size %s, high-water %s); "
                "records may hold stale values",
                new,
                now["size"],
                now["max_used"],
            )
        return new
