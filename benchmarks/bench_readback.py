"""Read-back: seconds to load a 500-point x 3-frame run's images from the catalog.

The run is taken with the profile's in-process RunEngine (``adscan_count``, AcquireTime 0);
then, in this process, timed: databroker v2 ``run.primary.read()`` (images included), the v1
``db[uid].table(fill=True)`` and the fast path (the HDF5 file(s) read directly with h5py,
via ``adscan.data.catalog.image_files``).  Quick mode: 50 points.  Prints a table, writes
``benchmarks/results/readback.json``.  Usage: ``python benchmarks/bench_readback.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _service import Bench  # noqa: E402
from bench_scans import set_acquire  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 points (else 500)")
    args = ap.parse_args(argv)
    points, frames = (50 if args.quick else 500), 3
    import h5py
    import hdf5plugin  # noqa: F401
    import numpy as np

    from adscan.data.catalog import image_files, open_catalog, open_v1

    bench = Bench(log=lambda s: print(s, flush=True))
    try:
        bench.start(queue=False)
        set_acquire(bench, 0.0)
        t0 = time.perf_counter()
        r = bench.run_inproc(bench.ns["adscan_count"](num=points, frames=frames))
        print(f"  run of {points} x {frames} taken in {time.perf_counter() - t0:.1f} s", flush=True)
        uid = r["uid"]

        t0 = time.perf_counter()
        ds = open_catalog(bench.icfg)[uid].primary.read()
        img = ds["simdet_image"].values
        v2 = time.perf_counter() - t0
        shape = img.shape
        total_v2 = int(img.sum(dtype=np.int64))
        del ds, img

        t0 = time.perf_counter()
        table = open_v1(bench.icfg)[uid].table(fill=True)
        imgs = np.stack(list(table["simdet_image"]))
        v1 = time.perf_counter() - t0
        total_v1 = int(imgs.sum(dtype=np.int64))
        del table, imgs

        t0 = time.perf_counter()
        parts = []
        for path in image_files(open_catalog(bench.icfg)[uid]):
            with h5py.File(path, "r", locking=False) as f:
                parts.append(f["/entry/data/data"][:])
        fast = np.concatenate(parts)
        direct = time.perf_counter() - t0
        total_fast = int(fast.sum(dtype=np.int64))
        mb = fast.nbytes / 1e6
    finally:
        bench.stop()
    same = total_v2 == total_v1 == total_fast
    report(
        "readback",
        [
            ("run", f"{points} points x {frames} frames, images {shape}", ""),
            ("image data", mb, "MB"),
            ("v2 run.primary.read() (images loaded)", v2, "s"),
            ("v1 db[uid].table(fill=True)", v1, "s"),
            ("fast path: image_files(run) + h5py", direct, "s"),
            ("  v2 / fast path", v2 / direct, "ratio"),
            ("all three return the same pixels", str(same), ""),
        ],
        {"points": points, "frames": frames},
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
