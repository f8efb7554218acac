"""The how-to's plans, queued by users: count, one- and two-motor scan, grid scan.

Each wraps a stock ``bluesky.plans`` plan and collects ``frames`` images per point with the
area detector.  Each is stated once (:func:`adscan.plans.spec.adscan_plan`): its parameter
specs give the annotation the queue server checks at submission and shows in its plan list,
and the checks made when the plan starts, before anything moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bluesky import plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

from adscan.plans.metadata import PlanArgumentError
from adscan.plans.spec import (
    FRAMES,
    MAX_DELAY,
    MAX_POINTS,
    MD,
    Param,
    adscan_plan,
    motor,
    points,
    position,
)

_DETECTORS = Param("(set by configure_plans)", "detectors")
_NUM = points("Number of points (1 to 100000).")


def _different_motors(bound: dict[str, Any]) -> None:
    if bound["motor1"] is bound["motor2"]:
        raise PlanArgumentError(f"motor1 and motor2 must differ, both are {bound['motor1'].name}")


def _grid_size(bound: dict[str, Any]) -> None:
    if bound["num1"] * bound["num2"] > MAX_POINTS:
        raise PlanArgumentError(
            f"num1 * num2 = {bound['num1'] * bound['num2']} exceeds {MAX_POINTS} points"
        )


@adscan_plan(
    "Collect images at the current position: num points of `frames` images.",
    detectors=_DETECTORS,
    num=_NUM,
    frames=FRAMES,
    delay=Param(f"Seconds between points (0 to {MAX_DELAY:g}).", "number", min=0, max=MAX_DELAY),
    md=MD,
)
def adscan_count(
    detectors: Sequence[Readable] = (),
    num: int = 1,
    frames: int = 1,
    delay: float = 0.0,
    md: dict | None = None,
) -> MsgGenerator:
    """Take ``num`` points of ``frames`` images each, nothing moves (``bp.count``).

    Parameters
    ----------
    detectors : list
        Area detectors (default: the configured one, ``simdet``).
    num : int
        Number of points.
    frames : int
        Images per point.
    delay : float
        Seconds to wait between points.
    md : dict
        Extra metadata for the run.
    """
    return (yield from bp.count(detectors, num=num, delay=delay or None, md=md))


@adscan_plan(
    "Step one motor from start to stop in num points, `frames` images each.",
    motor=motor("The motor to step."),
    start=position("First position.", label="start/stop"),
    stop=position("Last position.", label="start/stop"),
    num=_NUM,
    frames=FRAMES,
    detectors=_DETECTORS,
    md=MD,
)
def adscan_scan(
    motor: Movable,
    start: float,
    stop: float,
    num: int,
    frames: int = 1,
    detectors: Sequence[Readable] = (),
    md: dict | None = None,
) -> MsgGenerator:
    """Scan one motor (``bp.scan``): ``num`` evenly spaced points from start to stop.

    Parameters
    ----------
    motor : Motors
        Motor to step (``m1`` or ``m2``).
    start, stop : float
        First and last positions (inclusive).
    num : int
        Number of points.
    frames : int
        Images per point.
    detectors : list
        Area detectors (default: ``simdet``).
    md : dict
        Extra metadata for the run.
    """
    return (yield from bp.scan(detectors, motor, start, stop, num=num, md=md))


@adscan_plan(
    "Step two motors together in num points; `frames` images per point.",
    checks=[_different_motors],
    motor1=motor("First motor."),
    start1=position("First motor's first position.", "motor1", "start1/stop1"),
    stop1=position("First motor's last position.", "motor1", "start1/stop1"),
    motor2=motor("Second motor, moved together with the first."),
    start2=position("Second motor's first position.", "motor2", "start2/stop2"),
    stop2=position("Second motor's last position.", "motor2", "start2/stop2"),
    num=_NUM,
    frames=FRAMES,
    detectors=_DETECTORS,
    md=MD,
)
def adscan_scan2(
    motor1: Movable,
    start1: float,
    stop1: float,
    motor2: Movable,
    start2: float,
    stop2: float,
    num: int,
    frames: int = 1,
    detectors: Sequence[Readable] = (),
    md: dict | None = None,
) -> MsgGenerator:
    """Scan two motors moving together (``bp.scan`` with two motors).

    Parameters
    ----------
    motor1, motor2 : Motors
        The two motors (different).
    start1, stop1, start2, stop2 : float
        First and last positions of each motor.
    num : int
        Number of points (both motors take the same number of steps).
    frames : int
        Images per point.
    detectors : list
        Area detectors (default: ``simdet``).
    md : dict
        Extra metadata for the run.
    """
    return (
        yield from bp.scan(detectors, motor1, start1, stop1, motor2, start2, stop2, num=num, md=md)
    )


@adscan_plan(
    "Grid (mesh) scan of two motors, snake or not, `frames` images per point.",
    checks=[_different_motors, _grid_size],
    motor1=motor("Outer (slow) motor."),
    start1=position("Outer motor's first position.", "motor1", "start1/stop1"),
    stop1=position("Outer motor's last position.", "motor1", "start1/stop1"),
    num1=points("Outer motor's number of points."),
    motor2=motor("Inner (fast) motor."),
    start2=position("Inner motor's first position.", "motor2", "start2/stop2"),
    stop2=position("Inner motor's last position.", "motor2", "start2/stop2"),
    num2=points("Inner motor's number of points."),
    snake=Param("Reverse the inner motor's direction on every outer step.", "bool"),
    frames=FRAMES,
    detectors=_DETECTORS,
    md=MD,
)
def adscan_grid_scan(
    motor1: Movable,
    start1: float,
    stop1: float,
    num1: int,
    motor2: Movable,
    start2: float,
    stop2: float,
    num2: int,
    snake: bool = True,
    frames: int = 1,
    detectors: Sequence[Readable] = (),
    md: dict | None = None,
) -> MsgGenerator:
    """Grid scan (``bp.grid_scan``): motor2 steps through its range at each motor1 step.

    Parameters
    ----------
    motor1, motor2 : Motors
        Outer and inner motors (different).
    start1, stop1, start2, stop2 : float
        First and last positions of each motor.
    num1, num2 : int
        Points along each motor; the run has num1 * num2 points.
    snake : bool
        With True, motor2 reverses direction on every motor1 step.
    frames : int
        Images per point.
    detectors : list
        Area detectors (default: ``simdet``).
    md : dict
        Extra metadata for the run.
    """
    return (
        yield from bp.grid_scan(
            detectors,
            motor1,
            start1,
            stop1,
            num1,
            motor2,
            start2,
            stop2,
            num2,
            snake_axes=snake,
            md=md,
        )
    )
