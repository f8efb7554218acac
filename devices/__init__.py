"""adscan's devices, built from ``startup/devices.yml`` and ``startup/iconfig.yml``.

``create_devices()`` connects each device with a bounded timeout.  A device whose IOC
does not answer is reported by name and left out; the others stay usable.
"""

from __future__ import annotations

if __name__ != "adscan.devices":  # devices/ is mapped to adscan.devices (pyproject.toml)
    raise ImportError(
        f"devices/ is the package adscan.devices: `import adscan.devices`, not "
        f"`import {__name__}` (two names would give two device registries)"
    )

import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

logger = logging.getLogger("adscan.devices")

#: Devices connected at start-up, by name (plans resolve device names through it).
REGISTRY: dict[str, Any] = {}


@dataclass
class DeviceSet:
    """What start-up connected, and what it could not."""

    devices: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # name -> reason
    seconds: float = 0.0

    @property
    def motors(self) -> dict[str, Any]:
        return {n: d for n, d in self.devices.items() if "motor" in d._ophyd_labels_}

    @property
    def detectors(self) -> dict[str, Any]:
        return {n: d for n, d in self.devices.items() if "detector" in d._ophyd_labels_}


def create_motor(name: str, pv: str, timeout: float):
    """An ``ophyd.EpicsMotor`` (read() holds readback and setpoint); a lost IOC fails its move.

    ``LeanEpicsMotor``: its move completes on DMOV=1 without a CA read (fast_trigger.py).
    """
    from adscan.devices.connect import connect
    from adscan.devices.fast_trigger import LeanEpicsMotor as EpicsMotor
    from adscan.devices.watchdog import fail_on_disconnect

    motor = EpicsMotor(pv, name=name, labels=("motor",))
    connect(motor, timeout)
    return fail_on_disconnect(motor, motor.motor_done_move)  # an IOC lost fails the move


def create_simdet(name: str, prefix: str, cfg: dict[str, Any], timeout: float):
    """The how-to's ``SimDetector_V34``, configured by ``ad_setup`` and primed."""
    from adscan.devices.area_detector import SimDetector_V34, ad_setup
    from adscan.devices.connect import connect
    from adscan.devices.watchdog import fail_on_disconnect

    det_cfg = cfg["detector"]
    det = SimDetector_V34(prefix, name=name, labels=("detector", "area_detector"))
    connect(det, timeout)
    ad_setup(
        det,
        frames=int(det_cfg["frames_per_point"]),
        write_path=det_cfg["write_path"],
        read_path=det_cfg["read_path"],
        compression=det_cfg.get("compression", "LZ4"),
    )
    fail_on_disconnect(det, det.cam.acquire_busy)  # an IOC lost fails the trigger
    det.configure_timing(det_cfg["acquire_time"], det_cfg["acquire_period"])
    det.restore_after_restart()  # a fresh IOC: prime HDF1
    return det


def create_devices(cfg: dict[str, Any], devices_cfg: dict[str, Any]) -> DeviceSet:
    """Create every device of ``devices.yml``; report (not raise) those that don't answer."""
    import ophyd

    ophyd.Device.lazy_wait_for_connection = False
    timeout = float(cfg["epics"]["connection_timeout"])
    ioc = cfg["ioc"]
    found = DeviceSet()
    t0 = time.monotonic()
    for name, spec in (devices_cfg.get("motors") or {}).items():
        pv = f"{ioc['motors_prefix']}{spec['pv']}"
        try:
            found.devices[name] = create_motor(name, pv, timeout)
        except Exception as ex:  # noqa: BLE001 - reported, start-up goes on
            found.missing[name] = f"motor {pv} did not answer: {ex}"
    for name, _spec in (devices_cfg.get("detectors") or {}).items():
        try:
            found.devices[name] = create_simdet(name, ioc["ad_prefix"], cfg, timeout)
        except Exception as ex:  # noqa: BLE001 - reported, start-up goes on
            found.missing[name] = f"area detector {ioc['ad_prefix']} did not answer: {ex}"
    found.seconds = time.monotonic() - t0
    REGISTRY.update(found.devices)
    for name, why in found.missing.items():
        logger.error("device %s is MISSING: %s", name, why)
    return found
