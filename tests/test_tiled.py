"""Tiled as the data service, with real processes on loopback.

* two real ``tiled serve catalog`` servers started by ``adscan.tiled.server.ensure``: the
  embedded default (SQLite + DuckDB) and one on a real PostgreSQL cluster started by
  ``adscan.tiled.postgres`` from Debian's binaries (as the ``postgres`` user under root);
* the how-to's four plans run in-process against the session's simulated IOC (real LZ4 HDF5
  files), written live into the SQLite server by ``adscan.tiled.writer``, and their documents
  replayed into the PostgreSQL server;
* every image read back through the Tiled client and compared with the HDF5 file (h5py), the
  scalar columns with the event documents; search by plan, scan id, time;
* a restart of each server (PostgreSQL too) loses nothing; a wrong API key is a clear error;
  Tiled down at plan start refuses the plan naming the service; Tiled lost mid-run: the run
  goes on, SPEC and HDF5 are complete, the backup file imports into Tiled afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - LZ4
import httpx
import numpy as np
import pytest

from adscan.ports import free_port
from adscan.tiled import bulk, importer, reader, server, writer

pytestmark = pytest.mark.timeout(600)  # the demo test alone took 122-300 s on a loaded machine

FRAMES = 2
IMAGE = "simdet_image"
DATASET = "/entry/data/data"


def tiled_cfg(iconfig: dict, directory: Path, **tiled) -> dict:
    """The session iconfig with its own data dir, SPEC file and Tiled server (free port)."""
    cfg = copy.deepcopy(iconfig)
    cfg["instrument"]["data_dir"] = str(directory)
    cfg["spec"].update(directory=str(directory / "spec"), file="tiled.dat")
    cfg["metadata"]["file"] = str(directory / "md.json")
    cfg["tiled"] = {"port": free_port(), "directory": str(directory / "tiled"), **tiled}
    cfg["catalog"]["tiled_retry_timeout"] = 2.0
    return cfg


@pytest.fixture(scope="module")
def sqlite_cfg(iconfig, tmp_path_factory, _pg_starting):
    directory = tmp_path_factory.mktemp("tiled-sqlite")
    # readable too: the synthetic multi-file run's HDF5 files (test_verify_multi_file_run)
    (directory / "synthetic").mkdir()
    cfg = tiled_cfg(iconfig, directory, readable=[str(directory / "synthetic")])
    infos = server.ensure(cfg)
    assert [i.name for i in infos] == ["tiled"] and infos[0].started
    try:
        yield cfg
    finally:
        server.stop(cfg)


def _wants_postgres(request) -> bool:
    """Does any selected test of this module use the PostgreSQL server?"""
    return any(
        item.module is request.module
        and ("pg_cfg" in item.fixturenames or "postgresql" in item.name)
        for item in request.session.items
    )


@pytest.fixture(scope="module")
def _pg_starting(iconfig, tmp_path_factory, request):
    """The PostgreSQL cluster and its Tiled server, started in a thread from the module's
    first fixture on (initdb and two server starts take ~30 s): they come up while the SQLite
    server starts and the four plans run.  Yields (cfg, future of ``server.ensure``)."""
    if not _wants_postgres(request):
        yield None
        return
    # Under root the cluster belongs to user postgres, who must reach its directory.
    base = Path(tempfile.mkdtemp(prefix="adscan-pg-"))
    os.chmod(base, 0o711)
    cfg = tiled_cfg(
        iconfig,
        tmp_path_factory.mktemp("tiled-pg"),
        database="postgresql",
        postgres_port=free_port(),
        postgres_dir=str(base / "cluster"),
    )
    pool = ThreadPoolExecutor(1, thread_name_prefix="pg-start")
    future = pool.submit(server.ensure, cfg)
    try:
        yield cfg, future
    finally:
        try:
            future.result(timeout=server.START_TIMEOUT + 120)  # never stop a half-started one
            started = True
        except Exception:  # noqa: BLE001 - reported by pg_cfg; still clean up what started
            started = False
        pool.shutdown()
        if started:
            server.stop(cfg)
        else:
            with contextlib.suppress(Exception):
                server.stop(cfg)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_cfg(_pg_starting):
    cfg, future = _pg_starting
    infos = future.result(timeout=server.START_TIMEOUT + 120)  # its own errors surface here
    assert [i.name for i in infos] == ["postgres", "tiled"]
    return cfg


@pytest.fixture(scope="module")
def devices(iconfig, beamline):
    from adscan.core import startup

    startup.init_plans(iconfig)
    found = startup.create_devices(iconfig)
    assert not found.missing, found.missing
    det = found.devices["simdet"]
    det.cam.acquire_time.put(0.005)
    det.cam.acquire_period.put(0.005)
    return found


def make_RE(cfg: dict, found, *, scan_id: int, flush_interval: float | None = None):
    """A RunEngine as the profile builds it, with the Tiled writer installed."""
    from bluesky import RunEngine

    from adscan.callbacks.specfile import make_spec_writer
    from adscan.core import startup

    RE = RunEngine({"scan_id": scan_id})
    docs: dict[str, list] = defaultdict(list)  # start uid -> [(name, doc)]
    current = {}

    def collect(name, doc):
        if name == "start":
            current["uid"] = doc["uid"]
        docs[current["uid"]].append((name, doc))

    RE.subscribe(collect)
    tiled_writer = writer.install(RE, cfg, flush_interval=flush_interval)
    specwriter = make_spec_writer(cfg, RE=RE)
    RE.subscribe(specwriter.receiver)
    startup.init_streams(cfg, RE, found)
    return RE, tiled_writer, docs, specwriter


@pytest.fixture(scope="module")
def runs(sqlite_cfg, devices):
    """The four plans, written live into the SQLite server; {plan: (uid, documents)}."""
    from adscan import plans as ap

    RE, tiled_writer, docs, specwriter = make_RE(sqlite_cfg, devices, scan_id=100)
    uids = {
        "adscan_count": RE(ap.adscan_count(num=3, frames=FRAMES))[0],
        "adscan_scan": RE(ap.adscan_scan("m1", -1, 1, 4, frames=FRAMES))[0],
        "adscan_scan2": RE(ap.adscan_scan2("m1", -1, 1, "m2", 4, 1.5, 3, frames=FRAMES))[0],
        "adscan_grid_scan": RE(
            ap.adscan_grid_scan("m1", -1, 1, 3, "m2", -0.5, 0.5, 2, snake=True, frames=FRAMES)
        )[0],
    }
    assert specwriter.errors == 0
    assert tiled_writer.notes == []
    return {plan: (uid, docs[uid]) for plan, uid in uids.items()}


# ---------------------------------------------------------------------------------------------
# checks


def check_run(cat, uid: str, documents: list[tuple[str, dict]]) -> int:
    """Run ``uid`` in ``cat`` equals its documents and HDF5 file; returns its point count."""
    start = next(d for n, d in documents if n == "start")
    stop = next(d for n, d in documents if n == "stop")
    descriptor = next(d for n, d in documents if n == "descriptor" and d["name"] == "primary")
    events = [d for n, d in documents if n == "event" and d["descriptor"] == descriptor["uid"]]
    resources = {d["uid"]: d for n, d in documents if n == "resource"}
    datums = {d["datum_id"]: d for n, d in documents if n == "datum"}
    points = len(events)

    run = cat[uid]
    assert run.start["uid"] == uid and run.start["scan_id"] == start["scan_id"]
    assert run.stop["exit_status"] == "success" == stop["exit_status"]
    ds = run.primary.read()
    shape = ds[IMAGE].shape
    assert shape[:2] == (points, FRAMES) and len(shape) == 4, shape
    for key in (
        "simdet_stats1_total",
        "simdet_stats1_max_value",
        "simdet_stats1_unique_id",
        *[k for m in start.get("motors", []) for k in (m, f"{m}_user_setpoint")],
    ):
        np.testing.assert_array_equal(ds[key].values, [e["data"][key] for e in events], err_msg=key)

    # the HDF5 file from the run's assets = root + resource_path of the resource document
    (resource,) = resources.values()
    expected_file = Path(resource["root"]) / resource["resource_path"]
    assert reader.image_files(run) == [expected_file]
    (asset,) = reader.assets(run)
    assert asset["dataset"] == DATASET and asset["data_key"] == IMAGE

    # every image, pixel for pixel, in the order of the events' datum
    images = ds[IMAGE].values
    with h5py.File(expected_file, "r", locking=False) as f:
        dset = f[DATASET]
        for p, event in enumerate(events):
            datum = datums[event["data"][IMAGE]]
            n = datum["datum_kwargs"]["point_number"]
            np.testing.assert_array_equal(
                images[p], dset[n * FRAMES : (n + 1) * FRAMES], err_msg=f"run {uid} point {p}"
            )
        # a slice made by the server
        node = run.primary[IMAGE]
        # the same array node in one request (what the README shows)
        by_path = run[f"primary/{IMAGE}"]
        assert by_path.item["links"]["full"] == node.item["links"]["full"]
        # the bulk path: one array, whole or sliced, split in one-point requests over 2 sockets
        np.testing.assert_array_equal(bulk.read_array(by_path), images)
        np.testing.assert_array_equal(bulk.read_array(node, connections=3), images)
        np.testing.assert_array_equal(
            bulk.read_array(node, slice(1, points), max_bytes=images[0].nbytes), images[1:]
        )
        np.testing.assert_array_equal(
            node[points - 1, FRAMES - 1, 10:20, 30:45], dset[points * FRAMES - 1, 10:20, 30:45]
        )
    return points


def check_all(cat, runs) -> None:
    for _plan, (uid, documents) in runs.items():
        check_run(cat, uid, documents)


def test_four_plans_written_live_into_sqlite_tiled(sqlite_cfg, runs):
    cat = reader.open_catalog(sqlite_cfg)
    assert type(cat).__name__ == "CatalogOfBlueskyRuns"
    check_all(cat, runs)
    uids = [uid for uid, _ in runs.values()]
    assert [cat[-k].start["uid"] for k in (4, 3, 2, 1)] == uids
    for uid, documents in runs.values():
        scan_id = documents[0][1]["scan_id"]
        assert cat[scan_id].start["uid"] == uid
        assert cat[uid[:8]].start["uid"] == uid
    assert sqlite_cfg["tiled"]["directory"] in str(server.settings(sqlite_cfg).directory)
    assert (Path(sqlite_cfg["tiled"]["directory"]) / "catalog.db").exists()


def test_bulk_read_of_a_shape_the_server_does_not_have_is_a_clear_error(
    sqlite_cfg, runs, monkeypatch
):
    """read_array never returns a guess: a stale shape (a run grown or cut) is refused."""
    uid, _ = runs["adscan_scan"]
    node = reader.open_catalog(sqlite_cfg)[uid].primary[IMAGE]
    real = tuple(node.shape)
    monkeypatch.setattr(type(node), "shape", property(lambda self: (real[0] + 2, *real[1:])))
    with pytest.raises(bulk.BulkReadError, match=r"simdet_image\[\d+:\d+\] \(500 .*shape"):
        bulk.read_array(node)


def test_search_by_plan_scan_id_and_time(sqlite_cfg, runs):
    cat = reader.open_catalog(sqlite_cfg)
    uid_of = {plan: uid for plan, (uid, _) in runs.items()}
    for plan, uid in uid_of.items():
        found = reader.find_runs(cat, plan=plan)
        assert [run.start["uid"] for run in found.values()] == [uid], plan
    grid_docs = runs["adscan_grid_scan"][1]
    grid_start = grid_docs[0][1]
    assert list(reader.find_runs(cat, scan_id=grid_start["scan_id"])) == [
        uid_of["adscan_grid_scan"]
    ]
    t_count = runs["adscan_count"][1][0][1]["time"]
    assert len(reader.find_runs(cat, since=t_count - 0.001)) == 4
    assert len(reader.find_runs(cat, since=t_count - 0.001, until=t_count + 0.001)) == 1
    assert len(reader.find_runs(cat, plan="adscan_scan", since=grid_start["time"])) == 0


def test_four_plans_replayed_into_postgresql_tiled(pg_cfg, runs):
    w = writer.TiledCatalogWriter(pg_cfg)
    for _uid, documents in runs.values():
        for name, doc in documents:
            w(name, doc)
    assert w.notes == []
    cat = reader.open_catalog(pg_cfg)
    check_all(cat, runs)
    assert len(cat) == 4
    assert "postgresql" in server.status(pg_cfg)[-1].detail


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_restart_loses_nothing(which, request, runs):
    cfg = request.getfixturevalue("sqlite_cfg" if which == "sqlite" else "pg_cfg")
    before = len(reader.open_catalog(cfg))
    stopped = server.stop(cfg)
    assert stopped[0].detail.startswith("stopped")
    assert [i.state for i in server.status(cfg)] == ["down"] * len(stopped)
    with pytest.raises(server.TiledUnavailable, match="Tiled data service does not answer"):
        reader.open_catalog(cfg)
    infos = server.ensure(cfg)
    assert infos[-1].started
    assert infos[-1].name == "tiled" and server.ensure(cfg)[-1].started is False  # idempotent
    cat = reader.open_catalog(cfg)
    assert len(cat) == before
    check_all(cat, runs)


def test_api_key_file_is_private_and_a_wrong_key_is_a_clear_error(sqlite_cfg, devices):
    s = server.settings(sqlite_cfg)
    assert s.api_key_file.stat().st_mode & 0o777 == 0o600
    key = s.api_key_file.read_text().strip()
    assert key not in Path(s.log).read_text()  # not logged ...
    assert all(
        key not in " ".join(p.cmdline())
        for p in __import__("psutil").process_iter()
        if p.pid == server.server_pid(s)
    )  # ... nor on the command line
    with pytest.raises(server.TiledAuthError, match=r"refused the key given \(401"):
        reader.open_catalog(sqlite_cfg, api_key="0" * 64)

    bad = copy.deepcopy(sqlite_cfg)
    bad_key = Path(s.directory).parent / "wrong_key"
    bad_key.write_text("f" * 64 + "\n")
    bad_key.chmod(0o600)
    bad["tiled"]["api_key_file"] = str(bad_key)
    from adscan import plans as ap

    RE, _w, docs, _spec = make_RE(bad, devices, scan_id=300)
    with pytest.raises(server.TiledAuthError, match=f"refused the key in {bad_key}"):
        RE(ap.adscan_count(num=1, frames=1))
    bad_key.chmod(0o644)
    with pytest.raises(server.ServiceError, match="readable by others"):
        server.api_key(server.settings(bad))


def test_a_missing_container_or_node_is_a_clear_key_error(sqlite_cfg):
    """open_catalog fetches the container in one request; a wrong name says what to do."""
    other = copy.deepcopy(sqlite_cfg)
    other["tiled"]["container"] = "nobody-here"
    with pytest.raises(
        KeyError, match="no container 'nobody-here' at http://127.0.0.1:.*adscan up"
    ):
        reader.open_catalog(other)
    s = server.settings(sqlite_cfg)
    with pytest.raises(KeyError, match="no node 'adscan/not-a-run'"):
        server.connect(s, path=(s.container, "not-a-run"))
    assert type(reader.open_catalog(sqlite_cfg)).__name__ == "CatalogOfBlueskyRuns"


def test_tiled_down_at_plan_start_refuses_the_plan(sqlite_cfg, devices, iconfig):
    from adscan import plans as ap

    down = copy.deepcopy(sqlite_cfg)
    down["tiled"]["port"] = free_port()  # nothing listens there
    RE, _w, docs, _spec = make_RE(down, devices, scan_id=400)
    images = Path(iconfig["detector"]["read_path"])
    files_before = set(images.glob("*.h5"))
    m1_before = devices.devices["m1"].position
    url = f"http://127.0.0.1:{down['tiled']['port']}"
    with pytest.raises(
        server.TiledUnavailable, match=f"Tiled data service does not answer at {url}"
    ):
        RE(ap.adscan_scan("m1", 0.5, 0.9, 2, frames=1))
    assert docs == {}  # no run was opened
    assert set(images.glob("*.h5")) == files_before  # nothing staged
    assert devices.devices["m1"].position == pytest.approx(m1_before, abs=1e-6)  # nothing moved


def test_run_readable_while_it_grows(sqlite_cfg, devices):
    from adscan import plans as ap

    RE, _w, docs, _spec = make_RE(sqlite_cfg, devices, scan_id=500, flush_interval=0.5)
    cat = reader.open_catalog(sqlite_cfg)
    seen = {}

    def look(name, doc):
        """At the 3rd point (the RunEngine waits here), read the run until it has 3 points."""
        if name == "event" and doc["seq_num"] == 3 and "primary" not in seen:
            deadline = time.monotonic() + 20  # the writer thread sends at most 1 s behind
            last_error = None
            while True:
                try:  # the server may meet the HDF5 file mid-write: a 500 there is retried
                    run = cat[doc_uid["uid"]]
                    if "primary" in run:
                        ds = run.primary.read()
                        if IMAGE in ds and ds[IMAGE].shape[0] == 3:
                            break
                except httpx.HTTPStatusError as exc:
                    last_error = exc
                assert time.monotonic() < deadline, f"not readable while it grows: {last_error}"
                time.sleep(0.2)
            seen["primary"] = (
                ds[IMAGE].shape,
                ds["simdet_stats1_total"].values.tolist(),
                run.metadata.get("stop"),
            )

    doc_uid = {}
    RE.subscribe(lambda name, doc: doc_uid.update(uid=doc["uid"]), "start")
    RE.subscribe(look)
    (uid,) = RE(ap.adscan_scan("m1", -1, 1, 5, frames=FRAMES))
    shape, totals, stop = seen["primary"]
    assert shape[:2] == (3, FRAMES) and stop is None
    events = [d for n, d in docs[uid] if n == "event" and "simdet_stats1_total" in d["data"]]
    assert totals == [e["data"]["simdet_stats1_total"] for e in events[:3]]
    check_run(reader.open_catalog(sqlite_cfg), uid, docs[uid])


def test_run_complete_when_the_plan_returns_streams_closed_after(sqlite_cfg, devices, monkeypatch):
    """The stop is in Tiled when the plan returns; closing the run's live streams (a request
    per node) is the writer thread's, after the RunEngine went on: here it is held until the
    plan has returned, and the plan returns anyway."""
    from adscan import plans as ap

    RE, tiled_writer, _, _ = make_RE(sqlite_cfg, devices, scan_id=700)
    flushing = type(tiled_writer._tiled_writer())
    gate, events = threading.Event(), []

    class Held(flushing.run_writer_class):
        def _close_stream_tree(self):
            events.append("deferred")
            super()._close_stream_tree()

        def close_streams(self):
            if self.close_pending:
                events.append("held")
                gate.wait(60)
                super().close_streams()
                events.append(f"closed in {threading.current_thread().name}")

    monkeypatch.setattr(flushing, "run_writer_class", Held)
    t0 = time.monotonic()
    (uid,) = RE(ap.adscan_count(num=2, frames=FRAMES))
    assert time.monotonic() - t0 < 45  # did not wait for the held close (60 s)
    run = reader.open_catalog(sqlite_cfg)[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run["primary/simdet_image"].shape[:2] == (2, FRAMES)
    assert "closed in adscan-tiled-writer" not in events
    gate.set()
    assert tiled_writer.drain(60)
    assert events == ["deferred", "held", "closed in adscan-tiled-writer"]
    assert tiled_writer.notes == []  # no fall-back to a backup


def test_tiled_lost_mid_run_goes_to_backup_then_imports(sqlite_cfg, devices):
    """Runs last in the module: it kills the SQLite server (and restarts it)."""
    from spec2nexus.spec import SpecDataFile

    from adscan import plans as ap

    RE, tiled_writer, docs, specwriter = make_RE(sqlite_cfg, devices, scan_id=600, flush_interval=0)
    killed = {}

    def kill_after_two_points(name, doc):
        if name == "event" and doc["seq_num"] == 2 and not killed:
            killed["at"] = server.stop(sqlite_cfg)

    RE.subscribe(kill_after_two_points)
    (uid,) = RE(ap.adscan_scan("m1", -1, 1, 6, frames=FRAMES))
    assert killed
    (note,) = tiled_writer.notes
    backup = server.settings(sqlite_cfg).directory / "backup" / f"{uid}.jsonl"
    assert str(backup) in note and "Tiled lost during run" in note
    assert "adscan catalog import" in note
    saved = list(importer.read_documents(backup))
    assert [n for n, _ in saved] == [n for n, _ in docs[uid]]  # every document of the run
    assert saved[-1][1]["exit_status"] == "success"

    # SPEC scan and HDF5 file complete
    spec_path = Path(sqlite_cfg["spec"]["directory"]) / sqlite_cfg["spec"]["file"]
    sdf = SpecDataFile(str(spec_path))
    scan = sdf.getScan(sdf.getScanNumbers()[-1])
    assert len(scan.data["m1"]) == 6
    assert scan.comments[-1].endswith("exit_status = success")
    resource = next(d for n, d in docs[uid] if n == "resource")
    with h5py.File(Path(resource["root"]) / resource["resource_path"], "r") as f:
        assert f[DATASET].shape[0] == 6 * FRAMES

    # Tiled is back: the partial copy (no stop) is replaced by the backup's documents
    assert server.status(sqlite_cfg)[-1].state == "down"
    server.ensure(sqlite_cfg)
    cat = reader.open_catalog(sqlite_cfg)
    assert uid in cat and cat[uid].metadata.get("stop") is None
    (result,) = importer.import_runs(sqlite_cfg, [backup])
    assert (result.uid, result.status) == (uid, "replaced partial")
    assert check_run(reader.open_catalog(sqlite_cfg), uid, docs[uid]) == 6
    (again,) = importer.import_runs(sqlite_cfg, [backup])
    assert again.status == "skipped (already in Tiled)"


# ---------------------------------------------------------------------------------------------
# the whole service on the Tiled backend: `adscan up` starts Tiled, the worker writes into it


def test_service_demo_verify_plot_and_import_through_tiled(beamline, tmp_path, capsys):
    """`adscan demo` into the embedded Tiled server; `adscan verify`/`plot` read through it."""
    from helpers import private_service

    from adscan import services
    from adscan.data.plots import plot_run
    from adscan.data.verify import verify_run
    from adscan.demo import run_demo

    def use_tiled(raw):
        raw["catalog"]["backend"] = "tiled"

    with private_service(tmp_path / "svc", edit=use_tiled) as cfg:
        rows = {i.name: i for i in services.status(cfg, check_ioc=False)}
        assert rows["tiled"].state == "up" and rows["tiled"].address.startswith("http://127.0.0.1:")
        assert run_demo(cfg) == 0
        out = capsys.readouterr().out
        assert "adscan demo: all plans completed" in out
        assert "images: simdet_image shape (20, 3, 1024, 1024)" in out
        assert out.count("HDF5:   ") == 4
        cat = reader.open_catalog(cfg)
        assert len(cat) == 4 and type(cat).__name__ == "CatalogOfBlueskyRuns"
        for k in (-4, -3, -2, -1):
            report = verify_run(cfg, k)
            assert report.ok, report.table()
        pngs = plot_run(cfg, -1, out=tmp_path / "png")
        assert pngs and all(p.stat().st_size > 1000 for p in pngs)

        # the old embedded catalog's runs import into Tiled (one msgpack run, made here)
        from bluesky import RunEngine
        from bluesky import plans as bp
        from ophyd import Signal

        from adscan.callbacks.catalog_writer import make_catalog_writer

        old = copy.deepcopy(cfg)
        old["catalog"]["backend"] = "msgpack"
        RE = RunEngine({})
        RE.subscribe(make_catalog_writer(old))
        (uid,) = RE(bp.count([Signal(name="det", value=1.5)], num=3))
        results = importer.import_runs(cfg)
        assert [(r.uid, r.status) for r in results] == [(uid, "imported")]
        assert reader.open_catalog(cfg)[uid].primary.read()["det"].shape == (3,)
        down = {i.name: i for i in services.down(cfg)}
    assert down["tiled"].detail.startswith("stopped")
    assert server.status(cfg)[-1].state == "down"


def test_run_left_open_is_closed_in_tiled_with_abort_status(sqlite_cfg):
    """A worker killed mid-run leaves a Tiled run without a stop document; the next environment
    open (``close_left_open``) writes one, ``exit_status: abort``, read back by the client."""
    import json
    import subprocess

    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    from adscan.callbacks import runclose

    cfg = copy.deepcopy(sqlite_cfg)
    cfg["catalog"]["backend"] = "tiled"
    container = server.connect(server.settings(cfg))[server.settings(cfg).container]
    records = runclose.open_runs_dir(cfg)
    records.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    uids = {}
    for who, pid, created in (
        ("lost", dead.pid, 1.0),  # its writer is gone
        ("alive", os.getpid(), runclose._process_tag(os.getpid())),  # still writing
    ):
        bundle = compose_run(metadata={"scan_id": 900, "plan_name": f"runclose_{who}"})
        tw = TiledWriter(container)
        tw("start", bundle.start_doc)
        desc = bundle.compose_descriptor(
            name="primary", data_keys={"x": {"source": "x", "dtype": "number", "shape": []}}
        )
        tw("descriptor", desc.descriptor_doc)  # no stop document: the worker was killed
        uid = uids[who] = bundle.start_doc["uid"]
        record = {"uid": uid, "scan_id": 900, "time": 0.0, "pid": pid, "created": created}
        (records / f"{uid}.json").write_text(json.dumps(record))

    cat = reader.open_catalog(cfg)
    assert not cat[uids["lost"]].metadata.get("stop")
    done = runclose.close_left_open(cfg)
    assert [(d["uid"], d["catalog"]) for d in done] == [(uids["lost"], True)]
    stop = reader.open_catalog(cfg)[uids["lost"]].metadata["stop"]
    assert stop["exit_status"] == "abort" and stop["run_start"] == uids["lost"]
    assert uids["lost"] in stop["reason"] and "scan_id 900" in stop["reason"]
    assert not (records / f"{uids['lost']}.json").exists()
    # the run whose writer is alive is left alone, and a second pass closes nothing again
    assert not reader.open_catalog(cfg)[uids["alive"]].metadata.get("stop")
    assert (records / f"{uids['alive']}.json").exists()
    assert runclose.close_left_open(cfg) == []
    (records / f"{uids['alive']}.json").unlink()


def write_synthetic_files(directory: Path, frames_per_file: list[int], fpp: int, start_id: int):
    """HDF5 files as the AD HDF5 plugin writes them (LZ4 frames, NDArrayUniqueId)."""
    from adscan.data.verify import UNIQUE_ID_DATASET

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths, stats, uid = [], [], start_id
    for i, n in enumerate(frames_per_file):
        path = directory / f"multi_{i:06d}.h5"
        frames = rng.integers(0, 200, size=(n, 16, 24), dtype=np.uint8)
        ids = np.arange(uid, uid + n, dtype=np.int32)
        uid += n
        with h5py.File(path, "w") as f:
            f.create_dataset(DATASET, data=frames, chunks=(1, 16, 24), **hdf5plugin.LZ4())
            f.create_dataset(UNIQUE_ID_DATASET, data=ids)
        paths.append(path)
        for p in range(n // fpp):  # Stats1 of each point's last frame
            last = frames[p * fpp + fpp - 1]
            stats.append(
                (float(last.sum(dtype=np.uint64)), float(last.max()), float(ids[p * fpp + fpp - 1]))
            )
    return paths, stats


def test_verify_multi_file_run_through_tiled(sqlite_cfg):
    """A run whose frames span several HDF5 files (one resource each, as after a restage):
    written into Tiled, read back as one (points, frames, rows, cols) array, and ``verify``
    resolves every point to its own file and frame."""
    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    from adscan.data.runs import read_run
    from adscan.data.verify import verify_data

    fpp, per_file = 2, [6, 4]  # 3 points in the first file, 2 in the second
    directory = Path(sqlite_cfg["tiled"]["readable"][0])
    paths, stats = write_synthetic_files(directory, per_file, fpp, start_id=41)
    bundle = compose_run(
        metadata={"scan_id": 901, "plan_name": "count", "frames_per_point": fpp, "motors": []}
    )
    docs = [("start", bundle.start_doc)]
    keys = {"source": "SIM", "dtype": "number", "shape": []}
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            IMAGE: {
                "source": "SIM",
                "dtype": "array",
                "shape": [fpp, 16, 24],
                "external": "FILESTORE:",
                "dtype_numpy": "|u1",
            },
            "simdet_stats1_total": keys,
            "simdet_stats1_max_value": keys,
            "simdet_stats1_unique_id": keys,
        },
    )
    docs.append(("descriptor", desc.descriptor_doc))
    point = 0
    for path, n in zip(paths, per_file, strict=True):
        res = bundle.compose_resource(
            spec="AD_HDF5",
            root="/",
            resource_path=str(path).lstrip("/"),
            resource_kwargs={"frame_per_point": fpp},
        )
        docs.append(("resource", res.resource_doc))
        for local in range(n // fpp):
            datum = res.compose_datum(datum_kwargs={"point_number": local})
            docs.append(("datum", datum))
            total, vmax, uid = stats[point]
            data = {
                IMAGE: datum["datum_id"],
                "simdet_stats1_total": total,
                "simdet_stats1_max_value": vmax,
                "simdet_stats1_unique_id": uid,
            }
            docs.append(
                (
                    "event",
                    desc.compose_event(
                        data=data, timestamps={k: time.time() for k in data}, filled={IMAGE: False}
                    ),
                )
            )
            point += 1
    docs.append(("stop", bundle.compose_stop()))
    container = server.connect(server.settings(sqlite_cfg))[server.settings(sqlite_cfg).container]
    tw = TiledWriter(container)
    for name, doc in docs:
        tw(name, doc)

    run = reader.open_catalog(sqlite_cfg)[bundle.start_doc["uid"]]
    assert reader.image_files(run) == paths
    images = run.primary[IMAGE].read()
    assert images.shape == (5, fpp, 16, 24)
    with h5py.File(paths[0], "r") as a, h5py.File(paths[1], "r") as b:
        alone = np.concatenate([a[DATASET][:], b[DATASET][:]])
    np.testing.assert_array_equal(images.reshape(alone.shape), alone)

    data = read_run(run)
    assert [data.frame_location(IMAGE, p)[:2] for p in range(5)] == [
        (paths[0], 0),
        (paths[0], 2),
        (paths[0], 4),
        (paths[1], 0),
        (paths[1], 2),
    ]
    report = verify_data(sqlite_cfg, data)
    for check in (
        "run complete",
        "frames per point",
        "datum -> HDF5 file",
        "unique ids consecutive",
        "unique id = stats",
        "frame sum = total",
        "frame max = max_value",
    ):
        assert report.check(check).ok, report.table()
    assert "5 points -> 2 file(s)" in report.check("datum -> HDF5 file").detail

    # a frame changed in the second file: verify names the point
    with h5py.File(paths[1], "r+") as f:
        f[DATASET][3] = f[DATASET][3] // 2 + 1
    report = verify_data(sqlite_cfg, read_run(reader.open_catalog(sqlite_cfg)[data.uid]))
    assert not report.check("frame sum = total").ok
    assert "first point 4" in report.check("frame sum = total").detail


def test_dual_write_tiled_and_mongomock_both_read_back_as_4d(sqlite_cfg, devices):
    """``catalog.backend: tiled`` plus ``catalog.mongo_uri``: the profile's writers
    (``startup.make_writers``) put one run into Tiled AND into MongoDB (suitcase-mongo, here
    on mongomock: no mongod runs here); both readers give the same (points, frames, rows, cols)
    pixels, equal to the HDF5 file."""
    import uuid

    mongomock = pytest.importorskip("mongomock")
    from bluesky import RunEngine

    from adscan import plans as ap
    from adscan.core import startup
    from adscan.data.catalog import open_catalog as open_databroker

    uri = f"mongodb://localhost:27017/adscan_dual_{uuid.uuid4().hex[:8]}"
    cfg = copy.deepcopy(sqlite_cfg)
    cfg["catalog"].update(backend="tiled", mongo_uri=uri)
    points = 2
    with mongomock.patch(servers=(("localhost", 27017),)):
        RE = RunEngine({"scan_id": 950}, context_managers=[])
        writers = startup.make_writers(cfg, RE, console=False)
        startup.init_streams(cfg, RE, devices)
        (uid,) = RE(ap.adscan_count(num=points, frames=FRAMES))
        assert writers.catalog.notes == [] and writers.spec.errors == 0

        from_tiled = reader.open_catalog(cfg)[uid]
        images_tiled = from_tiled.primary.read()[IMAGE].values
        mongo_read_cfg = copy.deepcopy(cfg)
        mongo_read_cfg["catalog"]["backend"] = "msgpack"  # read side: MongoDB by URI
        from_mongo = open_databroker(mongo_read_cfg)[uid]
        assert from_mongo.metadata["stop"]["exit_status"] == "success"
        images_mongo = from_mongo.primary.read()[IMAGE].values
    assert from_tiled.metadata["stop"]["exit_status"] == "success"
    assert images_tiled.shape == images_mongo.shape == (points, FRAMES, *images_tiled.shape[2:])
    np.testing.assert_array_equal(images_tiled, images_mongo)
    (path,) = reader.image_files(from_tiled)
    with h5py.File(path, "r", locking=False) as f:
        alone = f[DATASET][: points * FRAMES]
    np.testing.assert_array_equal(images_tiled.reshape(alone.shape), alone)
