"""The how-to's diagnostic: read the Stats plugin several times without taking images."""

from __future__ import annotations

from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky_queueserver import parameter_annotation_decorator

from adscan.plans.scans import (
    DEFAULT_DETECTORS,
    DETECTORS,
    MAX_DELAY,
    MAX_POINTS,
    PlanArgumentError,
    _check_int,
    _resolve,
)


@parameter_annotation_decorator(
    {
        "description": "Read the detector's Stats plugin num times without triggering it.",
        "parameters": {
            "detector": {"description": "Area detector whose stats1 plugin is read.",
                         "annotation": "Detectors", "devices": {"Detectors": DETECTORS}},
            "num": {"description": "Number of readings (1 to 100000).", "annotation": "int",
                    "min": 1, "max": MAX_POINTS},
            "delay": {"description": f"Seconds between readings (0 to {MAX_DELAY:g}).",
                      "annotation": "float", "min": 0, "max": MAX_DELAY},
        },
    }
)
def adscan_read_stats(detector: Any = DEFAULT_DETECTORS[0] if DEFAULT_DETECTORS else "simdet",
                      num: int = 5, delay: float = 0.0):
    """Read ``detector.stats1`` ``num`` times; no image is taken, the unique ID stays the same.

    Unlike ``bp.count([simdet.stats1])`` nothing is staged: the RunEngine stages a
    component's whole detector, which would open (and leave) an empty HDF5 file.

    Parameters
    ----------
    detector : Detectors
        Area detector (default: ``simdet``).
    num : int
        Number of readings.
    delay : float
        Seconds between readings.
    """
    det = _resolve(detector, "detector")
    _check_int("num", num, 1, MAX_POINTS)
    if (isinstance(delay, bool) or not isinstance(delay, int | float)
            or not 0 <= delay <= MAX_DELAY):
        raise PlanArgumentError(f"delay must be a number from 0 to {MAX_DELAY:g}, got {delay!r}")
    md = {"adscan_plan": "adscan_read_stats", "plan_name": "adscan_read_stats",
          "detectors": [det.stats1.name], "num_points": num,
          "adscan_command": f"adscan_read_stats({det.name}, num={num})"}

    @bpp.run_decorator(md=md)
    def readings():
        for i in range(num):
            if i and delay:
                yield from bps.sleep(delay)
            yield from bps.trigger_and_read([det.stats1])

    return (yield from readings())
