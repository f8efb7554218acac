"""The start-up steps (BITS style): small functions that ``adscan.instrument`` composes.

Each takes the instrument configuration (``load_iconfig()``) and returns what it made, so
tests and benchmarks can build the same pieces one at a time.  Nothing happens on import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("adscan.startup")


@dataclass
class Writers:
    """The callbacks subscribed to the RunEngine: catalog, SPEC file, progress."""

    catalog: Any
    spec: Any
    progress: Any
    nexus: Any = None  # AdscanNXWriter (nexus.enabled), else None
    publisher: Any = None  # LivePublisher to the 0MQ proxy (live.proxy), else None


def in_worker() -> bool:
    """True in the queue-server worker (the catalog and live table are then left out)."""
    from bluesky_queueserver import is_re_worker_active

    return bool(is_re_worker_active())


def make_run_engine(cfg: dict):
    """A RunEngine whose metadata survive restarts (``metadata.file``: scan_id keeps counting)."""
    from apstools.utils import StoredDict
    from bluesky import RunEngine

    RE = RunEngine()
    md_file = Path(cfg["metadata"]["file"])
    md_file.parent.mkdir(parents=True, exist_ok=True)
    RE.md = StoredDict(md_file, delay=0.2, title="adscan RunEngine metadata (RE.md)")
    RE.md.setdefault("instrument_name", cfg["instrument"]["name"])
    RE.md.setdefault("beamline_id", cfg["instrument"]["name"])
    return RE


def make_writers(cfg: dict, RE, *, console: bool = True) -> Writers:
    """Subscribe every document to the catalog, the SPEC file, the NeXus writer, the 0MQ
    proxy's publisher, and the progress reporter; start documents get the queue ``item_uid``.

    First, runs a lost worker left open are closed (:mod:`adscan.callbacks.runclose`); each
    open run is recorded, and each image file gets its frame -> point index
    (:mod:`adscan.callbacks.frameindex`).

    ``console``: the progress reporter prints a line per point (the worker); interactive
    sessions turn it off because the live table already shows each point.
    """
    from adscan.callbacks.catalog_writer import make_catalog_writer
    from adscan.callbacks.frameindex import FrameIndexWriter
    from adscan.callbacks.nexus import make_nexus_writer
    from adscan.callbacks.progress import PROGRESS, item_uid_preprocessor
    from adscan.callbacks.publisher import make_publisher
    from adscan.callbacks.runclose import OpenRunRecorder, close_left_open, open_runs_dir
    from adscan.callbacks.specfile import make_spec_writer
    from adscan.core.catalog_settings import catalog_cfg, tiled_enabled

    close_left_open(cfg)  # runs a destroyed/killed worker left open: stop doc, SPEC exit_status
    RE.subscribe(OpenRunRecorder(open_runs_dir(cfg)))
    if tiled_enabled(cfg):  # the Tiled data service (plans refused while it is down)
        from adscan.tiled.writer import install

        catalog = install(RE, cfg)
        if catalog_cfg(cfg).get("mongo_uri"):  # MongoDB too: dual write
            RE.subscribe(make_catalog_writer(cfg))
    else:
        catalog = make_catalog_writer(cfg)
        RE.subscribe(catalog)
    spec = make_spec_writer(cfg, RE=RE)
    RE.subscribe(spec.receiver)
    RE.subscribe(FrameIndexWriter())  # /entry/adscan/point_index in each image file
    RE.subscribe(PROGRESS)
    if not console:
        PROGRESS.stream = None
    RE.preprocessors.append(item_uid_preprocessor)  # start documents name their queue item
    nexus = make_nexus_writer(cfg)
    if nexus is not None:
        RE.subscribe(nexus.receiver)
    publisher = make_publisher(cfg)
    if publisher is not None:
        RE.subscribe(publisher)
    return Writers(catalog, spec, PROGRESS, nexus, publisher)


def create_devices(cfg: dict, devices_cfg: dict | None = None):
    """Connect the devices of ``devices.yml`` (a :class:`adscan.devices.DeviceSet`); the ones
    that do not answer are reported by name and left out."""
    from adscan.core.config import load_devices
    from adscan.devices import create_devices as connect

    found = connect(cfg, load_devices() if devices_cfg is None else devices_cfg)
    for name, why in found.missing.items():
        print(f"adscan: device {name} is MISSING: {why}")
    return found


def init_plans(cfg: dict, devices_cfg: dict | None = None) -> None:
    """Give the plans the configured device names and defaults (their queue-server annotation)."""
    from adscan.core.config import load_devices
    from adscan.plans import configure_plans

    configure_plans(cfg, load_devices() if devices_cfg is None else devices_cfg)


def init_streams(cfg: dict, RE, found) -> Any:
    """Baseline (motors, detector timing) and the motor positions at each run's start."""
    from adscan.core.preprocessors import add_profile_streams

    return add_profile_streams(
        RE,
        found.motors.values(),
        found.detectors.values(),
        reconnect_timeout=float(cfg["epics"]["reconnect_timeout"]),
    )


def init_interactive(RE) -> Any:
    """The live table for IPython sessions (no plots: no display is assumed)."""
    from bluesky.callbacks.best_effort import BestEffortCallback

    bec = BestEffortCallback()
    bec.disable_plots()
    RE.subscribe(bec)
    return bec


def stock_plans() -> dict[str, Any]:
    """The stock ``bluesky.plans`` (``count``, ``scan``, ``grid_scan``, ...) by name."""
    import inspect

    import bluesky.plans

    return {
        name: obj
        for name, obj in vars(bluesky.plans).items()
        if not name.startswith("_") and inspect.isgeneratorfunction(obj)
    }
