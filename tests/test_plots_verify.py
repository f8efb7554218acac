"""``adscan.data.plots`` and ``adscan.data.verify`` on real runs.

The runs are made here, in-process, against the session's simulated beamline IOC: a RunEngine
built as ``adscan.instrument`` builds it (catalog writer, SPEC writer, devices, adscan plans),
without importing ``adscan.instrument``.  ``verify`` is then run on a good run and on damaged
copies (one HDF5 frame changed, one SPEC row deleted) of the catalog, HDF5 and SPEC files.
"""

from __future__ import annotations

import copy
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.timeout(600)  # module set-up (private service, 4 runs) can take > 3 min

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FRAMES = 2


@pytest.fixture(scope="module")
def made_runs(iconfig, beamline):
    """Four small runs: count (3 x 2 frames), scan (5), scan2 (5), grid (3 x 3, snake)."""
    from bluesky import RunEngine

    from adscan import plans as ap
    from adscan.core import startup

    RE = RunEngine({})
    specwriter = startup.make_writers(iconfig, RE, console=False).spec
    startup.init_plans(iconfig)
    found = startup.create_devices(iconfig)
    assert not found.missing, found.missing
    det = found.devices["simdet"]
    det.cam.acquire_time.put(0.02)  # 20 ms frames
    det.cam.acquire_period.put(0.02)
    startup.init_streams(iconfig, RE, found)
    uids = {
        "count": RE(ap.adscan_count(num=3, frames=FRAMES))[0],
        "scan": RE(ap.adscan_scan("m1", -1, 1, 5, frames=FRAMES))[0],
        "scan2": RE(ap.adscan_scan2("m1", -1, 1, "m2", 4, 1.5, 5, frames=FRAMES))[0],
        "grid": RE(
            ap.adscan_grid_scan("m1", -1, 1, 3, "m2", -0.5, 0.5, 3, snake=True, frames=FRAMES)
        )[0],
    }
    assert specwriter.errors == 0
    return uids


# ---------------------------------------------------------------------------------------------
# PNG helpers


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()[:24]
    assert raw[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    assert raw[12:16] == b"IHDR", f"{path}: first chunk is not IHDR"
    return struct.unpack(">II", raw[16:24])


def assert_not_blank(path: Path) -> None:
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)
    assert pixels.std() > 0, f"{path} is blank"
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 10, f"{path}: only {len(colours)} colours"


# ---------------------------------------------------------------------------------------------
# plots


def test_run_kind():
    from adscan.data.runs import run_kind

    assert run_kind({"adscan_plan": "adscan_count", "plan_name": "count"}) == "count"
    assert run_kind({"plan_name": "scan", "motors": ["m1"]}) == "scan"
    assert run_kind({"plan_name": "scan", "motors": ["m1", "m2"]}) == "scan2"
    assert run_kind({"adscan_plan": "adscan_scan2", "motors": ["m1", "m2"]}) == "scan2"
    assert run_kind({"plan_name": "grid_scan", "motors": ["m1", "m2"]}) == "grid"


@pytest.mark.parametrize(
    "name, kinds",
    [
        ("count", ["frame", "stats"]),
        ("scan", ["frame", "stats"]),
        ("scan2", ["frame", "motors"]),
        ("grid", ["frame", "motors", "map"]),
    ],
)
def test_plots_by_plan(made_runs, iconfig, tmp_path, name, kinds):
    from adscan.data.plots import DPI, FIGSIZE, plot_run

    paths = plot_run(iconfig, made_runs[name], out=tmp_path)
    assert [p.stem.rsplit("_", 1)[1] for p in paths] == kinds
    for p in paths:
        assert p.exists() and p.parent == tmp_path
        assert png_size(p) == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
        assert_not_blank(p)


def test_plot_size_as_asked(made_runs, iconfig, tmp_path):
    from adscan.data.plots import plot_run

    paths = plot_run(iconfig, made_runs["grid"], out=tmp_path, figsize=(5, 4), dpi=60)
    assert len(paths) == 3
    for p in paths:
        assert png_size(p) == (300, 240)
        assert_not_blank(p)


def test_first_frame_and_grid_map_values(made_runs, iconfig):
    from adscan.data.plots import grid_map
    from adscan.data.runs import open_run, read_frame, read_run

    run = open_run(iconfig, made_runs["grid"])
    data = read_run(run)
    assert data.kind == "grid" and data.points == 9
    frame = read_frame(data, 0, 0)
    assert frame.shape == (1024, 1024) and frame.std() > 0
    last = read_frame(data, 4, FRAMES - 1)
    assert int(last.sum()) == int(data.columns["simdet_stats1_total"][4])
    y, x, values = grid_map(data)
    np.testing.assert_allclose(y, [-1, 0, 1])
    np.testing.assert_allclose(x, [-0.5, 0, 0.5])
    total = data.columns["simdet_stats1_total"]
    # snake: the middle row was visited right to left (points 3, 4, 5 at m2 = 0.5, 0, -0.5)
    assert values[1, 0] == total[5] and values[1, 2] == total[3]
    assert values[2, 0] == total[6]


def test_main_plot_cli(made_runs, tmp_path, capsys):
    from adscan.data.plots import main_plot

    assert main_plot(["-1", "--out", str(tmp_path)]) == 0  # the grid scan is the newest
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 and all(Path(p).exists() for p in printed)
    assert main_plot(["no-such-run", "--out", str(tmp_path)]) == 2


# ---------------------------------------------------------------------------------------------
# verify


@pytest.mark.parametrize("name", ["count", "scan", "scan2", "grid"])
def test_verify_passes(made_runs, iconfig, name):
    from adscan.data.verify import verify_run

    report = verify_run(iconfig, made_runs[name])
    assert report.ok, report.table()
    assert len(report.checks) == 10
    assert report.points == {"grid": 9, "count": 3}.get(name, 5)


def test_main_verify_cli_passes(made_runs, capsys):
    from adscan.data.verify import main_verify

    assert main_verify([made_runs["scan"]]) == 0
    out = capsys.readouterr().out
    assert "verify: PASS" in out and "FAIL" not in out


def damaged_copy(cfg: dict, uid: str, tmp: Path) -> tuple[dict, Path, Path]:
    """Copy a run's catalog entry, HDF5 file and the SPEC file below ``tmp``.

    Returns (cfg of the copies, HDF5 copy, SPEC copy); the copied resource points at the
    copied HDF5 file.
    """
    from suitcase.msgpack import export

    from adscan.callbacks.specfile import spec_file_path
    from adscan.data.catalog import image_files, open_catalog

    run = open_catalog(cfg)[uid]
    (h5,) = image_files(run)
    h5_copy = tmp / "images" / h5.name
    h5_copy.parent.mkdir(parents=True)
    shutil.copy(h5, h5_copy)

    def documents():
        for name, doc in run.documents(fill="no"):
            doc = dict(doc)
            if name == "resource":
                doc["root"] = "/"
                doc["resource_path"] = str(h5_copy.relative_to("/"))
            yield name, doc

    export(documents(), str(tmp / "catalog"))
    spec_copy = tmp / "spec" / "adscan.dat"
    spec_copy.parent.mkdir(parents=True)
    shutil.copy(spec_file_path(cfg), spec_copy)
    new = copy.deepcopy(cfg)
    new.pop("_path", None)
    new["catalog"]["directory"] = str(tmp / "catalog")
    new["spec"]["directory"] = str(spec_copy.parent)
    return new, h5_copy, spec_copy


def write_cfg(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_verify_copy_passes_then_fails_on_changed_frame(made_runs, iconfig, tmp_path, capsys):
    import h5py
    import hdf5plugin  # noqa: F401

    from adscan.data.verify import main_verify, verify_run

    uid = made_runs["scan"]
    cfg, h5_copy, _ = damaged_copy(iconfig, uid, tmp_path)
    report = verify_run(cfg, uid)
    assert report.ok, report.table()
    assert str(h5_copy) in report.check("datum -> HDF5 file").detail  # really the copy

    with h5py.File(h5_copy, "r+") as f:  # last frame of point 2: one pixel + 1
        dset = f["/entry/data/data"]
        k = 2 * FRAMES + FRAMES - 1
        frame = dset[k]
        frame[0, 0] += 1
        dset[k] = frame
    report = verify_run(cfg, uid)
    assert not report.ok
    assert report.failed == ["frame sum = total"], report.table()
    assert "first point 2" in report.check("frame sum = total").detail

    assert main_verify([uid, "--iconfig", str(write_cfg(cfg, tmp_path / "iconfig.yml"))]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^frame sum = total\s+FAIL\s+1 of 5 points differ", out, re.M), out
    assert "verify: FAIL (1 of 10 checks: frame sum = total)" in out


def test_verify_fails_on_missing_spec_row(made_runs, iconfig, tmp_path, capsys):
    from adscan.data.verify import main_verify, verify_run

    uid = made_runs["grid"]
    cfg, _, spec_copy = damaged_copy(iconfig, uid, tmp_path)
    lines = spec_copy.read_text().splitlines(keepends=True)
    at = max(i for i, line in enumerate(lines) if f"uid = {uid}" in line)
    row = next(
        i for i in range(at, len(lines)) if lines[i].strip() and not lines[i].startswith("#")
    )
    del lines[row + 3]  # the 4th data row of the scan
    spec_copy.write_text("".join(lines))

    report = verify_run(cfg, uid)
    assert "SPEC points" in report.failed and "SPEC columns" in report.failed, report.table()
    assert report.check("SPEC points").detail.startswith("8 data rows")
    assert all(report.check(n).ok for n in ("frame sum = total", "unique id = stats"))
    assert main_verify([uid, "--iconfig", str(write_cfg(cfg, tmp_path / "iconfig.yml"))]) == 1
    assert re.search(r"^SPEC points\s+FAIL\s+8 data rows", capsys.readouterr().out, re.M)


def test_verify_fails_on_missing_hdf5_file(made_runs, iconfig, tmp_path):
    from adscan.data.verify import verify_run

    uid = made_runs["count"]
    cfg, h5_copy, _ = damaged_copy(iconfig, uid, tmp_path)
    h5_copy.unlink()
    report = verify_run(cfg, uid)
    assert "datum -> HDF5 file" in report.failed
    assert "does not exist" in report.check("datum -> HDF5 file").detail
