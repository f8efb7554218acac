"""The how-to's diagnostic: read the Stats plugin several times without taking images."""

from __future__ import annotations

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

from adscan.plans.spec import MAX_DELAY, MAX_POINTS, Param, adscan_plan


@adscan_plan(
    "Read the detector's Stats plugin num times without triggering it.",
    frames_wrapper=False,
    detector=Param("Area detector whose stats1 plugin is read.", "detector"),
    num=Param("Number of readings (1 to 100000).", "count", min=1, max=MAX_POINTS),
    delay=Param(f"Seconds between readings (0 to {MAX_DELAY:g}).", "number", min=0, max=MAX_DELAY),
)
def adscan_read_stats(
    detector: Readable = "simdet", num: int = 5, delay: float = 0.0
) -> MsgGenerator:
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
    md = {"plan_name": "adscan_read_stats", "detectors": [detector.stats1.name], "num_points": num}

    @bpp.run_decorator(md=md)
    def readings():
        for i in range(num):
            if i and delay:
                yield from bps.sleep(delay)
            yield from bps.trigger_and_read([detector.stats1])

    return (yield from readings())
