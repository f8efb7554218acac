"""Plans of the adscan service (see :mod:`adscan.plans.scans`)."""

from adscan.plans.diagnostics import adscan_read_stats
from adscan.plans.scans import (
    PlanArgumentError,
    adscan_count,
    adscan_grid_scan,
    adscan_scan,
    adscan_scan2,
)

__all__ = [
    "PlanArgumentError",
    "adscan_count",
    "adscan_grid_scan",
    "adscan_read_stats",
    "adscan_scan",
    "adscan_scan2",
]
