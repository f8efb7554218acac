"""RunEngine preprocessors of the adscan profile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

START_STREAM = "label_start_motor"


def motor_start_stream(motors: Sequence[Any]):
    """A preprocessor that reads every motor once, right after each run opens.

    The stream (``label_start_motor``) records where all motors were when the run
    began.  Each motor is read once: a device listed twice would make bluesky refuse
    the stream ("Data keys ... collide"), as the how-to's output shows.
    """
    unique = list({m.name: m for m in motors}.values())

    def preprocessor(plan):
        if not unique:
            return (yield from plan)

        def insert(msg):
            if msg.command == "open_run":
                def read_motors():
                    return (yield from bps.trigger_and_read(unique, name=START_STREAM))
                return None, read_motors()
            return None, None

        return (yield from bpp.plan_mutator(plan, insert))

    return preprocessor
