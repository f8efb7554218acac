"""Storage side: databroker catalog (embedded msgpack and MongoDB) and the SPEC file writer.

Driven by real bluesky document streams: a real ``RunEngine`` with small in-process ophyd
devices (no EPICS, no ophyd.sim): motors with readback + setpoint signals and an area-detector
stand-in that writes LZ4-compressed frames to real HDF5 files (``/entry/data/data``) and emits
``AD_HDF5`` resource/datum documents exactly as ophyd's filestore mixins do.

MongoDB: ``test_mongo_path_with_mongomock_*`` run the unmodified URI code path against
``mongomock.patch``; ``test_mongo_path_with_real_mongodb_*`` run the same checks against the
server in ``$ADSCAN_TEST_MONGO_URI`` (skipped when unset).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from event_model import compose_resource
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus
from spec2nexus.spec import SpecDataFile

from adscan.callbacks.catalog_writer import make_catalog_writer
from adscan.callbacks.specfile import AdscanSpecWriter, make_spec_writer, rebuild_plan_command
from adscan.data.catalog import (
    AdscanHDF5Handler,
    image_files,
    open_catalog,
    open_v1,
    write_intake_yaml,
)

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
FRAMES = 3
ROWS, COLS = 12, 16


# ---------------------------------------------------------------------------------------------
# in-process devices (no EPICS)


class SoftMotor(Device):
    """Positioner with EpicsMotor's field names: readback named like the motor + setpoint."""

    user_readback = Cpt(Signal, value=0.0, kind="hinted")
    user_setpoint = Cpt(Signal, value=0.0, kind="normal")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_readback.name = self.name

    @property
    def position(self):
        return self.user_readback.get()

    def set(self, value):
        self.user_setpoint.put(value)
        self.user_readback.put(value)
        st = DeviceStatus(self)
        st.set_finished()
        return st

    def stop(self, *, success=False):
        pass


class Stats(Device):
    total = Cpt(Signal, value=0.0, kind="hinted")
    max_value = Cpt(Signal, value=0.0, kind="hinted")
    unique_id = Cpt(Signal, value=0, kind="hinted")


class HDF5FrameDetector(Device):
    """Area detector stand-in: FRAMES LZ4 frames per trigger into one HDF5 file per stage."""

    stats1 = Cpt(Stats, "")

    def __init__(self, *args, directory, fail_at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory = Path(directory)
        self.fail_at = fail_at
        self._h5 = None
        self._asset_docs = []
        self._datum_id = None
        self.written = []  # frames written, per point (to compare with what is read back)
        self._uid_counter = 1000

    def stage(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{uuid.uuid4().hex[:20]}_000000.h5"
        self._h5 = h5py.File(path, "w")
        dset = self._h5.create_dataset(
            "/entry/instrument/detector/data",
            shape=(0, ROWS, COLS),
            maxshape=(None, ROWS, COLS),
            chunks=(1, ROWS, COLS),
            dtype="uint8",
            **hdf5plugin.LZ4(),
        )
        self._h5["/entry/data/data"] = dset  # hard link, as ADCore writes it
        resource, self._datum_factory, _ = compose_resource(
            start={"uid": "filled in by the RunEngine"},
            spec="AD_HDF5",
            root="/",
            resource_path=str(path.relative_to("/")),
            resource_kwargs={"frame_per_point": FRAMES},
            path_semantics="posix",
        )
        resource.pop("run_start")  # as ophyd does: bluesky adds the run's uid
        self._asset_docs = [("resource", resource)]
        self._point = 0
        self.written = []
        return super().stage()

    def unstage(self):
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        return super().unstage()

    def trigger(self):
        if self.fail_at is not None and self._point >= self.fail_at:
            raise RuntimeError(f"simulated detector failure at point {self._point}")
        rng = np.random.default_rng(self._point)
        frames = rng.poisson(10 + self._point, size=(FRAMES, ROWS, COLS)).astype("uint8")
        dset = self._h5["/entry/data/data"]
        n = dset.shape[0]
        dset.resize(n + FRAMES, axis=0)
        dset[n:] = frames
        self._h5.flush()
        self.written.append(frames)
        self._uid_counter += FRAMES
        self.stats1.total.put(float(frames[-1].sum()))
        self.stats1.max_value.put(float(frames[-1].max()))
        self.stats1.unique_id.put(self._uid_counter)
        datum = self._datum_factory(datum_kwargs={"point_number": self._point})
        self._asset_docs.append(("datum", datum))
        self._datum_id = datum["datum_id"]
        self._point += 1
        st = DeviceStatus(self)
        st.set_finished()
        return st

    def read(self):
        out = super().read()
        out[f"{self.name}_image"] = {"value": self._datum_id, "timestamp": time.time()}
        return out

    def describe(self):
        out = super().describe()
        out[f"{self.name}_image"] = {
            "source": "SIM:image",
            "dtype": "array",
            "shape": [FRAMES, ROWS, COLS],
            "dtype_numpy": "|u1",
            "external": "FILESTORE:",  # as ophyd's make_data_key
        }
        return out

    def collect_asset_docs(self):
        items, self._asset_docs = self._asset_docs, []
        yield from items


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def cfg(iconfig, tmp_path):
    """The session iconfig with catalog, SPEC and image paths in this test's directory."""
    c = copy.deepcopy(iconfig)
    c["instrument"]["data_dir"] = str(tmp_path)
    c["catalog"].update(mongo_uri=None, directory=str(tmp_path / "catalog"))
    c["spec"].update(directory=str(tmp_path / "spec"), file="test.dat")
    c["detector"]["write_path"] = c["detector"]["read_path"] = str(tmp_path / "images") + "/"
    return c


@pytest.fixture
def devices(cfg):
    simdet = HDF5FrameDetector("", name="simdet", directory=cfg["detector"]["read_path"])
    m1 = SoftMotor("", name="m1")
    m2 = SoftMotor("", name="m2")
    return simdet, m1, m2


def make_RE(cfg, *, spec=True):
    RE = RunEngine({}, context_managers=[])
    writer = make_catalog_writer(cfg)
    RE.subscribe(writer)
    specwriter = None
    if spec:
        specwriter = make_spec_writer(cfg, RE)
        RE.subscribe(specwriter)
    return RE, writer, specwriter


def read_spec(cfg) -> SpecDataFile:
    return SpecDataFile(str(Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]))


def spec_text(cfg) -> str:
    return (Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]).read_text()


def run_python(code: str, *args: str, timeout: float = 60) -> dict:
    """Run *code* in a fresh interpreter; it prints one JSON line, returned as a dict."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("HDF5_PLUGIN_PATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# embedded catalog


def test_embedded_catalog_round_trip(cfg, devices):
    simdet, m1, m2 = devices
    RE, writer, _ = make_RE(cfg, spec=False)
    (uid,) = RE(bp.scan([simdet], m1, -1, 1, 5))
    assert writer.kind == "msgpack"
    assert (Path(cfg["catalog"]["directory"]) / f"{uid}.msgpack").exists()

    cat = open_catalog(cfg)
    run = cat[-1]
    assert run.metadata["start"]["uid"] == uid
    assert cat[uid].metadata["start"]["uid"] == uid
    assert cat[run.metadata["start"]["scan_id"]].metadata["start"]["uid"] == uid
    assert run.metadata["stop"]["exit_status"] == "success"

    ds = run.primary.read()
    image = ds["simdet_image"]
    assert image.shape == (5, FRAMES, ROWS, COLS)
    np.testing.assert_array_equal(image.values, np.stack(simdet.written))
    np.testing.assert_allclose(ds["m1"].values, np.linspace(-1, 1, 5))
    np.testing.assert_allclose(ds["m1_user_setpoint"].values, np.linspace(-1, 1, 5))
    for key in ("simdet_stats1_total", "simdet_stats1_max_value", "simdet_stats1_unique_id"):
        assert ds[key].shape == (5,)
    np.testing.assert_allclose(
        ds["simdet_stats1_total"].values, [f[-1].sum() for f in simdet.written]
    )

    resources = run.primary._resources
    assert len(resources) == 1
    res = resources[0]
    assert res["spec"] == "AD_HDF5" and res["root"] == "/"
    assert res["resource_kwargs"] == {"frame_per_point": FRAMES}
    assert res["run_start"] == uid
    files = image_files(run)
    assert files == [Path(res["root"] + res["resource_path"])]
    assert all(f.exists() for f in files)

    # v1 API on the same catalog
    db = open_v1(cfg)
    table = db[uid].table()
    assert len(table) == 5 and "simdet_stats1_total" in table
    assert open_catalog(cfg)._handler_registry["AD_HDF5"] is AdscanHDF5Handler


def test_embedded_catalog_grid_scan_and_count(cfg, devices):
    simdet, m1, m2 = devices
    RE, _, specwriter = make_RE(cfg)
    RE(bp.count([simdet], num=2))
    RE(bp.grid_scan([simdet], m1, -1, 1, 3, m2, -0.5, 0.5, 2, snake_axes=True))
    cat = open_catalog(cfg)
    assert len(cat) == 2
    ds = cat[-1].primary.read()
    assert ds["simdet_image"].shape == (6, FRAMES, ROWS, COLS)
    np.testing.assert_allclose(ds["m2"].values, [-0.5, 0.5, 0.5, -0.5, -0.5, 0.5])
    assert cat[-2].primary.read()["simdet_image"].shape == (2, FRAMES, ROWS, COLS)

    sdf = read_spec(cfg)
    scan = sdf.getScan(sdf.getScanNumbers()[-1])
    assert len(scan.data["m1"]) == 6
    assert any("shape = (3, 2)" in line for line in scan.raw.splitlines() if "#MD" in line)
    assert specwriter.errors == 0


def test_catalog_readable_by_another_process_during_and_after_run(cfg, devices):
    """The catalog is on disk: a fresh interpreter reads a run mid-way and then its images."""
    simdet, m1, _ = devices
    RE, _, _ = make_RE(cfg, spec=False)
    script = (
        "import json, sys\n"
        "from adscan.data.catalog import open_catalog, image_files\n"
        "cfg = {'catalog': {'name': 'adscan', 'mongo_uri': None, 'directory': sys.argv[1]}}\n"
        "run = open_catalog(cfg)[sys.argv[2]]\n"
        "ds = run.primary.read()\n"
        "out = {'n': int(ds['simdet_stats1_total'].shape[0]),"
        " 'stop': run.metadata['stop'], 'files': [str(p) for p in image_files(run)]}\n"
        "if %s:\n"
        "    out['shape'] = list(ds['simdet_image'].shape)\n"
        "    out['sum'] = int(ds['simdet_image'].values.astype('int64').sum())\n"
        "print(json.dumps(out))\n"
    )
    seen = {}

    def plan():
        @bpp.stage_decorator([simdet])
        @bpp.run_decorator(md={"purpose": "live read"})
        def inner():
            for x in (0.0, 0.5):
                yield from bps.mv(m1, x)
                yield from bps.trigger_and_read([simdet, m1])
            seen["live"] = run_python(script % "True", cfg["catalog"]["directory"], seen["uid"])
            yield from bps.mv(m1, 1.0)
            yield from bps.trigger_and_read([simdet, m1])

        return (yield from inner())

    RE.subscribe(lambda name, doc: seen.update(uid=doc["uid"]), "start")
    (uid,) = RE(plan())
    assert seen["live"]["n"] == 2 and seen["live"]["stop"] is None
    # images too, while the HDF5 file is still open for writing (LZ4, fresh process)
    assert seen["live"]["shape"] == [2, FRAMES, ROWS, COLS]
    assert seen["live"]["sum"] == int(np.stack(simdet.written[:2]).astype("int64").sum())

    after = run_python(script % "True", cfg["catalog"]["directory"], uid)
    assert after["n"] == 3 and after["stop"]["exit_status"] == "success"
    assert after["shape"] == [3, FRAMES, ROWS, COLS]
    assert after["sum"] == int(np.stack(simdet.written).astype("int64").sum())
    assert all(Path(f).exists() for f in after["files"])


def test_intake_yaml_opens_same_catalog(cfg, devices):
    simdet, m1, _ = devices
    RE, _, _ = make_RE(cfg, spec=False)
    (uid,) = RE(bp.count([simdet], num=1))
    path = write_intake_yaml(cfg)
    assert path == Path(cfg["instrument"]["data_dir"]) / "intake" / "adscan.yml"
    env = dict(os.environ, PYTHONPATH=str(REPO), INTAKE_PATH=str(path.parent))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, databroker\n"
            "run = databroker.catalog['adscan'][-1]\n"
            "print(json.dumps({'uid': run.metadata['start']['uid'],"
            " 'shape': list(run.primary.read()['simdet_image'].shape)}))\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(REPO),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"uid": uid, "shape": [1, FRAMES, ROWS, COLS]}


# ---------------------------------------------------------------------------------------------
# SPEC file


def test_spec_file_scans_columns_resources(cfg, devices):
    simdet, m1, m2 = devices
    RE, _, specwriter = make_RE(cfg)
    uids = []
    uids += RE(bp.count([simdet], num=2))
    uids += RE(bp.scan([simdet], m1, -1, 1, 5))
    totals1 = [f[-1].sum() for f in simdet.written]
    uids += RE(bp.scan([simdet], m1, -1, 1, m2, 4, 1.5, 3))

    sdf = read_spec(cfg)
    numbers = sdf.getScanNumbers()
    assert [int(n) for n in numbers] == [1, 2, 3]
    count, scan1, scan2 = (sdf.getScan(n) for n in numbers)

    assert count.scanCmd.startswith("count(detectors=['simdet'], num=2")
    assert scan1.scanCmd.startswith("scan(detectors=['simdet'], num=5, args=['m1', -1, 1]")
    assert "args=['m1', -1, 1, 'm2', 4, 1.5]" in scan2.scanCmd

    for key in ("simdet_stats1_total", "simdet_stats1_max_value", "simdet_stats1_unique_id"):
        assert key in count.L and key in scan1.L and key in scan2.L
    assert scan1.L[:2] == ["m1", "m1_user_setpoint"]
    assert scan2.L[:4] == ["m1", "m1_user_setpoint", "m2", "m2_user_setpoint"]
    assert "simdet_image" not in scan1.L
    assert len(count.data["simdet_stats1_total"]) == 2
    assert len(scan1.data["m1"]) == 5 and len(scan2.data["m2"]) == 3
    np.testing.assert_allclose(scan1.data["m1_user_setpoint"], np.linspace(-1, 1, 5))
    np.testing.assert_allclose(scan2.data["m2"], [4, 2.75, 1.5])
    np.testing.assert_allclose(scan1.data["simdet_stats1_total"], totals1)

    text = spec_text(cfg)
    resource_lines = [ln for ln in text.splitlines() if "resource {'spec': 'AD_HDF5'" in ln]
    assert len(resource_lines) == 3
    for line, uid in zip(resource_lines, uids, strict=True):
        assert line.startswith("#C ")
        assert ".  resource {'spec': 'AD_HDF5', 'root': '/', 'resource_path': '" in line
        assert "'resource_kwargs': {'frame_per_point': 3}, 'path_semantics': 'posix', " in line
        assert line.endswith(f"'run_start': '{uid}'}}")
    for scan in (count, scan1, scan2):
        assert any("resource {'spec': 'AD_HDF5'" in c for c in scan.comments)
        assert scan.comments[-1].endswith("exit_status = success")
    assert "#U externals" not in text and "datum" not in text
    assert max(len(line) for line in text.splitlines()) < 4000
    assert specwriter.errors == 0


def test_spec_rows_are_on_disk_while_scanning(cfg, devices):
    simdet, m1, _ = devices
    RE, _, _ = make_RE(cfg)
    counts = []

    def watch(name, doc):
        if name == "event":
            counts.append(
                sum(1 for ln in spec_text(cfg).splitlines() if ln and ln[0] in "-0123456789")
            )

    RE(bp.scan([simdet], m1, 0, 1, 4), watch)  # subscribed after the writers: sees their rows
    assert counts == [1, 2, 3, 4]


def test_spec_scan_numbers_continue_across_writers(cfg, devices):
    simdet, m1, _ = devices
    RE, _, _ = make_RE(cfg)
    RE(bp.count([simdet], num=1))
    RE(bp.count([simdet], num=1))
    assert [int(n) for n in read_spec(cfg).getScanNumbers()] == [1, 2]

    # "service restart": fresh RunEngine (scan_id 0) and writer; RE.md follows the file
    RE2, _, writer2 = make_RE(cfg)
    assert RE2.md["scan_id"] == 2
    (uid,) = RE2(bp.count([simdet], num=1))
    assert open_catalog(cfg)[uid].metadata["start"]["scan_id"] == 3

    # a writer not synced with RE: #S still continues the file
    RE3 = RunEngine({}, context_managers=[])
    RE3.subscribe(AdscanSpecWriter(Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]))
    RE3(bp.count([simdet], num=1))  # scan_id 1 -> #S 4
    RE3.md["scan_id"] = 40
    RE3(bp.count([simdet], num=1))  # scan_id 41 -> #S 41
    sdf = read_spec(cfg)
    assert [int(n) for n in sdf.getScanNumbers()] == [1, 2, 3, 4, 41]
    assert spec_text(cfg).count("#F ") == 1  # one file header
    assert writer2.errors == 0


def test_failing_plan_leaves_closed_scan_and_failed_run(cfg, devices):
    simdet, m1, _ = devices
    RE, _, specwriter = make_RE(cfg)
    simdet.fail_at = 2
    with pytest.raises(RuntimeError, match="simulated detector failure"):
        RE(bp.scan([simdet], m1, 0, 1, 5))
    simdet.fail_at = 0  # fails before the first point: no #L data, still a closed scan
    with pytest.raises(RuntimeError, match="simulated detector failure"):
        RE(bp.count([simdet], num=3))
    simdet.fail_at = None
    RE(bp.count([simdet], num=1))

    cat = open_catalog(cfg)
    assert cat[-3].metadata["stop"]["exit_status"] == "fail"
    assert cat[-3].primary.read()["simdet_image"].shape == (2, FRAMES, ROWS, COLS)
    assert cat[-2].metadata["stop"]["exit_status"] == "fail"

    sdf = read_spec(cfg)
    first, second, third = (sdf.getScan(n) for n in sdf.getScanNumbers())
    assert len(first.data["m1"]) == 2
    assert first.comments[-1].endswith("exit_status = fail")
    assert any("reason = " in c and "simulated detector failure" in c for c in first.comments)
    assert second.comments[-1].endswith("exit_status = fail")
    assert third.comments[-1].endswith("exit_status = success")
    assert len(third.data["simdet_stats1_total"]) == 1
    assert specwriter.errors == 0


def test_spec_writer_closes_scan_without_stop_document(cfg, devices, tmp_path):
    """A run whose stop never came is closed as 'incomplete' when the next one starts."""
    simdet, m1, _ = devices
    docs = []
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(bp.count([simdet], num=2))
    writer = AdscanSpecWriter(tmp_path / "partial.dat")
    for name, doc in docs[:-1]:
        writer(name, doc)
    for name, doc in docs:
        writer(name, doc)
    sdf = SpecDataFile(str(tmp_path / "partial.dat"))
    first, second = (sdf.getScan(n) for n in sdf.getScanNumbers())
    assert first.comments[-1].endswith("exit_status = incomplete (no stop document)")
    assert second.comments[-1].endswith("exit_status = success")
    assert writer.errors == 0


def test_spec_positioners_from_baseline_stream(cfg, devices):
    """#O/#P from a stream (here 'baseline'); a new #O list writes a new file header."""
    from bluesky.preprocessors import SupplementalData

    simdet, m1, m2 = devices
    RE, _, _ = make_RE(cfg, spec=False)
    writer = make_spec_writer(cfg, RE, positioner_stream="baseline")
    RE.subscribe(writer)
    RE(bp.count([simdet], num=1))  # no baseline: #O0 empty
    m1.set(0.25)
    m2.set(-3.5)
    RE.preprocessors.append(SupplementalData(baseline=[m1, m2]))
    RE(bp.count([simdet], num=1))
    text = spec_text(cfg)
    assert text.count("#F ") == 2 and "#O0 m1  m2" in text
    sdf = read_spec(cfg)
    second = sdf.getScan(sdf.getScanNumbers()[-1])
    assert second.positioner == {"m1": 0.25, "m2": -3.5}
    assert writer.errors == 0


def test_rebuild_plan_command_from_reprs():
    doc = {
        "plan_name": "grid_scan",
        "detectors": ["simdet"],
        "plan_args": {
            "detectors": ["SimDetector_V34(prefix='kad:', name='simdet', read_attrs=[])"],
            "args": [
                "MyEpicsMotor(prefix='gp:m1', name='m1', settle_time=0.0)",
                -1,
                1,
                5,
                "MyEpicsMotor(prefix='gp:m2', name='m2', settle_time=0.0)",
                -0.5,
                0.5,
                4,
            ],
            "per_step": "None",
            "snake_axes": True,
        },
    }
    assert rebuild_plan_command(doc) == (
        "grid_scan(detectors=['simdet'], args=['m1', -1, 1, 5, 'm2', -0.5, 0.5, 4], "
        "snake_axes=True)"
    )


# ---------------------------------------------------------------------------------------------
# MongoDB: the same writer/catalog code with catalog.mongo_uri set


def _mongo_round_trip(cfg, devices, uri):
    simdet, m1, _ = devices
    cfg["catalog"]["mongo_uri"] = uri
    RE, writer, specwriter = make_RE(cfg)
    assert writer.kind == "mongo"
    (uid1,) = RE(bp.scan([simdet], m1, -1, 1, 3))
    simdet.fail_at = 1
    with pytest.raises(RuntimeError):
        RE(bp.count([simdet], num=3))
    simdet.fail_at = None
    writer.close()

    cat = open_catalog(cfg)
    run = cat[uid1]
    assert cat[-2].metadata["start"]["uid"] == uid1
    assert cat[run.metadata["start"]["scan_id"]].metadata["start"]["uid"] == uid1
    ds = run.primary.read()
    assert ds["simdet_image"].shape == (3, FRAMES, ROWS, COLS)
    assert ds["simdet_image"].values.sum() > 0
    np.testing.assert_allclose(ds["m1_user_setpoint"].values, [-1, 0, 1])
    assert [p.exists() for p in image_files(run)] == [True]
    assert run.primary._resources[0]["spec"] == "AD_HDF5"
    assert cat[-1].metadata["stop"]["exit_status"] == "fail"
    assert len(open_v1(cfg)[uid1].table()) == 3
    assert [int(n) for n in read_spec(cfg).getScanNumbers()] == [1, 2]
    assert specwriter.errors == 0


def test_mongo_path_with_mongomock_round_trip(cfg, devices):
    import mongomock

    with mongomock.patch(servers=(("localhost", 27017),)):
        _mongo_round_trip(cfg, devices, "mongodb://localhost:27017/adscan_test")


def test_mongo_path_with_mongomock_uri_gets_timeout(cfg):
    import mongomock

    from adscan.core.catalog_settings import mongo_uri_with_timeout

    assert "serverSelectionTimeoutMS=5000" in mongo_uri_with_timeout("mongodb://h:1/db")
    assert mongo_uri_with_timeout("mongodb://h/db?serverSelectionTimeoutMS=9") == (
        "mongodb://h/db?serverSelectionTimeoutMS=9"
    )
    with mongomock.patch(servers=(("localhost", 27017),)):
        cfg["catalog"]["mongo_uri"] = "mongodb://localhost:27017/adscan_test"
        path = write_intake_yaml(cfg)
        assert "serverSelectionTimeoutMS" in path.read_text()
        assert "bluesky-mongo-normalized-catalog" in path.read_text()


def test_mongo_uri_unreachable_server_fails_fast(cfg):
    """Real pymongo, nothing listening: make_catalog_writer fails in well under 30 s."""
    import pymongo.errors

    cfg["catalog"]["mongo_uri"] = "mongodb://127.0.0.1:9/adscan?serverSelectionTimeoutMS=300"
    t0 = time.monotonic()
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        make_catalog_writer(cfg)
    assert time.monotonic() - t0 < 5
    cfg["catalog"]["mongo_uri"] = "mongodb://127.0.0.1:9"
    with pytest.raises(ValueError, match="database"):
        make_catalog_writer(cfg)


@pytest.fixture
def real_mongo_uri():
    uri = os.environ.get("ADSCAN_TEST_MONGO_URI")
    if not uri:
        pytest.skip("ADSCAN_TEST_MONGO_URI not set (mongomock variant runs instead)")
    parts = urllib.parse.urlsplit(uri)
    db_name = f"adscan_test_{uuid.uuid4().hex[:8]}"
    uri = urllib.parse.urlunsplit(parts._replace(path="/" + db_name))
    yield uri
    import pymongo

    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(db_name)


def test_mongo_path_with_real_mongodb_round_trip(cfg, devices, real_mongo_uri):
    _mongo_round_trip(cfg, devices, real_mongo_uri)
