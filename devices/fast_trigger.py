"""Client-side levers on the per-point and per-run path: no avoidable Channel Access round trip.

These hold with real IOCs too: they only change what the client asks and when it waits.

* :class:`CachedADTriggerStatus` is ophyd's ``ADTriggerStatus`` without the two CA reads
  (``cam.array_counter``, ``cam.num_images``) it does before every ``Acquire`` put: the target is
  the ``num_images`` staged for the run, and the counter is read only if someone watches the
  status (a progress bar).
* :class:`LeanStaging` is ophyd's ``Device.stage()/unstage()`` (same order, same restore of every
  original value, same unstage-on-error) without the puts of values that are already there, and
  with each needed put confirmed by one read-back instead of a thread per signal polling at
  10, 20, 40 ms.
* :class:`LeanEpicsMotor` is ``ophyd.EpicsMotor`` whose move completes on ``DMOV=1`` without a CA
  read of the limit switch in the monitor thread: the motor record posts HLS/LLS before DMOV
  in the same processing (``post_MARKed_fields``), so the monitored values are current.  The
  read blocked ophyd's one monitor-dispatch thread, so with two motors the second ``DMOV``
  waited for the first motor's round trip.

``ADSCAN_CLIENT_LEVERS=0`` turns the three off (read at each stage, trigger and move, so a
benchmark can alternate before/after runs in one process); the CA monitors that
``adscan.devices.area_detector`` declares stay on either way.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from ophyd import Device, EpicsMotor, Staged
from ophyd.areadetector.trigger_mixins import ADTriggerStatus
from ophyd.device import RedundantStaging
from ophyd.signal import EpicsSignalBase
from ophyd.status import DeviceStatus
from ophyd.utils.epics_pvs import AlarmSeverity, _compare_maybe_enum


def levers_enabled() -> bool:
    """True unless ``ADSCAN_CLIENT_LEVERS`` is ``0`` (the ophyd behaviour, for comparisons)."""
    return os.environ.get("ADSCAN_CLIENT_LEVERS", "1").strip().lower() not in ("0", "no", "off")


# --------------------------------------------------------------------------- trigger status
class CachedADTriggerStatus(ADTriggerStatus):
    """``ADTriggerStatus`` with no CA read before the trigger's ``Acquire`` put.

    ophyd reads ``cam.array_counter`` and ``cam.num_images`` here only to feed progress-bar
    watchers; each read is a round trip to an IOC that is busy acquiring.  The frame count is
    the one staged for this run (``device._adscan_frames``); the counter is read, and followed,
    only once a watcher is added.
    """

    def __init__(self, device, *args, **kwargs):
        DeviceStatus.__init__(self, device, *args, **kwargs)
        self.start_ts = time.time()
        self.tracking_signal = device.cam.array_counter
        self._name = device.name
        self._target_count = getattr(device, "_adscan_frames", None)
        self._initial_count = None

    def watch(self, func):
        if self._initial_count is None and not self.done:
            self._initial_count = self.tracking_signal.get()
            if self._target_count is None:
                self._target_count = self.device.cam.num_images.get()
            self.tracking_signal.subscribe(self._notify_watchers, run=False)
        self._watchers.append(func)


# --------------------------------------------------------------------------- staging
def _same(sig: Any, target: Any, current: Any) -> bool:
    """Whether ``current`` already is ``target``, by ophyd's own comparison (enums, tolerances)."""
    if target is None or current is None:
        return False
    try:
        enums = getattr(sig, "enum_strs", None) or ()
    except Exception:  # noqa: BLE001 - no metadata: compare values
        enums = ()
    try:
        if enums and isinstance(target, str) and target not in enums:
            return False
        if enums and not isinstance(target, str) and not 0 <= int(target) < len(enums):
            return False
        return bool(
            _compare_maybe_enum(
                target,
                current,
                enums,
                getattr(sig, "tolerance", None),
                getattr(sig, "rtolerance", None),
            )
        )
    except Exception:  # noqa: BLE001 - not comparable: put it
        return False


def _read(sig: Any, target: Any) -> Any:
    """The signal's value from the IOC (never a monitor that may lag a put just made)."""
    kwargs: dict = {}
    if isinstance(target, list | tuple | np.ndarray):
        kwargs["count"] = len(target)
    if isinstance(sig, EpicsSignalBase):
        return sig.get(use_monitor=False, **kwargs)
    return sig.get(**kwargs)


def put_confirmed(sig: Any, value: Any, timeout: float | None = None) -> None:
    """Put ``value`` and return once the read-back shows it (ophyd's ``set().wait()`` contract).

    One put, one read-back round trip (the IOC handles a circuit's requests in order, so the
    read-back usually already shows it); only if not, the read-back is polled (2 ms doubling
    to 100 ms).  Signals with put completion, and non-EPICS signals, use ``set().wait()``.
    """
    if not isinstance(sig, EpicsSignalBase) or getattr(sig, "_put_complete", False):
        sig.set(value).wait(timeout)
        return
    sig.put(value)
    deadline = None if timeout is None else time.monotonic() + timeout
    poll = 0.002
    while True:
        current = _read(sig, value)
        if _same(sig, value, current):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                f"{sig.name}: put {value!r}, read back {current!r} after {timeout} s"
            )
        time.sleep(poll)
        poll = min(2 * poll, 0.1)


class LeanStaging(Device):
    """``Device.stage()/unstage()`` without puts of values already in place (see module doc).

    Same contract as ophyd: the stage signals are applied in order (each one confirmed before
    the next, as ophyd's ``set().wait()``), then the children are staged; every original value
    is recorded and ``unstage()`` restores them in reverse order, after unstaging the children;
    an error while staging unstages what was done and re-raises.  A signal whose value already
    is the one wanted is not put; on unstage, one not put at stage is read first and put back
    only if it changed meanwhile (the IOC may change some, e.g. ``array_counter``).
    (Reading the originals concurrently in threads was tried: slower, 0.4 s v. 0.2 s.)
    """

    def stage(self):
        if not levers_enabled():
            return super().stage()
        if self._staged == Staged.yes:
            raise RedundantStaging(f"Device {self!r} is already staged. Unstage it first.")
        if self._staged == Staged.partially:
            raise RedundantStaging(
                f"Device {self!r} has been partially staged. Maybe the most "
                "recent unstaging encountered an error before finishing. "
                "Try unstaging again."
            )
        self.log.debug("Staging %s", self.name)
        self._staged = Staged.partially
        stage_sigs = OrderedDict(
            (getattr(self, k) if isinstance(k, str) else k, v) for k, v in self.stage_sigs.items()
        )
        original_vals = {sig: sig.get() for sig in stage_sigs}
        self._adscan_changed = set()  # put at stage: restored at unstage without a read first
        devices_staged = []
        try:
            for sig, val in stage_sigs.items():
                if not _same(sig, val, original_vals[sig]):
                    put_confirmed(sig, val)
                    self._adscan_changed.add(sig)
                self._original_vals[sig] = original_vals[sig]
            devices_staged.append(self)
            for attr in self._sub_devices:
                device = getattr(self, attr)
                if hasattr(device, "stage"):
                    device.stage()
                    devices_staged.append(device)
        except Exception:
            self.log.debug("An exception was raised while staging %s: restoring", self.name)
            self.unstage()
            raise
        else:
            self._staged = Staged.yes
        return devices_staged

    def unstage(self):
        if not levers_enabled():
            return super().unstage()
        self.log.debug("Unstaging %s", self.name)
        self._staged = Staged.partially
        devices_unstaged = []
        for attr in self._sub_devices[::-1]:
            device = getattr(self, attr)
            if hasattr(device, "unstage"):
                device.unstage()
                devices_unstaged.append(device)
        changed = getattr(self, "_adscan_changed", set())
        for sig, val in reversed(list(self._original_vals.items())):
            if sig in changed or not _same(sig, val, _read(sig, val)):
                put_confirmed(sig, val)
            self._original_vals.pop(sig)
        changed.clear()
        devices_unstaged.append(self)
        self._staged = Staged.no
        return devices_unstaged


# --------------------------------------------------------------------------- motor
class LeanEpicsMotor(EpicsMotor):
    """``EpicsMotor`` whose completion on DMOV=1 makes no CA read (see the module doc)."""

    def _move_changed(self, timestamp=None, value=None, sub_type=None, **kwargs):
        if not levers_enabled():
            return super()._move_changed(
                timestamp=timestamp, value=value, sub_type=sub_type, **kwargs
            )
        was_moving = self._moving
        self._moving = value != 1
        started = False
        if not self._started_moving:
            started = self._started_moving = not was_moving and self._moving
        if started:
            self._run_subs(sub_type=self.SUB_START, timestamp=timestamp, value=value, **kwargs)
        if was_moving and not self._moving:
            # the monitored switches: posted by the record before DMOV, on the same circuit
            if self.direction_of_travel.get() == 0:
                success = self.low_limit_switch.get() != 1
            else:
                success = self.high_limit_switch.get() != 1
            severity = self.user_readback.alarm_severity
            if severity != AlarmSeverity.NO_ALARM:
                status = self.user_readback.alarm_status
                if severity > self.tolerated_alarm:
                    self.log.error(
                        "Motion failed: %s is in an alarm state status=%s severity=%s",
                        self.name,
                        status,
                        severity,
                    )
                    success = False
                else:
                    self.log.warning(
                        "Motor %s raised an alarm during motion status=%s severity %s",
                        self.name,
                        status,
                        severity,
                    )
            self._done_moving(success=success, timestamp=timestamp, value=value)
