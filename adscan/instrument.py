"""adscan's one start-up module, for IPython, notebooks and the queue-server worker.

``from adscan.instrument import *`` gives: ``RE`` (RunEngine with persistent metadata,
catalog and SPEC writers subscribed), ``cat`` (the catalog), the devices of
``startup/devices.yml`` (``m1``, ``m2``, ``simdet``), the adscan plans and the stock
``bluesky.plans``.  Settings come from ``startup/iconfig.yml``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import adscan  # noqa: F401 - EPICS loopback settings before any CA library loads
from adscan.config import load_devices, load_iconfig

logger = logging.getLogger("adscan.instrument")
iconfig = load_iconfig()

from apstools.utils import StoredDict  # noqa: E402
from bluesky import RunEngine  # noqa: E402
from bluesky.plans import *  # noqa: E402,F403 - the stock plans stay available
from bluesky_queueserver import is_re_worker_active  # noqa: E402

from adscan.catalog import make_catalog_writer, open_catalog  # noqa: E402
from adscan.devices import create_devices  # noqa: E402
from adscan.frameindex import FrameIndexWriter  # noqa: E402
from adscan.plans import (  # noqa: E402,F401 - exported to users and the queue server
    adscan_count,
    adscan_grid_scan,
    adscan_read_stats,
    adscan_scan,
    adscan_scan2,
)
from adscan.preprocessors import add_profile_streams  # noqa: E402
from adscan.progress import PROGRESS, adscan_progress  # noqa: E402,F401 - a worker function
from adscan.runclose import OpenRunRecorder, close_left_open, open_runs_dir  # noqa: E402
from adscan.specfile import make_spec_writer  # noqa: E402

# --- RunEngine with metadata that survives restarts (scan_id keeps counting) -----------
RE = RunEngine()
_md_file = Path(iconfig["metadata"]["file"])
_md_file.parent.mkdir(parents=True, exist_ok=True)
RE.md = StoredDict(_md_file, delay=0.2, title="adscan RunEngine metadata (RE.md)")
RE.md.setdefault("instrument_name", iconfig["instrument"]["name"])
RE.md.setdefault("beamline_id", iconfig["instrument"]["name"])

# --- every document to the catalog and the SPEC file ----------------------------------
close_left_open(iconfig)  # runs a destroyed/killed worker left open: stop doc, SPEC exit_status
RE.subscribe(OpenRunRecorder(open_runs_dir(iconfig)))
catalog_writer = make_catalog_writer(iconfig)
RE.subscribe(catalog_writer)
specwriter = make_spec_writer(iconfig, RE=RE)
RE.subscribe(specwriter.receiver)
RE.subscribe(FrameIndexWriter())  # /entry/adscan/point_index in each image file
if not is_re_worker_active():  # the catalog is for people; the worker only writes to it
    cat = open_catalog(iconfig)

# --- devices: m1, m2, simdet (whatever answers) ---------------------------------------
_found = create_devices(iconfig, load_devices())
globals().update(_found.devices)
missing_devices = dict(_found.missing)
for _name, _why in missing_devices.items():
    print(f"adscan: device {_name} is MISSING: {_why}")

# --- baseline (motors, detector timing) and the motor positions at each run's start ---
sd = add_profile_streams(RE, _found.motors.values(), _found.detectors.values())

# --- progress: a console line per point in the worker; adscan_progress() anywhere ----
RE.subscribe(PROGRESS)
if not is_re_worker_active():
    PROGRESS.stream = None  # the live table below already shows each point

# --- live table and plots only for interactive sessions -------------------------------
if not is_re_worker_active():
    from bluesky.callbacks.best_effort import BestEffortCallback

    bec = BestEffortCallback()
    bec.disable_plots()
    RE.subscribe(bec)
