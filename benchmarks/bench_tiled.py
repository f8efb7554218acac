"""Tiled data service: writer cost per point, read-back through Tiled, the server's memory.

A private simulated IOC, an in-process RunEngine with the profile's devices, and a private
embedded Tiled server (``adscan.tiled.server.ensure``, SQLite + DuckDB).  One run of
``adscan_count(num=N, frames=3)`` (AcquireTime 0) is written by BOTH writers subscribed to the
same RunEngine: the Tiled writer (``adscan.tiled.writer``) and the msgpack catalog writer
(``adscan.callbacks.catalog_writer``); their time on the RunEngine thread per point is
compared.  Then, over HTTP through the Tiled client, ``repeat`` interleaved times (medians
reported):

* the scalar table (``run.primary.read(variables=[stats, ...])``) plus one image slice,
* the full 4-D ``simdet_image`` array, through the client's ``read()`` and through
  :func:`adscan.tiled.bulk.read_array` (1 and 2 connections), against h5py reading the same
  HDF5 file alone,

and the Tiled server's RSS (with its children) idle after start, after writing, after reads.
Usage: ``python benchmarks/bench_tiled.py [--quick] [--points N] [--repeat R]``
(quick: 50 points; default 500).  Writes ``benchmarks/results/tiled.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_ca_port, report, start_ioc, use_port  # noqa: E402

IMAGE = "primary/simdet_image"  # one request; run.primary["simdet_image"] takes four
SCALARS = ["simdet_stats1_total", "simdet_stats1_max_value", "simdet_stats1_unique_id"]


def rss_mib(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def timed_request(node, stop: int) -> dict[str, float]:
    """One ``/array/full`` request for leading indices ``0:stop``, as the client makes it:
    wall time, the server's own ``Server-Timing`` phases (read, ETag hash, whole app), the
    body's transfer through the client's httpx after the headers."""
    url = node.item["links"]["full"]
    t0 = time.perf_counter()
    with node.context.http_client.stream(
        "GET", url, headers={"Accept": "application/octet-stream"}, params={"slice": f"0:{stop}"}
    ) as r:
        t1 = time.perf_counter()
        body = b"".join(r.iter_raw())
        t2 = time.perf_counter()
    if r.status_code != 200:  # e.g. beyond the server's response size limit: not a figure
        raise RuntimeError(f"probe request 0:{stop} refused: {r.status_code} {body[:300]!r}")
    phases = dict(
        (part.split(";dur=")[0].strip(), float(part.split(";dur=")[1]) / 1000)
        for part in r.headers.get("server-timing", "").split(",")
        if ";dur=" in part
    )
    return {**phases, "wall": t2 - t0, "body": t2 - t1, "mb": len(body) / 1e6}


def probe_points(node, points: int) -> int:
    """Points of the one-request probe: half the run, or what one response may carry."""
    import math

    import numpy as np

    per_point = math.prod(node.shape[1:]) * np.dtype(node.dtype).itemsize
    limit = getattr(type(node), "RESPONSE_BYTESIZE_LIMIT", 100_000_000)
    return max(1, min(points // 2, limit // per_point))


def start_stock(cfg: dict):
    """tiled's own ``tiled serve catalog`` (stock HDF5 adapter) on the same catalog, for the
    A/B; returns its process and a configuration that reads through it."""
    import subprocess

    from adscan.ports import free_port
    from adscan.services.processes import wait_until
    from adscan.tiled import server

    s = server.settings(cfg)
    stock_cfg = copy.deepcopy(cfg)
    stock_cfg["tiled"]["port"] = free_port()
    args = server._tiled_args(s)
    args[args.index("--port") + 1] = str(stock_cfg["tiled"]["port"])
    env = {**server._server_env(s), "ADSCAN_BENCH_KEY": server.api_key(s)}
    code = (
        "import os, sys, hdf5plugin; from tiled.commandline.main import cli_app; cli_app(["
        "'serve', 'catalog', *sys.argv[1:], '--api-key', os.environ['ADSCAN_BENCH_KEY']])"
    )
    log = open(s.directory / "stock.log", "wb")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=log, stderr=log, env=env)
    url = server.settings(stock_cfg).url
    assert wait_until(lambda: server.healthy(url), 120, period=0.5), "stock Tiled did not start"
    return proc, stock_cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 points (else 500)")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument(
        "--no-stock", action="store_true", help="skip the A/B against tiled's own HDF5 adapter"
    )
    ap.add_argument("--repeat", type=int, default=3, help="interleaved read repetitions")
    args = ap.parse_args(argv)
    points = args.points or (50 if args.quick else 500)
    frames = 3

    load_start = os.getloadavg()[0]
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
    from adscan.tiled import bulk, reader, server, writer

    stock = None
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
        tiled_waits = tiled_writer.stats["start_seconds"], tiled_writer.stats["stop_seconds"]
        per_point_events = 1000 * (tiled_writer.stats["seconds"] - sum(tiled_waits)) / points

        cat = reader.open_catalog(cfg)
        (path,) = reader.image_files(cat[uid])
        if not args.no_stock:
            stock, stock_cfg = start_stock(cfg)
        t_scalar, t_full, t_h5, t_req, t_stock = [], [], [], [], []
        t_bulk, t_bulk1, t_walk, t_path = [], [], [], []
        same = True
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run = reader.open_catalog(cfg)[uid]
            table = run.primary.read(variables=SCALARS)
            frame = run.primary["simdet_image"][points // 2, 1]
            t_scalar.append(time.perf_counter() - t0)
            assert table["simdet_stats1_total"].shape == (points,) and frame.ndim == 2

            t0 = time.perf_counter()
            reader.open_catalog(cfg)[uid].primary["simdet_image"]
            t_walk.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            reader.open_catalog(cfg)[uid][IMAGE]
            t_path.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            full = reader.open_catalog(cfg)[uid][IMAGE].read()
            t_full.append(time.perf_counter() - t0)

            for n, times in ((1, t_bulk1), (bulk.DEFAULT_CONNECTIONS, t_bulk)):
                t0 = time.perf_counter()
                node = reader.open_catalog(cfg)[uid][IMAGE]
                fast = bulk.read_array(node, connections=n)
                times.append(time.perf_counter() - t0)
                same = same and np.array_equal(fast, full)
                del fast

            if stock is not None:
                t0 = time.perf_counter()
                old = reader.open_catalog(stock_cfg)[uid][IMAGE].read()
                t_stock.append(time.perf_counter() - t0)
                same = same and np.array_equal(old, full)
                del old

            probe = reader.open_catalog(cfg)[uid][IMAGE]
            t_req.append(timed_request(probe, probe_points(probe, points)))

            t0 = time.perf_counter()
            with h5py.File(path, "r", locking=False) as f:
                alone = f["/entry/data/data"][: points * frames]
            t_h5.append(time.perf_counter() - t0)
            same = same and np.array_equal(full.reshape(alone.shape), alone)
            mb = alone.nbytes / 1e6
            del full, alone
        rss_read = rss_mib(info.pid)
    finally:
        if stock is not None:
            stock.terminate()
            stock.wait(15)
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
            ("  Tiled: per point without the start and stop waits", per_point_events, "ms"),
            ("  Tiled: the run's start wait (run node created)", 1000 * tiled_waits[0], "ms"),
            ("  Tiled: the run's stop wait (last rows, frames, stop)", 1000 * tiled_waits[1], "ms"),
            (
                f"scalar table + one image slice via Tiled (median of {args.repeat})",
                statistics.median(t_scalar),
                "s",
            ),
            (
                f"look-up: catalog, run, run.primary['simdet_image'] (median of {args.repeat})",
                statistics.median(t_walk),
                "s",
            ),
            (
                f"look-up: catalog, run, run['{IMAGE}'] (median of {args.repeat})",
                statistics.median(t_path),
                "s",
            ),
            (f"full 4-D simdet_image via Tiled (median of {args.repeat})", full_s, "s"),
            (f"the same frames with h5py alone (median of {args.repeat})", h5_s, "s"),
            ("  Tiled speed / h5py speed", h5_s / full_s, "ratio"),
            (
                f"the same via tiled.bulk.read_array, 1 connection (median of {args.repeat})",
                statistics.median(t_bulk1),
                "s",
            ),
            ("  that / h5py speed", h5_s / statistics.median(t_bulk1), "ratio"),
            (
                f"the same via read_array, {bulk.DEFAULT_CONNECTIONS} connections (default)",
                statistics.median(t_bulk),
                "s",
            ),
            ("  that / h5py speed", h5_s / statistics.median(t_bulk), "ratio"),
            *(
                [
                    (
                        f"the same through tiled's own HDF5 adapter (median of {args.repeat})",
                        statistics.median(t_stock),
                        "s",
                    ),
                    ("  that / h5py speed", h5_s / statistics.median(t_stock), "ratio"),
                ]
                if t_stock
                else []
            ),
            (
                f"one request, half the array or one slab ({t_req[0]['mb']:.0f} MB), "
                f"median of {args.repeat}:",
                "",
                "",
            ),
            *(
                (f"  {label}", statistics.median(r[key] for r in t_req), "s")
                for key, label in [
                    ("wall", "wall time at the client"),
                    ("read", "server: catalog lookup + HDF5 read (Server-Timing read)"),
                    ("tok", "server: ETag hash (Server-Timing tok)"),
                    ("app", "server: whole app (Server-Timing app)"),
                    ("body", "body transfer through httpx after the headers"),
                ]
                if all(key in r for r in t_req)
            ),
            ("Tiled server RSS idle after start", rss_idle, "MiB"),
            ("Tiled server RSS after the run was written", rss_written, "MiB"),
            ("Tiled server RSS after the reads", rss_read, "MiB"),
            ("Tiled returns the HDF5 file's pixels", str(same), ""),
            (
                "load average (1 min) at start / end",
                f"{load_start:.1f} / {os.getloadavg()[0]:.1f}",
                "",
            ),
        ],
        {"points": points, "frames": frames, "repeat": args.repeat},
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
