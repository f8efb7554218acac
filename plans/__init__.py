"""Plans of the adscan service (see :mod:`adscan.plans.scans`), importable as ``adscan.plans``."""

if __name__ != "adscan.plans":  # plans/ is mapped to adscan.plans (pyproject.toml)
    raise ImportError(
        f"plans/ is the package adscan.plans: `import adscan.plans`, not `import {__name__}` "
        "(two names would give two module objects)"
    )

from adscan.plans.diagnostics import adscan_read_stats  # noqa: E402
from adscan.plans.metadata import PlanArgumentError, check_md  # noqa: E402
from adscan.plans.scans import (  # noqa: E402
    adscan_count,
    adscan_grid_scan,
    adscan_scan,
    adscan_scan2,
)
from adscan.plans.spec import PLANS, configure_plans  # noqa: E402

__all__ = [
    "PLANS",
    "PlanArgumentError",
    "adscan_count",
    "adscan_grid_scan",
    "adscan_read_stats",
    "adscan_scan",
    "adscan_scan2",
    "check_md",
    "configure_plans",
]
