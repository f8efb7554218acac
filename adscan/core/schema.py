"""What adscan writes that others read: start-document keys and the progress console line.

The plans set these keys, the SPEC writer, the plots, verify and the progress reporter read
them; the demo parses the progress line the worker prints.  Each is stated here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Start-document keys the adscan plans add.
ADSCAN_PLAN = "adscan_plan"  # the plan's name, e.g. "adscan_grid_scan"
ADSCAN_COMMAND = "adscan_command"  # the call as made, e.g. "adscan_scan(m1, -1, 1, num=5, ...)"
FRAMES_PER_POINT = "frames_per_point"  # images taken at each point

#: Start-document keys the RunEngine or the plans set themselves; user ``md`` may not set them.
RESERVED_MD = frozenset(
    {
        "uid",
        "time",
        "scan_id",
        "plan_name",
        "plan_type",
        "plan_args",
        "plan_pattern",
        "plan_pattern_args",
        "plan_pattern_module",
        "detectors",
        "motors",
        "num_points",
        "num_intervals",
        FRAMES_PER_POINT,
        ADSCAN_PLAN,
        ADSCAN_COMMAND,
    }
)

#: Prefix of every console line of the progress reporter.
PROGRESS_PREFIX = "[adscan]"


def plan_of(start: dict) -> str | None:
    """The plan that made a run: ``adscan_plan``, else the RunEngine's ``plan_name``."""
    return start.get(ADSCAN_PLAN) or start.get("plan_name")


def progress_point_line(
    scan_id,
    plan,
    done: int,
    total: int | None,
    elapsed: float = 0.0,
    remaining: float | None = None,
) -> str:
    """The line printed at each point, e.g.
    ``scan 12 adscan_grid_scan: point 7/20 (35%), 3.1 s elapsed, ~5.8 s left``."""
    line = f"scan {scan_id} {plan}: point {done}/{total or '?'}"
    if total:
        line += (
            f" ({100 * done // total}%), {elapsed:.1f} s elapsed, ~{(remaining or 0.0):.1f} s left"
        )
    return line


_POINT_LINE = re.compile(re.escape(PROGRESS_PREFIX) + r" scan (\S+) (\S+): point (\d+)/(\d+)")


@dataclass(frozen=True)
class ProgressPoint:
    """One parsed progress line."""

    scan_id: str
    plan: str
    done: int
    total: int


def parse_progress_line(line: str) -> ProgressPoint | None:
    """The point of a progress line (anywhere in ``line``), or None if it is not one."""
    m = _POINT_LINE.search(line)
    if m is None:
        return None
    return ProgressPoint(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))
