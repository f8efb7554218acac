"""Simulated beamline throughput: IOC start-up, detector connect, frames/s to HDF5 (LZ4).

Prints a table and writes benchmarks/results/simulator.json.  The limit for the frame
rate is LZ4-compressing the same frames with h5py alone on this machine, measured in the
same run.  Usage: ``./run bench simulator`` or ``.venv/bin/python benchmarks/bench_simulator.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_ca_port, report, start_ioc, use_port  # noqa: E402


def lz4_alone(frames, path: Path, per_flush: int = 1) -> float:
    """Frames/s appending ``frames`` (one chunk each, LZ4), flushing every ``per_flush``."""
    import h5py
    import hdf5plugin

    shape = frames[0].shape
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=(0, *shape), maxshape=(None, *shape),
                              dtype=frames[0].dtype, chunks=(1, *shape), **hdf5plugin.LZ4())
        for i, frame in enumerate(frames):
            ds.resize(i + 1, axis=0)
            ds[i] = frame
            if (i + 1) % per_flush == 0:
                f.flush()
    return len(frames) / (time.perf_counter() - t0)


def pipeline(prefix: str, n: int, data_dir: Path) -> tuple[float, int]:
    """Frames/s through cam -> ROI -> Stats -> HDF5 (LZ4, Stream) at AcquireTime 0."""
    from epics import PV, caget, caput

    p = prefix
    caput(p + "cam1:Acquire", 0, wait=True)
    for name, value in [("cam1:ImageMode", 1), ("cam1:NumImages", n), ("cam1:AcquireTime", 0.0),
                        ("cam1:AcquirePeriod", 0.0), ("cam1:WaitForPlugins", 1),
                        ("HDF1:EnableCallbacks", 1), ("HDF1:QueueSize", n + 10),
                        ("HDF1:DroppedArrays", 0), ("HDF1:FileWriteMode", 2),
                        ("HDF1:NumCapture", n), ("HDF1:Compression", "LZ4"),
                        ("HDF1:AutoSave", 1), ("HDF1:AutoIncrement", 1),
                        ("ROI1:EnableCallbacks", 1), ("Stats1:EnableCallbacks", 1),
                        ("Stats1:ComputeStatistics", 1)]:
        caput(p + name, value, wait=True)
    # Prime HDF1 with one frame (a fresh plugin does not know the array size yet).
    caput(p + "cam1:ImageMode", 0, wait=True)
    caput(p + "cam1:Acquire", 1, wait=True)
    t0 = time.perf_counter()  # the plugin takes the frame from its queue a little later
    while not caget(p + "HDF1:ArraySize0_RBV", use_monitor=False) and time.perf_counter() - t0 < 10:
        time.sleep(0.01)
    caput(p + "cam1:ImageMode", 1, wait=True)
    caput(p + "HDF1:FilePath", str(data_dir) + "/", wait=True)
    caput(p + "HDF1:FileName", "bench", wait=True)
    caput(p + "HDF1:Capture", 1, wait=True)
    busy = PV(p + "cam1:AcquireBusy")
    busy.wait_for_connection(5)
    t0 = time.perf_counter()
    caput(p + "cam1:Acquire", 1)
    while busy.get() != 1 and time.perf_counter() - t0 < 10:  # acquisition has started
        time.sleep(0.001)
    while busy.get() == 1 and time.perf_counter() - t0 < 600:  # ... and is over
        time.sleep(0.005)
    seconds = time.perf_counter() - t0
    captured = int(caget(p + "HDF1:NumCaptured_RBV"))
    dropped = int(caget(p + "HDF1:DroppedArrays_RBV"))
    if dropped:
        print(f"HDF1 dropped {dropped} arrays", file=sys.stderr)
    caput(p + "HDF1:Capture", 0, wait=True)
    return n / seconds, captured


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per measurement (300)")
    args = ap.parse_args(argv)

    port = free_ca_port()
    use_port(port)
    tmp = Path(tempfile.mkdtemp(prefix="adscan-bench-sim-"))
    proc, startup = start_ioc(port, tmp, "bsgp:", "bskad:")
    try:
        import ophyd

        from adscan.devices.area_detector import SimDetector_V34

        ophyd.Device.lazy_wait_for_connection = False
        t0 = time.perf_counter()
        det = SimDetector_V34("bskad:", name="simdet")
        det.wait_for_connection(all_signals=True, timeout=60)
        connect = time.perf_counter() - t0

        rate, captured = pipeline("bskad:", args.frames, tmp)

        from adscan.iocs.simdet import FrameSynth

        synth = FrameSynth((1024, 1024), "UInt8")
        frames = [synth.frame({"m1": 0.1 * i, "m2": 0.0}) for i in range(args.frames)]
        alone = lz4_alone(frames, tmp / "alone.h5")
        mb = frames[0].nbytes / 1e6
        report("simulator", [
            ("IOC start-up (spawn to READY, every PV answers)", startup, "s"),
            ("full detector connect (ophyd, all 1,061 signals)", connect, "s"),
            ("frames through cam->ROI->Stats->HDF5 LZ4", float(args.frames), "frames"),
            ("  frames captured in the file", str(captured), ""),
            ("  pipeline rate, AcquireTime 0", rate, "frames/s"),
            ("  pipeline rate", rate * mb, "MB/s"),
            ("LZ4 alone, h5py, same frames, flush per frame", alone, "frames/s"),
            ("pipeline / LZ4-alone", rate / alone, "ratio"),
        ])
        return 0 if captured == args.frames else 1
    finally:
        proc.terminate()
        proc.wait(15)


if __name__ == "__main__":
    sys.exit(main())
