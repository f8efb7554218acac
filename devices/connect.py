"""Connect an ophyd device, recovering signals whose connection callbacks went missing.

``Device.wait_for_connection`` only polls each signal's ``connected`` flag, which ophyd's
control-layer callbacks set (connection, access rights, first metadata: run in ophyd's
dispatcher threads).  Under load a signal can stay unconnected although its PV answers: a
full test run once left ``ROI1:Dim1SA_RBV`` of 1,061 PVs unconnected for five minutes while
a caproto client read it, and another left ``image1:Dim0SA`` so for 60 s.  Such a PV backs
several signals of ophyd's plugin classes (``dim0_sa``, ``dim_sa.dim0``, ...), and every
signal after the first gets it from pyepics' cache (``epics.get_pv``), which checks
``connected`` and then appends the signal's callbacks, without a lock: a connection that
completes in between never calls them, and ophyd's blocking path then waits for them in
vain ("failed to send connection and access rights information").

So while the device waits, every ``REPLAY_PERIOD`` s, the unconnected signals get those lost
callbacks replayed, for each PV the control layer reports connected (a benchmark's plain
ophyd wait lost ``Pva1:Dim0SA_RBV`` so for its whole 120 s).  The signals still unconnected
when the timeout ends get them replayed once more, then a second, bounded chance on ophyd's
blocking path (connect the PV, fetch its metadata in the calling thread); those that still
fail are named, with their control-layer state, so the log says why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("adscan.devices.connect")

#: Seconds the still-unconnected signals get, together, on ophyd's blocking path (only when
#: some of the device's signals connected: an absent IOC fails at once after ``timeout``).
SIGNAL_RETRY_TIMEOUT = 5.0

#: While waiting, the late signals' lost callbacks are replayed every this many seconds.
REPLAY_PERIOD = 2.0


def _signals(device: Any, all_signals: bool) -> list[Any]:
    return [w.item for w in device.walk_signals(include_lazy=all_signals)]


def signal_state(sig: Any) -> str:
    """One line of a signal's control-layer state (what ophyd is still waiting for)."""
    parts = [getattr(sig, "pvname", sig.name)]
    for attr in ("_connection_states", "_access_rights_valid", "_received_first_metadata"):
        states = getattr(sig, attr, None)
        if isinstance(states, dict):
            waiting = [pv for pv, ok in states.items() if not ok]
            if waiting:
                parts.append(f"{attr.strip('_')}: waiting for {', '.join(waiting)}")
    return "; ".join(parts)


def replay_lost_callbacks(sig: Any) -> list[str]:
    """Run ophyd's connection and access-rights callbacks of ``sig`` for each of its PVs that
    the control layer reports connected while ``sig`` still waits for them (the pyepics
    ``get_pv`` race above); return the PV names replayed."""
    connections = getattr(sig, "_connection_states", None)
    rights = getattr(sig, "_access_rights_valid", None)
    if not isinstance(connections, dict) or not isinstance(rights, dict):
        return []  # not an EPICS signal
    pvs = {id(pv): pv for pv in (getattr(sig, "_read_pv", None), getattr(sig, "_write_pv", None))}
    replayed = []
    for pv in pvs.values():
        name = getattr(pv, "pvname", None)
        if pv is None or name not in connections or not getattr(pv, "connected", False):
            continue
        if not connections[name]:
            sig._pv_connected(pvname=name, conn=True, pv=pv)
            replayed.append(name)
        if not rights.get(name, True):
            sig._pv_access_callback(pv.read_access, pv.write_access, pv=pv)
            if name not in replayed:
                replayed.append(name)
    return replayed


def _replay_late(signals: list[Any]) -> None:
    for sig in signals:
        if not sig.connected:
            replayed = replay_lost_callbacks(sig)
            if replayed:
                logger.warning("%s: replayed lost callbacks of %s", sig.name, ", ".join(replayed))


def _wait_replaying(device: Any, all_signals: bool, timeout: float) -> TimeoutError | None:
    """ophyd's device wait in slices of ``REPLAY_PERIOD`` s, replaying lost callbacks between
    them (so one costs seconds, not the whole timeout); the last slice's error, or None."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            device.wait_for_connection(
                all_signals=all_signals, timeout=max(min(REPLAY_PERIOD, left), 0.001)
            )
            return None
        except TimeoutError as ex:
            if left <= REPLAY_PERIOD:
                return ex
        _replay_late(_signals(device, all_signals))


def connect(device: Any, timeout: float, all_signals: bool = False) -> float:
    """Wait up to ``timeout`` s for every signal of ``device``; return the seconds taken.

    Raises ``TimeoutError`` naming the signals that did not connect (and their state).
    """
    t0 = time.monotonic()
    first = _wait_replaying(device, all_signals, timeout)
    if first is None:
        return time.monotonic() - t0
    signals = _signals(device, all_signals)
    late = [s for s in signals if not s.connected]
    if not late:  # connected meanwhile, or pending operations (not a signal's)
        if "Pending operations" in str(first):
            raise first
        return time.monotonic() - t0
    if len(late) == len(signals):  # nothing answers: the IOC is absent, no second chance
        raise first
    deadline = time.monotonic() + SIGNAL_RETRY_TIMEOUT  # one budget for all late signals
    still = []
    _replay_late(late)
    for sig in late:
        state = signal_state(sig)
        try:
            sig.wait_for_connection(timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError as ex:
            still.append(f"{state} ({ex})")
        else:
            logger.warning("%s connected on ophyd's blocking path (was: %s)", sig.name, state)
    if still:
        raise TimeoutError(
            f"{device.name}: {len(still)} signal(s) did not connect within {timeout} s "
            f"(+{SIGNAL_RETRY_TIMEOUT} s on ophyd's blocking path): " + " | ".join(still)
        )
    return time.monotonic() - t0
