"""The simulated ADSimDetector v3.4 IOC (softioc, iocs/ad_ioc.py) against real ophyd, over CA.

One IOC process (``python -m adscan.iocs``: motors + detector) for the module, on its own CA
port with its own PV prefixes and data directory.  The how-to's detector class is used
unmodified, with both ophyd control layers: pyepics in this process (RunEngine tests) and
caproto in a subprocess (``ophyd.set_cl('caproto')`` cannot share a process with pyepics).
The SIGTERM test stops the module's IOC, so it runs last.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import CA_PORTS, DATA, TAG, start_ioc, stop_process

PV_LIST = DATA / "simdet-v34-pvs.txt"  # the PVs the how-to's classes instantiate
AD = f"{TAG}sd:"
MOTORS = f"{TAG}sdgp:"
PORT = CA_PORTS[3]

DETECTOR_SOURCE = """
from apstools.devices import SingleTrigger_V34, SimDetectorCam_V34
from ophyd.areadetector import ADComponent, DetectorBase
from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
from ophyd.areadetector.plugins import (
    HDF5Plugin_V34, ImagePlugin_V34, PvaPlugin_V34, ROIPlugin_V34, StatsPlugin_V34,
)


class MyHDF5Plugin(FileStoreHDF5IterativeWrite, HDF5Plugin_V34): ...


class SimDetector_V34(SingleTrigger_V34, DetectorBase):
    cam = ADComponent(SimDetectorCam_V34, "cam1:")
    hdf1 = ADComponent(MyHDF5Plugin, "HDF1:", write_path_template=WRITE,
                       read_path_template=READ)
    image = ADComponent(ImagePlugin_V34, "image1:")
    pva = ADComponent(PvaPlugin_V34, "Pva1:")
    roi1 = ADComponent(ROIPlugin_V34, "ROI1:")
    stats1 = ADComponent(StatsPlugin_V34, "Stats1:")


def ad_setup(det):
    det.cam.stage_sigs["num_images"] = 3
    det.hdf1.kind = "hinted"
    det.hdf1.stage_sigs["compression"] = "LZ4"
    det.cam.stage_sigs["wait_for_plugins"] = "Yes"
    det.hdf1.stage_sigs["blocking_callbacks"] = "No"
    det.image.stage_sigs["blocking_callbacks"] = "No"
    det.stats1.kind = "hinted"
    det.stats1.total.kind = "hinted"
    det.stats1.max_value.kind = "hinted"
    det.stats1.unique_id.kind = "hinted"
    det.cam.acquire_time.put(0.005)
    det.cam.acquire_period.put(0.005)
"""

# Runs in a subprocess with either control layer: connect, summary, prime, stage/trigger/
# read/unstage (num_images=3, LZ4), check the one HDF5 file; prints one JSON line.
CL_SCRIPT = """
import json, sys, time
import ophyd
if sys.argv[1] == "caproto":
    ophyd.set_cl("caproto")
ophyd.Device.lazy_wait_for_connection = False
WRITE = READ = sys.argv[3]
{detector}
import io, contextlib
import h5py, hdf5plugin, numpy as np
from apstools.devices import AD_plugin_primed, AD_prime_plugin2
out = {{}}
t0 = time.monotonic()
det = SimDetector_V34(sys.argv[2], name="det")
det.wait_for_connection(all_signals=True, timeout=60)
out["connect_s"] = time.monotonic() - t0
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    det.summary()
out["summary_lines"] = len(buf.getvalue().splitlines())
ad_setup(det)
if not AD_plugin_primed(det.hdf1):
    AD_prime_plugin2(det.hdf1)
out["primed"] = bool(AD_plugin_primed(det.hdf1))
det.describe()
det.stage()
fn = det.hdf1._fn
st = det.trigger()
st.wait(30)
reading = det.read()
det.unstage()
out["file"] = fn
out["total"] = reading["det_stats1_total"]["value"]
out["max"] = reading["det_stats1_max_value"]["value"]
out["uid"] = reading["det_stats1_unique_id"]["value"]
out["template_after"] = det.hdf1.file_template.get()
with h5py.File(fn, "r") as f:
    d = f["/entry/data/data"]
    out["shape"] = list(d.shape)
    out["uids"] = [int(u) for u in f["/entry/instrument/NDAttributes/NDArrayUniqueId"][()]]
    out["last_sum"] = int(d[-1].sum(dtype=np.int64))
    out["last_max"] = int(d[-1].max())
    pl = d.id.get_create_plist()
    out["compression"] = str([pl.get_filter(i)[0] for i in range(pl.get_nfilters())])
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("simdet")
    t0 = time.monotonic()
    proc = start_ioc(port=PORT, motors_prefix=MOTORS, ad_prefix=AD, data_dir=data_dir)
    startup = time.monotonic() - t0
    print(f"IOC start-up (to READY, every PV answering): {startup:.2f} s")
    yield {"proc": proc, "data_dir": data_dir}
    stop_process(proc)


@pytest.fixture(scope="module")
def ca():
    from caproto.threading.client import Context

    ctx = Context()
    yield ctx
    ctx.disconnect()


def caget(ctx, name, **kw):
    (pv,) = ctx.get_pvs(name, timeout=5)
    pv.wait_for_connection(timeout=10)
    return pv.read(timeout=5, **kw)


def caput(ctx, name, value, timeout=10, **kw):
    (pv,) = ctx.get_pvs(name, timeout=5)
    pv.wait_for_connection(timeout=10)
    return pv.write(value, wait=True, timeout=timeout, **kw)


def wait_value(ctx, name, expected, timeout=20.0):
    from caproto import ChannelType

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        val = caget(ctx, name, data_type=ChannelType.STRING).data[0].decode()
        if val == expected:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{name} != {expected!r}")


def test_every_pv_answers(ioc, ca):
    names = [AD + line.strip().split(":", 1)[1] for line in PV_LIST.read_text().split()]
    assert len(names) == 1061
    pvs = ca.get_pvs(*names, timeout=10)
    for pv in pvs:
        pv.wait_for_connection(timeout=20)
    bad = []
    for pv in pvs:
        try:
            pv.read(timeout=10)
        except Exception as ex:  # noqa: BLE001 - collected and reported
            bad.append((pv.name, repr(ex)))
    assert not bad
    assert caget(ca, AD + "cam1:DataType_RBV.DISA").data[0] == 0


def run_cl_script(cl: str, data_dir: Path) -> dict:
    script = CL_SCRIPT.format(detector=DETECTOR_SOURCE)
    proc = subprocess.run(
        [sys.executable, "-c", script, cl, AD, str(data_dir) + "/"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError(f"{cl} script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


@pytest.mark.parametrize("cl", ["pyepics", "caproto"])
def test_howto_detector_stage_trigger_read(ioc, cl):
    out = run_cl_script(cl, ioc["data_dir"])
    print(cl, {k: out[k] for k in ("connect_s", "summary_lines", "file")})
    assert out["primed"]
    assert out["summary_lines"] > 20
    assert out["shape"] == [3, 1024, 1024]
    uids = out["uids"]
    assert uids == list(range(uids[0], uids[0] + 3))
    assert out["uid"] == uids[-1]
    assert out["total"] == out["last_sum"]
    assert out["max"] == out["last_max"]
    assert "32004" in out["compression"]  # LZ4
    assert out["template_after"] == "%s%s_%6.6d.h5"


@pytest.fixture(scope="module")
def det(ioc):
    import ophyd

    from adscan.devices.connect import connect

    ophyd.Device.lazy_wait_for_connection = False
    ns = {"WRITE": str(ioc["data_dir"]) + "/", "READ": str(ioc["data_dir"]) + "/"}
    exec(textwrap.dedent(DETECTOR_SOURCE), ns)  # the how-to's class, unmodified
    d = ns["SimDetector_V34"](AD, name="simdet")
    connect(d, timeout=60, all_signals=True)  # ophyd's wait, then its blocking path
    ns["ad_setup"](d)
    from apstools.devices import AD_plugin_primed, AD_prime_plugin2

    if not AD_plugin_primed(d.hdf1):
        AD_prime_plugin2(d.hdf1)
    return d


def _resolve(docs):
    """Arrays of every event's image, through the AD_HDF5 handler."""
    import hdf5plugin  # noqa: F401 - LZ4 filter for h5py
    from area_detector_handlers.handlers import AreaDetectorHDF5Handler

    resources = {d["uid"]: d for n, d in docs if n == "resource"}
    datums = {d["datum_id"]: d for n, d in docs if n == "datum"}
    handlers = {}
    frames, stats = [], []
    for name, doc in docs:
        if name != "event":
            continue
        datum = datums[doc["data"]["simdet_image"]]
        res = resources[datum["resource"]]
        if res["uid"] not in handlers:
            path = os.path.join(res["root"], res["resource_path"])
            handlers[res["uid"]] = AreaDetectorHDF5Handler(path, **res["resource_kwargs"])
        frames.append(np.asarray(handlers[res["uid"]](**datum["datum_kwargs"])))
        stats.append((doc["data"]["simdet_stats1_total"], doc["data"]["simdet_stats1_max_value"]))
    for h in handlers.values():
        h.close()
    return np.stack(frames), stats


@pytest.mark.parametrize("plan", ["count", "scan"])
def test_runengine_count_and_scan(det, plan):
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd import EpicsMotor

    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    if plan == "count":
        RE(bp.count([det], num=2))
        points = 2
    else:
        m1 = EpicsMotor(MOTORS + "m1", name="m1")
        m1.wait_for_connection(timeout=10)
        RE(bp.scan([det], m1, -1, 1, 3))
        points = 3
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "success"
    images, stats = _resolve(docs)
    assert images.shape == (points, 3, 1024, 1024)
    for img, (total, vmax) in zip(images, stats, strict=True):
        assert int(img[-1].sum(dtype=np.int64)) == total
        assert int(img[-1].max()) == vmax
    if plan == "scan":  # the peak follows the motor: strongest at m1 = 0
        totals = [t for t, _ in stats]
        assert totals[1] > totals[0] and totals[1] > totals[2]


def test_unknown_enum_refused_and_empty_template_accepted(det, ca):
    from caproto import ChannelType

    name = AD + "cam1:ImageMode"
    before = caget(ca, name).data[0]
    # The IOC core refuses the string (S_db_badChoice): the put answers ECA_PUTFAIL.
    resp = caput(ca, name, [b"Bogus"], data_type=ChannelType.STRING, timeout=5)
    assert resp.status.name == "ECA_PUTFAIL"
    assert caget(ca, name).data[0] == before
    with contextlib.suppress(Exception):  # refusing client-side would be fine too
        det.cam.image_mode.put("Bogus")  # pyepics: CA put error, nothing stored
    time.sleep(0.3)
    assert caget(ca, name).data[0] == before
    assert det.cam.image_mode.get(as_string=True) in ("Single", "Multiple", "Continuous")

    sig = det.hdf1.file_template
    old = sig.get()
    sig.set("").wait(5)  # what ophyd's unstage does to restore an empty template
    assert sig.get() == ""
    sig.set(old).wait(5)
    assert sig.get() == old


def _acquire_and_abort(ca, n_before_abort_s=0.3):
    p = AD
    caput(ca, p + "cam1:ImageMode", [1])
    caput(ca, p + "cam1:NumImages", [200])
    caput(ca, p + "cam1:AcquireTime", [0.02])
    caput(ca, p + "cam1:AcquirePeriod", [0.02])
    caput(ca, p + "HDF1:FileWriteMode", [2])
    caput(ca, p + "HDF1:NumCapture", [0])
    caput(ca, p + "HDF1:Compression", [6])
    caput(ca, p + "HDF1:Capture", [1])
    wait_value(ca, p + "HDF1:Capture_RBV", "Capture")
    caput(ca, p + "cam1:Acquire", [1])
    time.sleep(n_before_abort_s)
    full = caget(ca, p + "HDF1:FullFileName_RBV").data.tobytes().split(b"\0")[0].decode()
    return full


def _check_file(path, min_frames=1):
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(path, "r") as f:
        d = f["/entry/data/data"]
        uids = f["/entry/instrument/NDAttributes/NDArrayUniqueId"][()]
        assert d.shape[0] >= min_frames
        assert len(uids) == d.shape[0]
        assert list(np.diff(uids)) == [1] * (len(uids) - 1)
        d[-1]  # every frame decodes
        return d.shape[0]


def test_abort_mid_acquisition_leaves_readable_file(det, ca):
    fn = _acquire_and_abort(ca)
    caput(ca, AD + "cam1:Acquire", [0])
    wait_value(ca, AD + "cam1:AcquireBusy", "Done")
    assert caget(ca, AD + "cam1:DetectorState_RBV").data[0] == 10  # Aborted
    wait_value(ca, AD + "HDF1:Capture_RBV", "Done")
    n = _check_file(fn)
    assert 1 <= n < 200


def test_signal_whose_callbacks_were_lost_is_recovered(ioc, det):
    """The pyepics ``get_pv`` race (adscan.devices.connect): two signals on one cached PV,
    the second's connection and access callbacks never run.  Its state is set to that
    outcome by hand (the race itself is too rare to provoke); ophyd's own blocking path
    fails on it, connect() replays the callbacks and succeeds."""
    from ophyd import Component as Cpt
    from ophyd import Device, EpicsSignal

    from adscan.devices.connect import REPLAY_PERIOD, connect

    class TwoOnOnePV(Device):
        first = Cpt(EpicsSignal, "image1:Dim0SA")
        second = Cpt(EpicsSignal, "image1:Dim0SA")

    def lose_callbacks(sig):
        pv = sig._read_pv.pvname
        with sig._metadata_lock:
            sig._connection_states[pv] = False
            sig._access_rights_valid[pv] = False
            sig._metadata["connected"] = False  # as never set by _set_event_if_ready
            sig._signal_is_ready.clear()

    dev = TwoOnOnePV(AD, name="two")
    dev.wait_for_connection(timeout=30)
    assert dev.first._read_pv is dev.second._read_pv  # pyepics' cache: one PV, two signals
    lose_callbacks(dev.second)
    assert not dev.second.connected and dev.second._read_pv.connected
    with pytest.raises(TimeoutError, match="failed to send connection and access rights"):
        dev.second.wait_for_connection(timeout=0.5)  # what the CI run hit

    t0 = time.monotonic()
    assert connect(dev, timeout=60) < REPLAY_PERIOD + 5  # replayed while waiting, not at 60 s
    assert dev.second.connected and time.monotonic() - t0 < REPLAY_PERIOD + 5

    lose_callbacks(dev.second)
    assert connect(dev, timeout=0.5) < 10  # a short timeout: replayed at its end
    assert dev.second.connected
    assert dev.second.get() == dev.first.get()  # it reads, too
    dev.destroy()


def test_sigterm_mid_capture_leaves_readable_file(ioc, det, ca):
    """Last test: stops the module's IOC."""
    fn = _acquire_and_abort(ca)
    proc = ioc["proc"]
    proc.terminate()
    assert proc.wait(20) == 0
    n = _check_file(fn)
    assert 1 <= n < 200
