"""The profile's MongoDB path against the simulated beamline IOC.

What ``adscan.instrument`` builds (RunEngine, catalog writer from ``catalog.mongo_uri``, SPEC
writer, baseline and motor-start stream, devices from ``devices.yml``) is rebuilt here with the
same functions, ``adscan_scan`` runs against the session's simulated IOC, and the run is read
back through ``open_catalog(cfg)[uid].primary.read()``, images included.

``mongomock.patch`` stands in for a server (the unmodified ``mongodb://`` URI code path runs);
with ``ADSCAN_TEST_MONGO_URI=mongodb://host:port/anything`` the same test also runs against that
server, in a throw-away database.
"""

from __future__ import annotations

import copy
import os
import urllib.parse
import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

POINTS, FRAMES = 3, 2
ROWS, COLS = 1024, 1024


@pytest.fixture(scope="module")
def found_devices(iconfig, beamline):
    """The profile's devices (m1, m2, simdet) connected to the session's simulated IOC."""
    from adscan.core.config import load_devices
    from adscan.devices import REGISTRY, create_devices
    from adscan.plans import configure_plans

    configure_plans(iconfig, load_devices())  # as the profile does: plans wait for reconnects
    found = create_devices(iconfig, load_devices())
    assert not found.missing, found.missing
    yield found
    for name, dev in found.devices.items():
        if REGISTRY.get(name) is dev:
            del REGISTRY[name]
        dev.destroy()


def make_profile_RE(cfg: dict, found):
    """RE with the writers and preprocessors of adscan.instrument (same functions)."""
    from bluesky import RunEngine

    from adscan.core import startup

    RE = RunEngine({}, context_managers=[])
    RE.md["instrument_name"] = cfg["instrument"]["name"]
    writers = startup.make_writers(cfg, RE, console=False)
    startup.init_plans(cfg)
    startup.init_streams(cfg, RE, found)
    return RE, writers.catalog, writers.spec


def mongo_cfg(iconfig: dict, tmp_path, uri: str) -> dict:
    cfg = copy.deepcopy(iconfig)
    cfg["catalog"]["mongo_uri"] = uri
    cfg["spec"].update(directory=str(tmp_path / "spec"), file="mongo.dat")
    return cfg


def run_and_read_back(cfg: dict, found) -> None:
    from adscan.core.catalog_settings import catalog_kind
    from adscan.data.catalog import image_files, open_catalog
    from adscan.plans import adscan_scan

    assert catalog_kind(cfg) == "mongo"
    RE, writer, specwriter = make_profile_RE(cfg, found)
    assert writer.kind == "mongo"
    m1, simdet = found.devices["m1"], found.devices["simdet"]
    (uid,) = RE(adscan_scan(m1, -0.5, 0.5, POINTS, frames=FRAMES, detectors=[simdet]))
    writer.close()
    assert writer.stats["documents"] > POINTS

    cat = open_catalog(cfg)
    run = cat[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["start"]["plan_name"] == "scan"
    ds = run.primary.read()
    assert ds["simdet_image"].shape == (POINTS, FRAMES, ROWS, COLS)
    assert ds["simdet_image"].values.sum() > 0
    np.testing.assert_allclose(ds["m1_user_setpoint"].values, [-0.5, 0.0, 0.5])
    np.testing.assert_allclose(ds["m1"].values, [-0.5, 0.0, 0.5], atol=1e-3)
    assert ds["simdet_stats1_total"].shape == (POINTS,)
    assert {"primary", "baseline", "label_start_motor"} <= set(run)
    files = image_files(run)
    assert files and all(p.exists() for p in files)
    assert str(files[0]).startswith(cfg["detector"]["read_path"])
    assert specwriter.errors == 0


def test_mongo_path_with_mongomock_scan_round_trip(iconfig, found_devices, tmp_path):
    import mongomock

    uri = f"mongodb://localhost:27017/adscan_profile_{uuid.uuid4().hex[:8]}"
    with mongomock.patch(servers=(("localhost", 27017),)):
        run_and_read_back(mongo_cfg(iconfig, tmp_path, uri), found_devices)


def test_mongo_path_with_mongomock_documents_in_named_database(iconfig, found_devices, tmp_path):
    """The documents land in the database named by the URI, in suitcase-mongo's collections."""
    import mongomock
    import pymongo

    from adscan.plans import adscan_count

    db_name = f"adscan_profile_{uuid.uuid4().hex[:8]}"
    uri = f"mongodb://localhost:27017/{db_name}"
    with mongomock.patch(servers=(("localhost", 27017),)):
        cfg = mongo_cfg(iconfig, tmp_path, uri)
        RE, writer, _ = make_profile_RE(cfg, found_devices)
        (uid,) = RE(adscan_count([found_devices.devices["simdet"]], num=2, frames=1))
        writer.close()
        db = pymongo.MongoClient(uri)[db_name]
        assert db["run_start"].count_documents({"uid": uid}) == 1
        assert db["run_stop"].count_documents({"run_start": uid}) == 1
        assert db["resource"].count_documents({"run_start": uid, "spec": "AD_HDF5"}) >= 1
        assert db["datum"].count_documents({}) >= 2
        assert db["event"].count_documents({}) >= 2


@pytest.fixture
def real_mongo_uri():
    uri = os.environ.get("ADSCAN_TEST_MONGO_URI")
    if not uri:
        pytest.skip("ADSCAN_TEST_MONGO_URI not set (the mongomock variant runs instead)")
    parts = urllib.parse.urlsplit(uri)
    db_name = f"adscan_test_{uuid.uuid4().hex[:8]}"
    yield urllib.parse.urlunsplit(parts._replace(path="/" + db_name))
    import pymongo

    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(db_name)


def test_mongo_path_with_real_server_scan_round_trip(
    iconfig, found_devices, tmp_path, real_mongo_uri
):
    run_and_read_back(mongo_cfg(iconfig, tmp_path, real_mongo_uri), found_devices)
