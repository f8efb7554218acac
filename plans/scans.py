"""The how-to's plans, queued by users: count, one- and two-motor scan, grid scan.

Each wraps a stock ``bluesky.plans`` plan, collects ``frames`` images per point with
the area detector, and checks its arguments before anything moves.  The parameter
annotations are what the queue server checks at submission and shows in its plan list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from bluesky import plans as bp
from bluesky_queueserver import parameter_annotation_decorator

from adscan.config import load_devices, load_iconfig
from adscan.devices import REGISTRY
from adscan.plans.frames import with_frames

_DEVICES = load_devices()
MOTORS: list[str] = list(_DEVICES.get("motors") or {})
DETECTORS: list[str] = list(_DEVICES.get("detectors") or {})
DEFAULT_FRAMES: int = int(load_iconfig()["detector"]["frames_per_point"])
DEFAULT_DETECTORS: tuple[str, ...] = tuple(DETECTORS[:1])
MAX_FRAMES = 1000
MAX_POINTS = 100_000
MAX_DELAY = 3600.0
#: Limits on user metadata (``md``), checked before anything moves: the start document goes to
#: the catalog (msgpack: nesting limit; MongoDB: no ``$``/``.`` in keys), the SPEC file and Redis.
MD_MAX_BYTES = 64 * 1024
MD_MAX_DEPTH = 8
MD_MAX_KEY = 64
#: Integers in md must fit a signed 64-bit integer (msgpack, BSON and the catalog refuse more).
MD_INT_MIN, MD_INT_MAX = -(2**63), 2**63 - 1
#: Start-document keys the RunEngine or these plans set themselves; ``md`` may not override them.
RESERVED_MD = frozenset({
    "uid", "time", "scan_id", "plan_name", "plan_type", "plan_args", "plan_pattern",
    "plan_pattern_args", "plan_pattern_module", "detectors", "motors", "num_points",
    "num_intervals", "frames_per_point", "adscan_plan", "adscan_command",
    "hints",  # the plan's hints (which fields to plot); a user's would replace or break them
})

_FRAMES = {
    "description": f"Images per point (1 to {MAX_FRAMES}).",
    "annotation": "int",
    "min": 1,
    "max": MAX_FRAMES,
}
_DETECTORS = {
    "description": f"Area detectors to trigger at each point (default {list(DEFAULT_DETECTORS)}).",
    "annotation": "typing.List[Detectors]",
    "devices": {"Detectors": DETECTORS},
}
_MD = {
    "description": (f"Metadata added to the run's start document: string keys (at most "
                    f"{MD_MAX_KEY} characters, no '$' first, no '.'), JSON values, at most "
                    f"{MD_MAX_DEPTH} levels and {MD_MAX_BYTES // 1024} KiB, integers within "
                    "signed 64 bits; keys the plan sets (uid, scan_id, plan_name, detectors, "
                    "motors, hints, ...) are refused."),
    "annotation": "typing.Dict[str, typing.Any]",
}


def _motor(doc: str) -> dict[str, Any]:
    return {"description": doc, "annotation": "Motors", "devices": {"Motors": MOTORS}}


def _points(doc: str) -> dict[str, Any]:
    return {"description": doc, "annotation": "int", "min": 1, "max": MAX_POINTS}


def _position(doc: str) -> dict[str, Any]:
    return {"description": doc, "annotation": "float"}


class PlanArgumentError(ValueError):
    """A plan argument is wrong; raised before anything moves."""


def _resolve(obj: Any, kind: str) -> Any:
    if isinstance(obj, str):
        if obj not in REGISTRY:
            known = ", ".join(sorted(REGISTRY)) or "none connected"
            raise PlanArgumentError(f"unknown {kind} {obj!r} (known: {known})")
        return REGISTRY[obj]
    return obj


def _two_motors(motor1: Any, motor2: Any) -> tuple[Any, Any]:
    """Resolve the two motors of a two-motor plan; they must be different."""
    motor1, motor2 = _resolve(motor1, "motor"), _resolve(motor2, "motor")
    if motor1 is motor2:
        raise PlanArgumentError(f"motor1 and motor2 must differ, both are {motor1.name}")
    return motor1, motor2


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanArgumentError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PlanArgumentError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _check_position(motor: Any, name: str, *values: Any) -> None:
    for value in values:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise PlanArgumentError(f"{name} must be a finite number, got {value!r}")
        low, high = getattr(motor, "limits", (0, 0))
        if low < high and not low <= value <= high:
            raise PlanArgumentError(
                f"{name}={value} is outside the soft limits of {motor.name} [{low}, {high}]"
            )


def _detectors(detectors: Sequence[Any] | None) -> list[Any]:
    if detectors is not None and (isinstance(detectors, str | bytes | dict)
                                  or not isinstance(detectors, Sequence)):
        raise PlanArgumentError(f"detectors must be a list of detector names, got {detectors!r}")
    if detectors is not None and len(detectors) == 0:
        raise PlanArgumentError("detectors=[] names no detector: give at least one, or leave "
                                f"detectors out for the default {list(DEFAULT_DETECTORS)}")
    dets = [_resolve(d, "detector") for d in (detectors or DEFAULT_DETECTORS)]
    if not dets:
        raise PlanArgumentError("no detector: give detectors=[...]")
    names = _names(dets)
    if len(set(names)) != len(names):
        raise PlanArgumentError(f"detectors must not repeat a detector, got {len(names)} entries "
                                f"for {sorted(set(names))}")
    return dets


def _check_md_value(value: Any, path: str, depth: int) -> None:
    if depth > MD_MAX_DEPTH:
        raise PlanArgumentError(f"md nested deeper than {MD_MAX_DEPTH} levels at {path}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanArgumentError(f"md key {key!r} at {path} must be a string")
            if not key or len(key) > MD_MAX_KEY:
                raise PlanArgumentError(
                    f"md key {key[:20]!r} at {path} must have 1 to {MD_MAX_KEY} characters")
            if key.startswith("$") or "." in key or any(ord(c) < 32 for c in key):
                raise PlanArgumentError(
                    f"md key {key!r} at {path} is not allowed (no '$' first, no '.', "
                    "no control characters)")
            _check_md_value(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_md_value(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PlanArgumentError(f"md value at {path} must be a finite number, got {value!r}")
    elif isinstance(value, str):
        if "\x00" in value:
            raise PlanArgumentError(f"md value at {path} contains a NUL character")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not MD_INT_MIN <= value <= MD_INT_MAX:
            raise PlanArgumentError(
                f"md value at {path} is an integer outside the signed 64-bit range "
                f"[-2**63, 2**63-1] (the catalog cannot store it): give a float or a string")
    elif not (value is None or isinstance(value, bool)):
        raise PlanArgumentError(
            f"md value at {path} must be JSON (str, number, bool, null, list, dict), "
            f"got {type(value).__name__}")


def check_md(md: Any) -> dict:
    """Check user metadata before anything moves; return a copy (see the ``md`` limits above)."""
    if md is None:
        return {}
    if not isinstance(md, dict):
        raise PlanArgumentError(f"md must be a dictionary, got {type(md).__name__}")
    reserved = sorted(k for k in md if k in RESERVED_MD)
    if reserved:
        raise PlanArgumentError(f"md keys {reserved} are reserved (set by the plan)")
    _check_md_value(md, "md", 0)
    if "sample" in md and not isinstance(md["sample"], str | dict):
        raise PlanArgumentError("md sample must be a string or a dictionary")
    size = len(json.dumps(md, allow_nan=False))
    if size > MD_MAX_BYTES:
        raise PlanArgumentError(f"md is {size} bytes as JSON, more than {MD_MAX_BYTES}")
    return dict(md)


def _md(md: dict | None, plan: str, frames: int, command: str) -> dict:
    out = check_md(md)
    out["adscan_plan"] = plan
    out["adscan_command"] = command
    out["frames_per_point"] = frames
    return out


def _names(objs: Sequence[Any]) -> list[str]:
    return [getattr(o, "name", str(o)) for o in objs]


@parameter_annotation_decorator(
    {
        "description": "Collect images at the current position: num points of `frames` images.",
        "parameters": {
            "detectors": _DETECTORS,
            "num": _points("Number of points (1 to 100000)."),
            "frames": _FRAMES,
            "delay": {"description": f"Seconds between points (0 to {MAX_DELAY:g}).",
                      "annotation": "float", "min": 0, "max": MAX_DELAY},
            "md": _MD,
        },
    }
)
def adscan_count(
    detectors: Sequence[Any] = DEFAULT_DETECTORS,
    num: int = 1,
    frames: int = DEFAULT_FRAMES,
    delay: float = 0.0,
    md: dict | None = None,
):
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
    dets = _detectors(detectors)
    _check_int("num", num, 1, MAX_POINTS)
    _check_int("frames", frames, 1, MAX_FRAMES)
    if (isinstance(delay, bool) or not isinstance(delay, int | float)
            or not 0 <= delay <= MAX_DELAY):
        raise PlanArgumentError(f"delay must be a number from 0 to {MAX_DELAY:g}, got {delay!r}")
    command = f"adscan_count(detectors={_names(dets)}, num={num}, frames={frames})"
    plan = bp.count(dets, num=num, delay=delay or None,
                    md=_md(md, "adscan_count", frames, command))
    return (yield from with_frames(plan, dets, frames, points=num))


@parameter_annotation_decorator(
    {
        "description": "Step one motor from start to stop in num points, `frames` images each.",
        "parameters": {
            "motor": _motor("The motor to step."),
            "start": _position("First position."),
            "stop": _position("Last position."),
            "num": _points("Number of points (1 to 100000)."),
            "frames": _FRAMES,
            "detectors": _DETECTORS,
            "md": _MD,
        },
    }
)
def adscan_scan(
    motor: Any,
    start: float,
    stop: float,
    num: int,
    frames: int = DEFAULT_FRAMES,
    detectors: Sequence[Any] = DEFAULT_DETECTORS,
    md: dict | None = None,
):
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
    dets = _detectors(detectors)
    motor = _resolve(motor, "motor")
    _check_int("num", num, 1, MAX_POINTS)
    _check_int("frames", frames, 1, MAX_FRAMES)
    _check_position(motor, "start/stop", start, stop)
    command = (f"adscan_scan({motor.name}, {start}, {stop}, num={num}, frames={frames}, "
               f"detectors={_names(dets)})")
    plan = bp.scan(dets, motor, start, stop, num=num,
                   md=_md(md, "adscan_scan", frames, command))
    return (yield from with_frames(plan, dets, frames, points=num))


@parameter_annotation_decorator(
    {
        "description": "Step two motors together in num points; `frames` images per point.",
        "parameters": {
            "motor1": _motor("First motor."),
            "start1": _position("First motor's first position."),
            "stop1": _position("First motor's last position."),
            "motor2": _motor("Second motor, moved together with the first."),
            "start2": _position("Second motor's first position."),
            "stop2": _position("Second motor's last position."),
            "num": _points("Number of points (1 to 100000)."),
            "frames": _FRAMES,
            "detectors": _DETECTORS,
            "md": _MD,
        },
    }
)
def adscan_scan2(
    motor1: Any,
    start1: float,
    stop1: float,
    motor2: Any,
    start2: float,
    stop2: float,
    num: int,
    frames: int = DEFAULT_FRAMES,
    detectors: Sequence[Any] = DEFAULT_DETECTORS,
    md: dict | None = None,
):
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
    dets = _detectors(detectors)
    motor1, motor2 = _two_motors(motor1, motor2)
    _check_int("num", num, 1, MAX_POINTS)
    _check_int("frames", frames, 1, MAX_FRAMES)
    _check_position(motor1, "start1/stop1", start1, stop1)
    _check_position(motor2, "start2/stop2", start2, stop2)
    command = (f"adscan_scan2({motor1.name}, {start1}, {stop1}, {motor2.name}, {start2}, "
               f"{stop2}, num={num}, frames={frames}, detectors={_names(dets)})")
    plan = bp.scan(dets, motor1, start1, stop1, motor2, start2, stop2, num=num,
                   md=_md(md, "adscan_scan2", frames, command))
    return (yield from with_frames(plan, dets, frames, points=num))


@parameter_annotation_decorator(
    {
        "description": "Grid (mesh) scan of two motors, snake or not, `frames` images per point.",
        "parameters": {
            "motor1": _motor("Outer (slow) motor."),
            "start1": _position("Outer motor's first position."),
            "stop1": _position("Outer motor's last position."),
            "num1": _points("Outer motor's number of points."),
            "motor2": _motor("Inner (fast) motor."),
            "start2": _position("Inner motor's first position."),
            "stop2": _position("Inner motor's last position."),
            "num2": _points("Inner motor's number of points."),
            "snake": {"description": "Reverse the inner motor's direction on every outer step.",
                      "annotation": "bool"},
            "frames": _FRAMES,
            "detectors": _DETECTORS,
            "md": _MD,
        },
    }
)
def adscan_grid_scan(
    motor1: Any,
    start1: float,
    stop1: float,
    num1: int,
    motor2: Any,
    start2: float,
    stop2: float,
    num2: int,
    snake: bool = True,
    frames: int = DEFAULT_FRAMES,
    detectors: Sequence[Any] = DEFAULT_DETECTORS,
    md: dict | None = None,
):
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
    dets = _detectors(detectors)
    motor1, motor2 = _two_motors(motor1, motor2)
    _check_int("num1", num1, 1, MAX_POINTS)
    _check_int("num2", num2, 1, MAX_POINTS)
    if num1 * num2 > MAX_POINTS:
        raise PlanArgumentError(f"num1 * num2 = {num1 * num2} exceeds {MAX_POINTS} points")
    _check_int("frames", frames, 1, MAX_FRAMES)
    if not isinstance(snake, bool):
        raise PlanArgumentError(f"snake must be True or False, got {snake!r}")
    _check_position(motor1, "start1/stop1", start1, stop1)
    _check_position(motor2, "start2/stop2", start2, stop2)
    command = (f"adscan_grid_scan({motor1.name}, {start1}, {stop1}, {num1}, {motor2.name}, "
               f"{start2}, {stop2}, {num2}, snake={snake}, frames={frames}, "
               f"detectors={_names(dets)})")
    plan = bp.grid_scan(dets, motor1, start1, stop1, num1, motor2, start2, stop2, num2,
                        snake_axes=snake, md=_md(md, "adscan_grid_scan", frames, command))
    return (yield from with_frames(plan, dets, frames, points=num1 * num2))
