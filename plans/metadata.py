"""User metadata (``md``) of the adscan plans: checked before anything moves.

The start document goes to the catalog (msgpack: nesting limit; MongoDB: no ``$``/``.`` in
keys), the SPEC file and Redis, hence the limits below.
"""

from __future__ import annotations

import json
import math
from typing import Any

from adscan.core.schema import RESERVED_MD

MD_MAX_BYTES = 64 * 1024
MD_MAX_DEPTH = 8
MD_MAX_KEY = 64
#: Integers in md must fit a signed 64-bit integer (msgpack, BSON and the catalog refuse more).
MD_INT_MIN, MD_INT_MAX = -(2**63), 2**63 - 1

MD_DESCRIPTION = (
    f"Metadata added to the run's start document: string keys (at most "
    f"{MD_MAX_KEY} characters, no '$' first, no '.'), JSON values, at most "
    f"{MD_MAX_DEPTH} levels and {MD_MAX_BYTES // 1024} KiB, integers within "
    "signed 64 bits; keys the plan sets (uid, scan_id, plan_name, detectors, "
    "motors, hints, ...) are refused."
)


class PlanArgumentError(ValueError):
    """A plan argument is wrong; raised before anything moves."""


def _check_md_value(value: Any, path: str, depth: int) -> None:
    if depth > MD_MAX_DEPTH:
        raise PlanArgumentError(f"md nested deeper than {MD_MAX_DEPTH} levels at {path}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanArgumentError(f"md key {key!r} at {path} must be a string")
            if not key or len(key) > MD_MAX_KEY:
                raise PlanArgumentError(
                    f"md key {key[:20]!r} at {path} must have 1 to {MD_MAX_KEY} characters"
                )
            if key.startswith("$") or "." in key or any(ord(c) < 32 for c in key):
                raise PlanArgumentError(
                    f"md key {key!r} at {path} is not allowed (no '$' first, no '.', "
                    "no control characters)"
                )
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
                f"[-2**63, 2**63-1] (the catalog cannot store it): give a float or a string"
            )
    elif not (value is None or isinstance(value, bool)):
        raise PlanArgumentError(
            f"md value at {path} must be JSON (str, number, bool, null, list, dict), "
            f"got {type(value).__name__}"
        )


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
