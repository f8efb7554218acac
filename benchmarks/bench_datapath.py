"""Data path: frames/s and MB/s written to HDF5 (LZ4) during a scan, v. LZ4 alone.

An in-process ``adscan_count`` (the profile's RunEngine, AcquireTime = AcquirePeriod = 0, many
frames per point) drives cam -> ROI -> Stats -> HDF5 (LZ4, Stream); the rate is read from the
file (frames over the span of their NDArrayTimeStamps) and over the whole run.  The limit is
h5py + LZ4 writing the same frames (read back from that file) in this process, one chunk per
frame, flushed per point as the simulator does.  Prints a table, writes
``benchmarks/results/datapath.json``.  Usage: ``python benchmarks/bench_datapath.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _service import Bench  # noqa: E402
from bench_scans import set_acquire  # noqa: E402
from bench_simulator import lz4_alone  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 points (else 30)")
    ap.add_argument("--frames", type=int, default=10, help="frames per point (10)")
    args = ap.parse_args(argv)
    points = 10 if args.quick else 30
    import h5py
    import hdf5plugin  # noqa: F401
    import numpy as np

    from adscan.data.catalog import image_files, open_catalog

    bench = Bench(log=lambda s: print(s, flush=True))
    try:
        bench.start(queue=False)
        set_acquire(bench, 0.0)
        r = bench.run_inproc(bench.ns["adscan_count"](num=points, frames=args.frames))
        run_s = r["stop"] - r["start"]
        files = image_files(open_catalog(bench.icfg)[r["uid"]])
        with h5py.File(files[0], "r", locking=False) as f:
            ts = f["/entry/instrument/NDAttributes/NDArrayTimeStamp"][:]
            frames = f["/entry/data/data"][:]
            size = Path(files[0]).stat().st_size
        n = len(frames)
        mb = frames[0].nbytes / 1e6
        span = float(ts[-1] - ts[0])
        rate_span = (n - 1) / span if span > 0 else float("nan")
        rate_run = n / run_s
        alone = lz4_alone(list(frames), bench.root / "alone.h5", args.frames)
        alone_frame = lz4_alone(list(frames), bench.root / "alone1.h5", 1)
        ratio = frames[0].nbytes * n / size
    finally:
        bench.stop()
    report(
        "datapath",
        [
            ("frames written (points x frames/point)", f"{points} x {args.frames} = {n}", ""),
            ("frame size", mb, "MB"),
            ("LZ4 compression ratio in the file", ratio, "x"),
            ("HDF5 write rate while acquiring (timestamps)", rate_span, "frames/s"),
            ("  same", rate_span * mb, "MB/s"),
            ("whole run incl. per-point overhead", rate_run, "frames/s"),
            ("  same", rate_run * mb, "MB/s"),
            ("LZ4 alone, h5py, same frames, flush per point", alone, "frames/s"),
            ("  same", alone * mb, "MB/s"),
            ("LZ4 alone, flush per frame (old simulator policy)", alone_frame, "frames/s"),
            ("HDF5 during scan / LZ4 alone (target >= 0.70)", rate_span / alone, "ratio"),
            ("whole run / LZ4 alone", rate_run / alone, "ratio"),
        ],
        {"points": points, "frames_per_point": args.frames, "np": np.__version__},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
