"""What the SPEC writer puts into its lines: the ``#S`` plan command and cell values.

Pure functions of documents and values (no file access), used by
:class:`adscan.callbacks.specfile.AdscanSpecWriter`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from adscan.core.schema import ADSCAN_COMMAND

__all__ = ["NUMERIC_DTYPES", "RESOURCE_KEY_ORDER", "plain", "rebuild_plan_command", "scalar"]

RESOURCE_KEY_ORDER = (
    "spec",
    "root",
    "resource_path",
    "resource_kwargs",
    "path_semantics",
    "uid",
    "run_start",
)
NAME_IN_REPR = re.compile(r"^[A-Za-z_][\w.]*\(.*?\bname='([^']*)'", re.DOTALL)
NUMERIC_DTYPES = ("number", "integer", "boolean")


def plain(value: Any) -> Any:
    """Device reprs -> names, numpy -> Python, recursively (for the ``#S`` command)."""
    if isinstance(value, str):
        m = NAME_IN_REPR.match(value)
        return m.group(1) if m else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rebuild_plan_command(doc: dict) -> str:
    """The plan as the user called it: ``adscan_command`` metadata when an adscan plan ran,
    else ``scan(detectors=['simdet'], num=5, args=['m1', -1, 1])`` from plan_name/plan_args."""
    if doc.get(ADSCAN_COMMAND):
        return str(doc[ADSCAN_COMMAND])
    parts = []
    for key, value in (doc.get("plan_args") or {}).items():
        if key == "detectors" and doc.get("detectors"):
            value = list(doc["detectors"])
        if value is None or value == "None":
            continue
        parts.append(f"{key}={plain(value)!r}")
    return f"{doc.get('plan_name', 'unknown_plan')}({', '.join(parts)})"


def scalar(value: Any) -> Any:
    """numpy scalars and one-element arrays -> Python values (a SPEC cell)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value
