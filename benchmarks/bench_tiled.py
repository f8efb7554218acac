"""Tiled data service: writer cost per point, read-back through Tiled, the server's memory.

A private simulated IOC, an in-process RunEngine with the profile's devices, and a private
embedded Tiled server (``adscan.tiled.server.ensure``, SQLite + DuckDB).  One run of
``adscan_count(num=N, frames=3)`` (AcquireTime 0) is written by BOTH writers subscribed to the
same RunEngine: the Tiled writer (``adscan.tiled.writer``) and the msgpack catalog writer
(``adscan.callbacks.catalog_writer``); their time on the RunEngine thread per point is
compared.  Then, over HTTP through the Tiled client, ``repeat`` interleaved times (medians
reported):

* the scalar table (``run.primary.read(variables=[stats, ...])``) plus one image slice,
* the full 4-D ``simdet_image`` array, against h5py reading the same HDF5 file alone,

and the Tiled server's RSS (with its children) idle after start, after writing, after reads.
Usage: ``python benchmarks/bench_tiled.py [--quick] [--points N] [--repeat R]``
(quick: 50 points; default 500).  Writes ``benchmarks/results/tiled.json``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_ca_port, report, start_ioc, use_port  # noqa: E402

SCALARS = ["simdet_stats1_total", "simdet_stats1_max_value", "simdet_stats1_unique_id"]


def rss_mib(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 points (else 500)")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved read repetitions")
    args = ap.parse_args(argv)
    points = args.points or (50 if args.quick else 500)
    frames = 3

    root = Path(tempfile.mkdtemp(prefix="adscan-bench-tiled-"))
    port = free_ca_port()
    use_port(port)
    from adscan.core.config import load_iconfig, write_private_iconfig

    tag = f"bt{port % 10000}"
    cfg = load_iconfig(
        write_private_iconfig(root / "config", tag=tag, ca_port=port, data_dir=root / "data")
    )
    from adscan.ports import free_port

    cfg["tiled"] = {"port": free_port(), "directory": str(root / "data" / "tiled")}
    ioc, _ = start_ioc(port, Path(cfg["instrument"]["data_dir"]), f"{tag}gp:", f"{tag}kad:")
    from adscan.tiled import reader, server, writer

    try:
        t0 = time.perf_counter()
        (info,) = server.ensure(cfg)
        t_start = time.perf_counter() - t0
        rss_idle = rss_mib(info.pid)

        import h5py
        import hdf5plugin  # noqa: F401
        import numpy as np
        from bluesky import RunEngine

        from adscan import plans as aplans
        from adscan.callbacks.catalog_writer import make_catalog_writer
        from adscan.core import startup

        startup.init_plans(cfg)
        found = startup.create_devices(cfg)
        assert not found.missing, found.missing
        cam = found.devices["simdet"].cam
        cam.acquire_time.put(0.0, wait=True)
        cam.acquire_period.put(0.0, wait=True)
        RE = RunEngine({})
        msgpack_cfg = copy.deepcopy(cfg)
        msgpack_writer = make_catalog_writer(msgpack_cfg)
        tiled_writer = writer.install(RE, cfg)
        RE.subscribe(msgpack_writer)
        t0 = time.perf_counter()
        (uid,) = RE(aplans.adscan_count(num=points, frames=frames))
        t_run = time.perf_counter() - t0
        rss_written = rss_mib(info.pid)
        per_point_tiled = 1000 * tiled_writer.stats["seconds"] / points
        per_point_msgpack = 1000 * msgpack_writer.stats["seconds"] / points

        cat = reader.open_catalog(cfg)
        (path,) = reader.image_files(cat[uid])
        t_scalar, t_full, t_h5 = [], [], []
        same = True
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run = reader.open_catalog(cfg)[uid]
            table = run.primary.read(variables=SCALARS)
            frame = run.primary["simdet_image"][points // 2, 1]
            t_scalar.append(time.perf_counter() - t0)
            assert table["simdet_stats1_total"].shape == (points,) and frame.ndim == 2

            t0 = time.perf_counter()
            full = reader.open_catalog(cfg)[uid].primary["simdet_image"].read()
            t_full.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            with h5py.File(path, "r", locking=False) as f:
                alone = f["/entry/data/data"][: points * frames]
            t_h5.append(time.perf_counter() - t0)
            same = same and np.array_equal(full.reshape(alone.shape), alone)
            mb = alone.nbytes / 1e6
            del full, alone
        rss_read = rss_mib(info.pid)
    finally:
        server.stop(cfg)
        ioc.terminate()
        ioc.wait(15)
    full_s, h5_s = statistics.median(t_full), statistics.median(t_h5)
    report(
        "tiled",
        [
            ("run", f"adscan_count {points} points x {frames} frames, {mb:.0f} MB of images", ""),
            ("Tiled server start (spawn to /healthz + container)", t_start, "s"),
            ("run taken in (both writers subscribed)", t_run, "s"),
            ("writer cost per point: Tiled (TiledWriter, 1 s flush)", per_point_tiled, "ms"),
            ("writer cost per point: msgpack (suitcase-msgpack)", per_point_msgpack, "ms"),
            (
                f"scalar table + one image slice via Tiled (median of {args.repeat})",
                statistics.median(t_scalar),
                "s",
            ),
            (f"full 4-D simdet_image via Tiled (median of {args.repeat})", full_s, "s"),
            (f"the same frames with h5py alone (median of {args.repeat})", h5_s, "s"),
            ("  Tiled speed / h5py speed", h5_s / full_s, "ratio"),
            ("Tiled server RSS idle after start", rss_idle, "MiB"),
            ("Tiled server RSS after the run was written", rss_written, "MiB"),
            ("Tiled server RSS after the reads", rss_read, "MiB"),
            ("Tiled returns the HDF5 file's pixels", str(same), ""),
        ],
        {"points": points, "frames": frames, "repeat": args.repeat},
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
