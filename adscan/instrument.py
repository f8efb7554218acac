"""adscan's one start-up module, for IPython, notebooks and the queue-server worker.

``from adscan.instrument import *`` gives: ``RE`` (RunEngine with persistent metadata,
catalog and SPEC writers subscribed), ``cat`` (the catalog, not in the worker), the devices of
``startup/devices.yml`` (``m1``, ``m2``, ``simdet``), the adscan plans, the worker function
``adscan_progress`` and the stock ``bluesky.plans``.  Settings come from ``startup/iconfig.yml``.

This is the only module that does work when imported: it composes the steps of
:mod:`adscan.core.startup`, which tests call one by one.
"""

from __future__ import annotations

import adscan  # noqa: F401 - EPICS loopback settings before any CA library loads
from adscan.callbacks.progress import adscan_progress
from adscan.core import startup
from adscan.core.config import load_devices, load_iconfig
from adscan.plans import (
    adscan_count,
    adscan_grid_scan,
    adscan_read_stats,
    adscan_scan,
    adscan_scan2,
)

iconfig = load_iconfig()
_devices_cfg = load_devices()
_worker = startup.in_worker()

startup.init_plans(iconfig, _devices_cfg)
RE = startup.make_run_engine(iconfig)
writers = startup.make_writers(iconfig, RE, console=_worker)
catalog_writer, specwriter, PROGRESS = writers.catalog, writers.spec, writers.progress

_found = startup.create_devices(iconfig, _devices_cfg)
globals().update(_found.devices)
missing_devices = dict(_found.missing)
sd = startup.init_streams(iconfig, RE, _found)

_stock = startup.stock_plans()
globals().update(_stock)

__all__ = [
    "RE",
    "PROGRESS",
    "adscan_count",
    "adscan_grid_scan",
    "adscan_progress",
    "adscan_read_stats",
    "adscan_scan",
    "adscan_scan2",
    "catalog_writer",
    "iconfig",
    "missing_devices",
    "sd",
    "specwriter",
    *sorted(_found.devices),
    *sorted(_stock),
]

if not _worker:  # the catalog and the live table are for people; the worker only writes
    from adscan.data.catalog import open_catalog

    cat = open_catalog(iconfig)
    bec = startup.init_interactive(RE)
    __all__ += ["bec", "cat"]
