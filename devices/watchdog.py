"""Fail a device's pending status when its IOC goes away.

ophyd statuses of motor moves and detector triggers complete on a PV monitor (DMOV,
AcquireBusy) and have no timeout: when the IOC dies mid-scan the monitor never fires and
the RunEngine waits forever.  :func:`fail_on_disconnect` watches one PV per device for a
Channel Access disconnect and then fails every status the device returned and that is not
done yet, with a message naming the PV, so the plan fails at once (and the RE Manager
moves on).  Channel Access reconnects by itself when the IOC is back.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

logger = logging.getLogger("adscan.devices")


#: Every watched PV: PV name -> (device name, signal, weak reference to the device).
_WATCHED: dict[str, tuple[str, Any, Any]] = {}


class DeviceDisconnectedError(ConnectionError):
    """A PV of a device disconnected while the device was moving or acquiring."""


def disconnected() -> dict[str, str]:
    """Watched PVs disconnected now (PV name -> device name), of the devices in use: those
    ``adscan.devices.REGISTRY`` holds by that name.  A device an earlier start-up created
    (its IOC since gone, e.g. another test module's) would otherwise turn every later plan
    error into "IOC connection lost"."""
    from adscan.devices import REGISTRY

    down = {}
    for pv, (name, sig, ref) in list(_WATCHED.items()):
        device = ref()
        if device is not None and REGISTRY.get(name) is device and not sig.connected:
            down[pv] = name
    return down


def fail_on_disconnect(
    device: Any, watched: Any, methods: tuple[str, ...] = ("set", "trigger")
) -> Any:
    """Track the statuses ``device.<methods>()`` return; fail them if ``watched`` disconnects.

    ``watched`` is an ophyd EPICS signal of the device (e.g. ``motor_done_move``,
    ``cam.acquire_busy``).  Returns ``device``.
    """
    pending: weakref.WeakSet = weakref.WeakSet()
    lock = threading.Lock()

    def wrap(name: str):
        original = getattr(device, name)

        def tracked(*args, **kwargs):
            status = original(*args, **kwargs)
            if status is not None:
                with lock:
                    pending.add(status)
            return status

        tracked.__doc__ = original.__doc__
        tracked.__wrapped__ = original
        return tracked

    for name in methods:
        if callable(getattr(device, name, None)):
            setattr(device, name, wrap(name))

    pv = getattr(watched, "pvname", watched.name)

    _WATCHED[pv] = (device.name, watched, weakref.ref(device))

    def on_meta(*, connected: bool = True, **_kw) -> None:
        if connected:
            return
        with lock:
            statuses = [s for s in pending if not s.done]
            pending.clear()
        if not statuses:
            return
        msg = f"{device.name}: PV {pv} disconnected (IOC gone?) while the device was busy"
        logger.error(msg)
        for status in statuses:
            try:
                status.set_exception(DeviceDisconnectedError(msg))
            except Exception:  # noqa: BLE001 - finished meanwhile
                continue
        if getattr(device, "_status", None) in statuses:  # SingleTrigger: no late set_finished
            device._status = None
        if hasattr(device, "_SUB_REQ_DONE"):  # positioner: drop the failed move's callback
            device._reset_sub(device._SUB_REQ_DONE)

    watched.subscribe(on_meta, event_type=watched.SUB_META, run=False)
    device._adscan_disconnect_watch = on_meta
    return device
