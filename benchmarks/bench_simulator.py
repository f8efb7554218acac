"""Simulated beamline: the softioc AD IOC's start-up, connect, pipeline and frame period.

With 1024x1024 and 16x16 beamlines started side by side (the previous all-caproto AD simulator,
measured beside it on 2026-12-01, is gone; its figures stay in benchmarks/RESULTS.md):

* IOC start-up (spawn to READY, every PV answering) and full ophyd connect (1,061 signals);
* frames/s through cam -> ROI -> Stats -> HDF5 (LZ4, Stream) at AcquireTime 0 (image1
  and Pva1 disabled, so only that chain works; wall time
  from Acquire to AcquireBusy falling with WaitForPlugins=Yes), against LZ4 alone (h5py +
  hdf5plugin, flush per frame) on frames of the same kind;
* frame period minus AcquirePeriod (10 ms): median of the NDArrayTimeStamp differences
  written in the HDF5 file.

Measurements are interleaved with LZ4 alone and medians printed.  Targets:
pipeline >= 70 % of LZ4 alone at 1024x1024; at 16x16 the period within 1 ms.
Usage: ``.venv/bin/python benchmarks/bench_simulator.py [--frames 200] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_ca_port, report, start_ioc  # noqa: E402

from adscan import epics_env  # noqa: E402


def lz4_alone(frames, path: Path) -> float:
    """Frames/s appending ``frames`` (one chunk each, LZ4 filter, flush per frame)."""
    import h5py
    import hdf5plugin

    shape = frames[0].shape
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=frames[0].dtype,
            chunks=(1, *shape),
            **hdf5plugin.LZ4(),
        )
        for i, frame in enumerate(frames):
            ds.resize(i + 1, axis=0)
            ds[i] = frame
            f.flush()
    return len(frames) / (time.perf_counter() - t0)


def acquire(p: str, n: int, period: float, data_dir: Path, name: str) -> tuple[float, str, int]:
    """``n`` frames into one LZ4 file; (seconds Acquire -> AcquireBusy 0, file, captured)."""
    from epics import PV, caget, caput

    for pv, value in [
        ("cam1:ImageMode", 1),
        ("cam1:NumImages", n),
        ("cam1:AcquireTime", 0.0),
        ("cam1:AcquirePeriod", period),
        ("cam1:WaitForPlugins", 1),
        ("HDF1:EnableCallbacks", 1),
        ("HDF1:QueueSize", n + 10),
        ("HDF1:DroppedArrays", 0),
        ("HDF1:FileWriteMode", 2),
        ("HDF1:NumCapture", n),
        ("HDF1:Compression", "LZ4"),
        ("HDF1:LazyOpen", 1),
        ("HDF1:AutoIncrement", 1),
        ("ROI1:EnableCallbacks", 1),
        ("Stats1:EnableCallbacks", 1),
        ("Stats1:ComputeStatistics", 1),
        ("image1:EnableCallbacks", 0),
        ("Pva1:EnableCallbacks", 0),
    ]:
        caput(p + pv, value, wait=True)
    caput(p + "HDF1:FilePath", str(data_dir) + "/", wait=True)
    caput(p + "HDF1:FileName", name, wait=True)
    caput(p + "HDF1:Capture", 1, wait=True)
    busy = PV(p + "cam1:AcquireBusy")
    busy.wait_for_connection(5)
    t0 = time.perf_counter()
    caput(p + "cam1:Acquire", 1)
    while busy.get() != 1 and time.perf_counter() - t0 < 10:
        time.sleep(0.001)
    while busy.get() == 1 and time.perf_counter() - t0 < 600:
        time.sleep(0.002)
    seconds = time.perf_counter() - t0
    deadline = time.perf_counter() + 10
    while caget(p + "HDF1:Capture_RBV") and time.perf_counter() < deadline:
        time.sleep(0.01)
    fn = caget(p + "HDF1:FullFileName_RBV", as_string=True)
    return seconds, fn, int(caget(p + "HDF1:NumCaptured_RBV"))


def period_excess_ms(fn: str, period: float) -> float:
    import h5py
    import numpy as np

    with h5py.File(fn, "r") as f:
        ts = f["/entry/instrument/NDAttributes/NDArrayTimeStamp"][()]
    return (float(np.median(np.diff(ts))) - period) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="frames per measurement (200)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (3)")
    args = ap.parse_args(argv)

    impls = ("softioc",)
    ports = {(impl, size): free_ca_port() for impl in impls for size in (1024, 16)}
    words = []
    for port in ports.values():
        words += [f"127.0.0.1:{port}", f"127.0.0.1:{epics_env.ad_ca_port(port)}"]
    epics_env.apply_loopback(ca_port=ports[("softioc", 1024)])
    os.environ["EPICS_CA_ADDR_LIST"] = " ".join(words)
    tmp = Path(tempfile.mkdtemp(prefix="adscan-bench-sim-"))
    procs, startup, prefix = [], {}, {}
    try:
        for (impl, size), port in ports.items():
            tag = f"b{impl[0]}{size}"
            prefix[(impl, size)] = f"{tag}ad:"
            proc, seconds = start_ioc(
                port,
                tmp / tag,
                f"{tag}gp:",
                f"{tag}ad:",
                "--rows",
                str(size),
                "--cols",
                str(size),
            )
            procs.append(proc)
            startup[(impl, size)] = seconds

        import ophyd

        from adscan.devices.area_detector import SimDetector_V34
        from adscan.devices.connect import connect as connect_device

        ophyd.Device.lazy_wait_for_connection = False
        connect = {}
        for impl in impls:
            t0 = time.perf_counter()
            det = SimDetector_V34(prefix[(impl, 1024)], name=f"det_{impl}")
            connect_device(det, timeout=120, all_signals=True)  # lost callbacks replayed
            connect[impl] = time.perf_counter() - t0
            det.destroy()

        from adscan.iocs.frames import FrameSynth

        synth = FrameSynth((1024, 1024), "UInt8")
        synth_times = []  # as in the IOC: each frame dropped after use (its memory reused)
        for i in range(args.frames):
            t0 = time.perf_counter()
            synth.frame([0.01 * i, 0.0])
            synth_times.append(time.perf_counter() - t0)
        synth_ms = statistics.median(synth_times) * 1e3
        t0 = time.perf_counter()
        frames = [synth.frame([0.01 * i, 0.0]) for i in range(args.frames)]
        kept_ms = (time.perf_counter() - t0) / args.frames * 1e3  # every frame in fresh memory
        alone_runs = []
        rate = {impl: [] for impl in impls}
        excess = {(impl, size): [] for impl in impls for size in (1024, 16)}
        captured_ok = True
        for r in range(args.repeats):
            alone_runs.append(lz4_alone(frames, tmp / f"alone{r}.h5"))  # interleaved
            for impl in impls:
                p = prefix[(impl, 1024)]
                seconds, _, captured = acquire(p, args.frames, 0.0, tmp, f"rate{r}")
                captured_ok &= captured == args.frames
                rate[impl].append(args.frames / seconds)
                for size in (1024, 16):
                    _, fn, captured = acquire(
                        prefix[(impl, size)], 50, 0.01, tmp, f"period{size}_{r}"
                    )
                    captured_ok &= captured == 50
                    excess[(impl, size)].append(period_excess_ms(fn, 0.01))

        alone = statistics.median(alone_runs)
        med = {k: statistics.median(v) for k, v in rate.items()}
        rows = []
        for impl in impls:
            rows += [
                (f"[{impl}] IOC start-up, 1024x1024 (spawn to READY)", startup[(impl, 1024)], "s"),
                (f"[{impl}] IOC start-up, 16x16", startup[(impl, 16)], "s"),
                (f"[{impl}] ophyd connect, all 1,061 signals", connect[impl], "s"),
                (f"[{impl}] cam->ROI->Stats->HDF5 LZ4, AcquireTime 0", med[impl], "frames/s"),
                (f"[{impl}] pipeline / LZ4 alone", med[impl] / alone, "ratio"),
                (
                    f"[{impl}] period - AcquirePeriod, 1024x1024",
                    statistics.median(excess[(impl, 1024)]),
                    "ms",
                ),
                (
                    f"[{impl}] period - AcquirePeriod, 16x16",
                    statistics.median(excess[(impl, 16)]),
                    "ms",
                ),
            ]
        rows += [
            ("LZ4 alone (h5py + hdf5plugin, flush per frame), 1024x1024", alone, "frames/s"),
            (
                "frame synthesis, 1024x1024 UInt8, median (frames dropped, as in the IOC)",
                synth_ms,
                "ms",
            ),
            ("  the same, mean, every frame kept (each in fresh memory)", kept_ms, "ms"),
            ("frames per measurement / repeats", f"{args.frames} / {args.repeats}", ""),
        ]
        report(
            "simulator",
            rows,
            {"rates": rate, "excess_ms": {f"{k[0]}-{k[1]}": v for k, v in excess.items()}},
        )
        return 0 if captured_ok else 1
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)


if __name__ == "__main__":
    sys.exit(main())
