"""Connect an ophyd device, recovering signals whose connection callbacks went missing.

``Device.wait_for_connection`` only polls each signal's ``connected`` flag, which ophyd's
control-layer callbacks set (connection, access rights, first metadata: run in ophyd's
dispatcher threads).  Under load a signal can stay unconnected although its PV answers: a
full test run once left ``ROI1:Dim1SA_RBV`` of 1,061 PVs unconnected for five minutes while
a caproto client read it.  A signal's own ``wait_for_connection`` is ophyd's blocking path
(connect the PV, fetch its metadata in the calling thread), so the signals still
unconnected when the device's timeout ends get a second, bounded chance that way; those
that still fail are named, with their control-layer state, so the log says why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("adscan.devices.connect")

#: Seconds the still-unconnected signals get, together, on ophyd's blocking path (only when
#: some of the device's signals connected: an absent IOC fails at once after ``timeout``).
SIGNAL_RETRY_TIMEOUT = 5.0


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


def connect(device: Any, timeout: float, all_signals: bool = False) -> float:
    """Wait up to ``timeout`` s for every signal of ``device``; return the seconds taken.

    Raises ``TimeoutError`` naming the signals that did not connect (and their state).
    """
    t0 = time.monotonic()
    try:
        device.wait_for_connection(all_signals=all_signals, timeout=timeout)
        return time.monotonic() - t0
    except TimeoutError as ex:
        first = ex
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
