"""RunEngine preprocessors of the adscan profile."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

START_STREAM = "label_start_motor"


def wait_connected(devices: Sequence[Any], timeout: float):
    """Plan stub: wait (without blocking the RunEngine) until every device is connected.

    After an IOC restart Channel Access reconnects by itself, within seconds; a plan queued
    meanwhile waits here instead of failing on its first argument check.  Devices still
    disconnected after ``timeout`` (``epics.reconnect_timeout``) are left for the plan to
    report.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_connected(d) for d in devices):
            return
        yield from bps.sleep(0.2)


def _connected(device: Any) -> bool:
    try:
        return bool(device.connected)
    except Exception:  # noqa: BLE001 - a device that cannot tell is not waited for
        return True


def motor_start_stream(motors: Sequence[Any], reconnect_timeout: float):
    """A preprocessor that reads every motor once, right after each run opens.

    The stream (``label_start_motor``) records where all motors were when the run
    began.  Each motor is read once: a device listed twice would make bluesky refuse
    the stream ("Data keys ... collide"), as the how-to's output shows.  Before the plan
    starts, motors that are disconnected (IOC restarting) are waited for
    (:func:`wait_connected`).
    """
    unique = list({m.name: m for m in motors}.values())

    def preprocessor(plan):
        if not unique:
            return (yield from plan)
        yield from wait_connected(unique, reconnect_timeout)

        def insert(msg):
            if msg.command == "open_run":

                def read_motors():
                    return (yield from bps.trigger_and_read(unique, name=START_STREAM))

                return None, read_motors()
            return None, None

        return (yield from bpp.plan_mutator(plan, insert))

    return preprocessor


def add_profile_streams(
    RE, motors: Sequence[Any], detectors: Sequence[Any], *, reconnect_timeout: float
):
    """The profile's supplemental streams on ``RE``; returns the ``SupplementalData``.

    ``baseline``: the motors and each area detector's acquire time and period, read at the
    start and end of every run; ``label_start_motor``: see :func:`motor_start_stream`.
    """
    from bluesky import SupplementalData

    motors = list(motors)
    timing = [sig for det in detectors for sig in (det.cam.acquire_time, det.cam.acquire_period)]
    sd = SupplementalData(baseline=[*motors, *timing])
    RE.preprocessors.append(sd)
    RE.preprocessors.append(motor_start_stream(motors, reconnect_timeout))
    return sd
