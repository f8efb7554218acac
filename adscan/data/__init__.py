"""The read side, never run in the worker: open the catalog, read runs back, plot, verify.

``from adscan.data import open_catalog, image_files, plot_run, verify_run`` (loaded on first
use, so importing this package stays light).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "open_catalog": "adscan.data.catalog",
    "open_v1": "adscan.data.catalog",
    "image_files": "adscan.data.catalog",
    "write_intake_yaml": "adscan.data.catalog",
    "RunData": "adscan.data.runs",
    "open_run": "adscan.data.runs",
    "read_run": "adscan.data.runs",
    "read_frame": "adscan.data.runs",
    "plot_run": "adscan.data.plots",
    "verify_run": "adscan.data.verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'adscan.data' has no attribute {name!r}")
