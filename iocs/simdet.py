"""Simulated ADSimDetector v3.4 IOC (caproto): cam1, ROI1, Stats1, HDF1, image1, Pva1.

Serves the 1,061 PVs the how-to's ``SimDetector_V34`` ophyd device instantiates (record
table: ``iocs/ad_table.py``; channel semantics: ``iocs/ad_records.py``) and behaves like the
real driver + ADCore plugins where the how-to's flow and ophyd/apstools depend on it.

Acquisition (cam1:)
    ImageMode Single/Multiple/Continuous, NumImages, AcquireTime/AcquirePeriod (the frame
    period is ``max(AcquireTime, AcquirePeriod)``), ``Acquire=0`` aborts (DetectorState
    ``Aborted``), ArrayCounter, UniqueId, NumImagesCounter, TimeRemaining.  ``AcquireBusy``
    goes to 1 on ``Acquire=1`` and back to 0 when acquisition is over and, with
    ``WaitForPlugins=Yes``, every enabled plugin has processed the last frame (what apstools'
    ``SingleTrigger_V34`` waits for).  Frames: a Gaussian peak on Poisson noise; the peak's
    centre and height follow the first two motor positions ``positions()`` returns (sorted by
    name): centre = frame centre + position * size/8, height = 200 * exp(-(a^2 + b^2)/2)
    counts (UInt8; x256 for wider types).  Noise comes from a precomputed bank of frames
    (cycled with a random row shift) so a frame costs ~1-2 ms.  The cam's MinX/MinY/SizeX/
    SizeY crop and ReverseX/Y are applied; BinX/BinY, Gain, Offset, Noise, Peak*, SimMode are
    stored only.

Plugins
    Chained by NDArrayPort: cam ``SIM1`` -> ROI1 (``ROI1``) -> Stats1 (``STATS1``);
    HDF1 (``FileHDF1``), image1 (``IMAGE1``), Pva1 (``PVA1``) from ``SIM1``.  A plugin
    processes an array only when EnableCallbacks=Enable and its NDArrayPort names the port
    that produced it; BlockingCallbacks=Yes runs it in the producer's call, otherwise in the
    plugin's own queue (QueueSize, DroppedArrays).  ROI: MinX/SizeX/BinX/ReverseX (and Y),
    EnableX/Y, AutoSize, DataTypeOut, Scale.  Stats: statistics (Total, Net, Min/Max/Mean,
    Sigma, MinX/MaxX...), centroid, histogram, profiles, each when enabled; ``Total`` /
    ``Total_RBV`` and ``MaxValue`` / ``MaxValue_RBV`` both updated.  image1: ArrayData updated
    only when the plugin is enabled.  Pva1: PVs only, there is no pvAccess server.

HDF5 (HDF1:, NDFileHDF5)
    FileWriteMode Single/Capture/Stream, Capture, NumCapture, NumCaptured_RBV, AutoSave,
    AutoIncrement, WriteFile, LazyOpen, CreateDirectory (ADCore semantics: 0 = never create;
    N < 0 = create up to |N| trailing directories; N > 0 = the first N path components must
    exist; the leaf is always created when CreateDirectory != 0), FilePathExists_RBV
    (``os.path.isdir`` after every FilePath write; FilePath_RBV gets a trailing ``/``).  File
    name = ``FileTemplate % (FilePath, FileName, FileNumber)`` (C sprintf semantics via
    Python ``%``); on open, FileNumber (and _RBV) is incremented when AutoIncrement=Yes and
    FullFileName_RBV set, before Capture_RBV reports 1 (ophyd names the file
    ``FileNumber_RBV - 1``).  Compression: None, zlib (ZLevel), LZ4, BSLZ4 (bitshuffle+LZ4)
    and Blosc via hdf5plugin; N-bit, szip and JPEG fall back to no compression with a
    message in WriteMessage.  The file is created (and named) at Capture=1 but the image
    dataset at the first frame, with the Compression then in force: the how-to's stage_sigs
    set ``compression`` after ``capture``, and its files are LZ4-compressed.  Layout like
    ADCore's default: ``/entry/instrument/detector/data`` (one chunk per frame),
    ``/entry/data/data`` hard link (NXdata), ``/entry/instrument/NDAttributes/`` (NDArrayUniqueId,
    NDArrayTimeStamp, NDArrayEpicsTSSec, NDArrayEpicsTSnSec),
    ``/entry/instrument/performance/timestamp``, NX_class attributes.  Writes run in one
    worker thread (CA stays responsive); the file is flushed at the end of each acquisition
    (before AcquireBusy falls, so a reader sees every completed point's frames) and at least
    every ``FLUSH_INTERVAL`` s while frames stream in (a flush per frame cost as much as the
    write; the file is opened without HDF5 file locking so readers are not refused), and
    closed - complete and valid - on Capture=0, when NumCapture frames
    are written, when an acquisition is aborted (Acquire=0; unlike ADCore, which keeps the
    stream open, capture stops so the file is closed), and in :meth:`SimDetectorIOC.shutdown`.

Priming (deliberate, like the real IOC)
    A freshly started HDF1 has ArraySize0/1/2 = 0, so ophyd's HDF5 plugin ``stage()`` raises
    ``UnprimedPlugin`` until one frame went through it.  ``apstools.devices.
    AD_prime_plugin2(det.hdf1)`` works: it enables the plugin, sets ImageMode Single and
    acquires one frame; afterwards HDF1's ArraySize/DataType/ColorMode match the cam's and
    ``AD_plugin_primed()`` is True.  A Stream Capture=1 without a frame (and LazyOpen=No) is
    refused with a WriteMessage, as in ADCore.

Start-up values are realistic (ophyd's unstage restores what it found): plugins enabled,
ArrayCallbacks Enable, FileTemplate ``%s%s_%6.6d.h5``, FilePath = ``data_dir``, FileName
``image``, FileWriteMode Stream, AutoIncrement Yes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from caproto.server import PVGroup

from . import ad_records
from .ad_records import ADGroupBase, make_group_class

logger = logging.getLogger("adscan.iocs.simdet")

EPICS_EPOCH = 631152000  # 1990-01-01 in POSIX seconds

#: Seconds between HDF5 flushes while frames stream in (also flushed at each acquisition's end).
FLUSH_INTERVAL = 1.0

#: caproto's server batches monitor updates: it waits CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC
#: (default 10 ms) for more before sending, so every AcquireBusy or DMOV change reached the
#: client at least 10 ms late.  The simulated IOC uses 1 ms (unless the variable is set).
HIGH_LOAD_TIMEOUT = 0.001
if "CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC" not in os.environ:
    import caproto.server.common as _caproto_server_common

    _caproto_server_common.HIGH_LOAD_TIMEOUT = HIGH_LOAD_TIMEOUT

DTYPES = {
    "Int8": np.int8,
    "UInt8": np.uint8,
    "Int16": np.int16,
    "UInt16": np.uint16,
    "Int32": np.int32,
    "UInt32": np.uint32,
    "Float32": np.float32,
    "Float64": np.float64,
}
DTYPE_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
CA_ARRAY_TYPES = {  # image1:ArrayData channel class per frame data type (read-only)
    "Int8": ad_records.ByteArrayRO,
    "UInt8": ad_records.ByteArrayRO,
    "Int16": ad_records.IntegerRO,
    "UInt16": ad_records.IntegerRO,
    "Int32": ad_records.IntegerRO,
    "UInt32": ad_records.IntegerRO,
    "Float32": ad_records.DoubleRO,
    "Float64": ad_records.DoubleRO,
}


@dataclass
class NDArr:
    """One NDArray travelling between ports."""

    data: np.ndarray
    unique_id: int
    timestamp: float  # seconds since the EPICS epoch
    ts_sec: int
    ts_nsec: int
    color_mode: str = "Mono"
    #: the last frame of a finite acquisition (the HDF5 writer flushes the file then)
    end_of_acquisition: bool = False

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.data.dtype]

    def dims(self) -> list[int]:
        """ADCore order: dims[0] is X (fastest)."""
        return list(self.data.shape[::-1])

    def like(self, data: np.ndarray) -> NDArr:
        return NDArr(
            data,
            self.unique_id,
            self.timestamp,
            self.ts_sec,
            self.ts_nsec,
            self.color_mode,
            self.end_of_acquisition,
        )


# ---------------------------------------------------------------------------- frames
class FrameSynth:
    """Gaussian peak + Poisson noise frames from a precomputed noise bank."""

    def __init__(self, shape: tuple[int, int], dtype_name: str, bank: int = 8, seed: int = 1):
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype_name = dtype_name
        self.dtype = np.dtype(DTYPES[dtype_name])
        self.scale = {"Int8": 0.5, "UInt8": 1.0, "Int16": 100.0}.get(dtype_name, 256.0)
        rng = np.random.default_rng(seed)
        self._rng = rng
        lam = 5.0
        self.bank = [
            (rng.poisson(lam, self.shape) * self.scale).astype(self.dtype) for _ in range(bank)
        ]
        self._k = 0
        self._peak_key = None
        self._peak = None
        ny, nx = self.shape
        self._y = np.arange(ny, dtype=np.float32)
        self._x = np.arange(nx, dtype=np.float32)

    def _peak_image(self, a: float, b: float) -> np.ndarray:
        key = (round(a, 4), round(b, 4))
        if key != self._peak_key:
            ny, nx = self.shape
            cx = nx / 2 + a * nx / 8
            cy = ny / 2 + b * ny / 8
            height = 200.0 * np.exp(-(a * a + b * b) / 2) * self.scale
            sx, sy = max(nx / 16, 1.0), max(ny / 16, 1.0)
            gx = np.exp(-0.5 * ((self._x - cx) / sx) ** 2).astype(np.float32)
            gy = (height * np.exp(-0.5 * ((self._y - cy) / sy) ** 2)).astype(np.float32)
            self._peak = np.outer(gy, gx).astype(self.dtype)
            self._peak_key = key
        return self._peak

    def frame(self, positions: dict[str, float] | None) -> np.ndarray:
        vals = [float(positions[k]) for k in sorted(positions)] if positions else []
        a = vals[0] if vals else 0.0
        b = vals[1] if len(vals) > 1 else 0.0
        noise = self.bank[self._k % len(self.bank)]
        self._k += 1
        r = int(self._rng.integers(0, self.shape[0]))
        out = np.empty_like(noise)
        out[: self.shape[0] - r] = noise[r:]
        out[self.shape[0] - r :] = noise[:r]
        out += self._peak_image(a, b)  # noise max + peak max stays below the type's max
        return out


# ---------------------------------------------------------------------------- HDF5
def _compression_kwargs(name: str, zlevel: int, blosc: tuple[str, int, str]) -> tuple[dict, str]:
    """h5py dataset keyword arguments for the Compression choice, and a status message."""
    import hdf5plugin

    if name == "None":
        return {}, ""
    if name == "zlib":
        return {"compression": "gzip", "compression_opts": int(min(max(zlevel, 0), 9))}, ""
    if name == "LZ4":
        return dict(hdf5plugin.LZ4()), ""
    if name == "BSLZ4":
        return dict(hdf5plugin.Bitshuffle(cname="lz4")), ""
    if name == "Blosc":
        cname, level, shuffle = blosc
        cmap = {
            "BloscLZ": "blosclz",
            "LZ4": "lz4",
            "LZ4HC": "lz4hc",
            "SNAPPY": "snappy",
            "ZLIB": "zlib",
            "ZSTD": "zstd",
        }
        smap = {
            "None": hdf5plugin.Blosc.NOSHUFFLE,
            "Byte": hdf5plugin.Blosc.SHUFFLE,
            "Bit": hdf5plugin.Blosc.BITSHUFFLE,
        }
        return dict(
            hdf5plugin.Blosc(
                cname=cmap.get(cname, "lz4"), clevel=int(level), shuffle=smap.get(shuffle, 0)
            )
        ), ""
    return {}, f"Compression {name} not supported by the simulator: writing uncompressed"


class H5Writer:
    """ADCore-like HDF5 file (runs in the plugin's writer thread only)."""

    def __init__(
        self,
        path: str,
        shape: tuple[int, ...],
        dtype,
        store_attr: bool = True,
        store_perf: bool = True,
    ):
        import h5py
        import hdf5plugin  # noqa: F401 - registers the filters

        self.path = path
        self.shape = tuple(shape)
        self.dtype = dtype
        self.f = h5py.File(path, "w", locking=False)
        self.t_open = time.time()
        self.t_flush = time.monotonic()
        self.count = 0
        self.ds = None
        f = self.f
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        inst = entry.create_group("instrument")
        inst.attrs["NX_class"] = "NXinstrument"
        self.det = inst.create_group("detector")
        self.det.attrs["NX_class"] = "NXdetector"
        self.entry = entry
        self.attrs = {}
        if store_attr:
            nda = inst.create_group("NDAttributes")
            nda.attrs["NX_class"] = "NXcollection"
            for name, dt in (
                ("NDArrayUniqueId", np.int32),
                ("NDArrayTimeStamp", np.float64),
                ("NDArrayEpicsTSSec", np.uint32),
                ("NDArrayEpicsTSnSec", np.uint32),
            ):
                d = nda.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
                d.attrs["NDAttrName"] = name
                d.attrs["NDAttrSource"] = "Driver"
                d.attrs["NDAttrSourceType"] = "NDAttrSourceDriver"
                self.attrs[name] = d
        self.perf = None
        if store_perf:
            perf = inst.create_group("performance")
            perf.attrs["NX_class"] = "NXcollection"
            self.perf = perf.create_dataset(
                "timestamp", shape=(0, 5), maxshape=(None, 5), dtype=np.float64, chunks=(1024, 5)
            )
        f.flush()

    def create_data(self, comp: dict) -> None:
        """Create the image dataset (at the first frame, with the compression then in force)."""
        shape = self.shape
        self.ds = self.det.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            chunks=(1, *shape),
            dtype=self.dtype,
            **comp,
        )
        self.ds.attrs["NX_class"] = "SDS"
        self.ds.attrs["signal"] = np.int32(1)
        self.ds.attrs["interpretation"] = "image"
        data = self.entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data["data"] = self.ds  # hard link, as ADCore's default layout

    def append(self, arr: NDArr, flush: bool = True) -> float:
        """Write one frame (and its attributes); flush the file when ``flush``."""
        t0 = time.perf_counter()
        n = self.count
        self.ds.resize(n + 1, axis=0)
        self.ds[n] = arr.data
        for name, val in (
            ("NDArrayUniqueId", arr.unique_id),
            ("NDArrayTimeStamp", arr.timestamp),
            ("NDArrayEpicsTSSec", arr.ts_sec),
            ("NDArrayEpicsTSnSec", arr.ts_nsec),
        ):
            d = self.attrs.get(name)
            if d is not None:
                d.resize(n + 1, axis=0)
                d[n] = val
        self.count = n + 1
        dt = time.perf_counter() - t0
        if self.perf is not None:
            now = time.time()
            self.perf.resize(n + 1, axis=0)
            # [seconds since open, write seconds, frames, MB written, MB/s]
            mb = arr.data.nbytes * self.count / 1e6
            self.perf[n] = (
                now - self.t_open,
                dt,
                self.count,
                mb,
                arr.data.nbytes / 1e6 / dt if dt > 0 else 0.0,
            )
        if flush:
            self.f.flush()
            self.t_flush = time.monotonic()
        return dt

    def close(self) -> None:
        f, self.f = self.f, None
        if f is None:
            return
        try:
            f.flush()
        except Exception:
            # a failed write (disk full, EFBIG): h5py's File.close() would raise and the
            # process then crashes when the datasets are freed; close the file id only
            with contextlib.suppress(Exception):
                f.id.close()
            raise
        f.close()


def _errno_first(ex: Exception) -> str:
    """``ex`` as text, its OS error (``[Errno N] ...``) first: HDF5 buries it in a long message."""
    import re

    text = str(ex)
    m = re.search(r"errno = (\d+)", text)
    if m and "[Errno" not in text:
        n = int(m.group(1))
        return f"[Errno {n}] {os.strerror(n)}: {text}"
    return text


_CONVERSION = re.compile(
    r"%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|L|z|j|t)?"
    r"([diouxXeEfFgGcs%])"
)


def c_format(template: str, args: tuple) -> str:
    """Format like C's (epicsS)nprintf, as ADCore does with ``FileTemplate``: surplus
    arguments are ignored (``"%s%s.h5"`` gives ``<path><name>.h5``), each conversion takes
    the next argument, a missing one formats as empty/0."""
    out, pos, i = [], 0, 0
    for m in _CONVERSION.finditer(template):
        out.append(template[pos : m.start()])
        pos = m.end()
        spec, conv = m.group(0), m.group(1)
        if conv == "%":
            out.append("%")
            continue
        spec = re.sub(r"(hh|h|ll|l|L|z|j|t)(?=[diouxXeEfFgGcs]$)", "", spec).replace("*", "")
        arg = args[i] if i < len(args) else None
        i += 1
        try:
            if conv == "s":
                out.append(spec % ("" if arg is None else str(arg)))
            elif conv in "cdiouxX":
                out.append(spec.replace("u", "d") % int(arg or 0))
            else:
                out.append(spec % float(arg or 0))
        except (TypeError, ValueError):
            out.append("")
    out.append(template[pos:])
    return "".join(out)


def create_directories(path: str, depth: int) -> None:
    """ADCore's CreateDirectory semantics (see module docstring)."""
    if depth == 0 or not path:
        return
    p = Path(path)
    if p.is_dir():
        return
    parts = p.parts
    # components before index ``first`` must already exist
    first = max(len(parts) + depth, 1) if depth < 0 else min(depth, len(parts) - 1)
    first = min(first, len(parts) - 1)  # at least the leaf may be created
    base = Path(*parts[:first]) if first > 0 else Path(parts[0])
    if not base.is_dir():
        return
    with contextlib.suppress(OSError):
        p.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------------------- groups
class _Base(ADGroupBase):
    """Behaviour shared by the cam and the plugins."""

    ioc: SimDetectorIOC

    def __init__(self, *args, ioc: SimDetectorIOC, **kwargs):
        self.ioc = ioc
        super().__init__(*args, **kwargs)
        self._rate_t = time.monotonic()
        self._rate_n = 0
        self._counter = 0
        self._last_dims = None

    async def _tick_rate(self):
        now = time.monotonic()
        if now - self._rate_t >= 1.0:
            rate = (self._counter - self._rate_n) / (now - self._rate_t)
            self._rate_t, self._rate_n = now, self._counter
            await self.set("ArrayRate_RBV", max(rate, 0.0))

    async def on_put(self, name, value):
        if name == "ArrayCounter":
            self._counter = int(value)
            self._rate_n = self._counter
        return value


class CamBehaviour(_Base):
    manual_rbv = frozenset({"DataType", "SizeX", "SizeY", "MinX", "MinY"})

    async def on_put(self, name, value):
        value = await super().on_put(name, value)
        ioc = self.ioc
        if name == "Acquire":
            if value in ("Acquire", 1):
                await ioc.start_acquisition()
            else:
                await ioc.stop_acquisition()
        elif name == "DataType":
            if value not in DTYPES:
                raise ValueError(f"unsupported data type {value!r}")
            if ioc.acquiring:
                raise ValueError("cannot change DataType while acquiring")
            # As the driver: DataType_RBV is set within the write (the last write wins); the
            # frame bank follows in the background, before the next acquisition starts.
            await self.set("DataType_RBV", value)
            ioc.request_data_type(value)
        elif name in ("SizeX", "SizeY", "MinX", "MinY"):
            value = int(value)
            await self.set(name + "_RBV", value)
            self.ioc.schedule(ioc.update_cam_geometry())
        return value


class PluginBehaviour(_Base):
    plugin_type = ""
    port = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue: asyncio.Queue | None = None
        self.pending = 0
        self._worker: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return self.get("EnableCallbacks") == "Enable"

    async def receive(self, arr: NDArr) -> None:
        if not self.enabled:
            return
        if self.get("BlockingCallbacks") == "Yes":
            self.pending += 1
            try:
                await self._process(arr)
            finally:
                self.pending -= 1
            return
        if self.queue is None:
            self.queue = asyncio.Queue()
        size = max(int(self.get("QueueSize")), 1)
        if self.queue.qsize() >= size:
            await self.set("DroppedArrays_RBV", self.get("DroppedArrays_RBV") + 1)
            return
        self.pending += 1
        self.queue.put_nowait(arr)
        await self.set("QueueFree", size - self.queue.qsize())
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self):
        while True:
            arr = await self.queue.get()
            try:
                await self._process(arr)
            except Exception:  # noqa: BLE001 - a plugin error must not kill the worker
                logger.exception("%s: processing failed", self.prefix)
            finally:
                self.pending -= 1
                await self.set("QueueFree", max(int(self.get("QueueSize")), 1) - self.queue.qsize())

    async def _process(self, arr: NDArr) -> None:
        t0 = time.perf_counter()
        out = await self.process(arr)
        await self._update_info(arr if out is None else out)
        await self.set("ExecutionTime_RBV", (time.perf_counter() - t0) * 1e3)
        if out is not None:
            await self.ioc.publish(self.port, out)

    async def process(self, arr: NDArr) -> NDArr | None:
        """Plugin-specific work; return an output array to pass downstream (or None)."""
        return None

    async def _update_info(self, arr: NDArr) -> None:
        self._counter += 1
        await self.set("ArrayCounter_RBV", self._counter)
        await self.set("UniqueId_RBV", arr.unique_id)
        await self.set("TimeStamp_RBV", arr.timestamp)
        await self.set("EpicsTSSec_RBV", arr.ts_sec)
        await self.set("EpicsTSNsec_RBV", arr.ts_nsec)
        key = (arr.data.shape, arr.data.dtype, arr.color_mode)
        if key != self._last_dims:
            self._last_dims = key
            dims = arr.dims()
            full = (dims + [0] * 10)[:10]
            await self.set("NDimensions_RBV", len(dims))
            await self.set("Dimensions_RBV", np.array(full, dtype=np.int32))
            for i in range(10):
                await self.set(f"Dim{i}SA_RBV", full[i], only_changed=True)
                await self.set(f"ArraySize{i}_RBV", full[i], only_changed=True)
            await self.set("ArraySizeX_RBV", full[0])
            await self.set("ArraySizeY_RBV", full[1])
            await self.set("ArraySizeZ_RBV", full[2])
            await self.set("ArraySize_RBV", int(arr.data.nbytes))
            await self.set("DataType_RBV", arr.dtype_name)
            await self.set("ColorMode_RBV", arr.color_mode)
        await self._tick_rate()


class ROIBehaviour(PluginBehaviour):
    async def process(self, arr: NDArr) -> NDArr | None:
        data = arr.data
        if data.ndim != 2:
            return arr
        ny, nx = data.shape
        await self.set("MaxSizeX_RBV", nx, only_changed=True)
        await self.set("MaxSizeY_RBV", ny, only_changed=True)

        def axis(c, n):
            if self.get(f"Enable{c}") != "Enable":
                return 0, n, 1, False
            start = min(max(int(self.get(f"Min{c}")), 0), n - 1)
            size = int(self.get(f"Size{c}"))
            if self.get(f"AutoSize{c}") == "Yes" or size <= 0:
                size = n - start
            size = min(size, n - start)
            binning = max(int(self.get(f"Bin{c}")), 1)
            return start, size, binning, self.get(f"Reverse{c}") == "Yes"

        x0, sx, bx, rx = axis("X", nx)
        y0, sy, by, ry = axis("Y", ny)
        view = data[y0 : y0 + sy, x0 : x0 + sx]
        if bx > 1 or by > 1:
            sy2, sx2 = (sy // by) * by, (sx // bx) * bx
            v = view[:sy2, :sx2].reshape(sy2 // by, by, sx2 // bx, bx)
            acc = np.float64 if data.dtype.kind == "f" else np.int64
            binned = v.sum(axis=(1, 3), dtype=acc)
            if data.dtype.kind != "f":
                info = np.iinfo(data.dtype)
                binned = np.clip(binned, info.min, info.max)
            view = binned.astype(data.dtype)
        if rx:
            view = view[:, ::-1]
        if ry:
            view = view[::-1, :]
        out_type = self.get("DataTypeOut")
        if self.get("EnableScale") == "Enable":
            scale = float(self.get("Scale")) or 1.0
            view = view / scale
            if out_type == "Automatic":
                view = view.astype(data.dtype)
        if out_type != "Automatic" and view.dtype != np.dtype(DTYPES[out_type]):
            view = view.astype(DTYPES[out_type])
        return arr.like(view)


class StatsBehaviour(PluginBehaviour):
    async def process(self, arr: NDArr) -> NDArr | None:
        a = arr.data
        if a.size == 0:
            return None
        if self.get("ComputeStatistics") == "Yes":
            await self._statistics(a)
        if self.get("ComputeCentroid") == "Yes":
            await self._centroid(a)
        if self.get("ComputeHistogram") == "Yes":
            await self._histogram(a)
        if self.get("ComputeProfiles") == "Yes":
            await self._profiles(a)
        return None

    async def _statistics(self, a: np.ndarray) -> None:
        n = a.size
        flat = a.ravel()
        if a.dtype.kind in "ui" and a.dtype.itemsize <= 2:
            offset = int(np.iinfo(a.dtype).min)
            hist = np.bincount((flat.astype(np.int32) - offset) if offset else flat)
            vals = np.arange(hist.size, dtype=np.float64) + offset
            nz = np.nonzero(hist)[0]
            vmin, vmax = float(vals[nz[0]]), float(vals[nz[-1]])
            total = float(hist @ vals)
            mean = total / n
            var = float(hist @ (vals - mean) ** 2) / n
        else:
            f = flat.astype(np.float64)
            vmin, vmax, total = float(f.min()), float(f.max()), float(f.sum())
            mean = total / n
            var = float(f.var())
        imax = int(np.argmax(flat))
        imin = int(np.argmin(flat))
        ny, nx = a.shape if a.ndim == 2 else (1, a.size)
        bgd = 0.0
        w = int(self.get("BgdWidth"))
        if w > 0 and a.ndim == 2 and nx > 2 * w and ny > 2 * w:
            border = np.concatenate(
                [a[:w].ravel(), a[-w:].ravel(), a[w:-w, :w].ravel(), a[w:-w, -w:].ravel()]
            ).astype(np.float64)
            bgd = float(border.mean()) * n
        sigma = var**0.5
        for name, val in (
            ("Total", total),
            ("MaxValue", vmax),
            ("MinValue", vmin),
            ("MeanValue", mean),
            ("Net", total - bgd),
            ("MaxX", imax % nx),
            ("MaxY", imax // nx),
            ("MinX", imin % nx),
            ("MinY", imin // nx),
        ):
            await self.set_pair(name, float(val))
        await self.set("SigmaValue", sigma)
        await self.set("Sigma_RBV", sigma)

    async def _centroid(self, a: np.ndarray) -> None:
        if a.ndim != 2:
            return
        thr = float(self.get("CentroidThreshold"))
        w = a.astype(np.float64)
        if thr > 0:
            w = np.where(w >= thr, w, 0.0)
        tot = float(w.sum())
        await self.set_pair("CentroidTotal", tot)
        if tot <= 0:
            return
        px, py = w.sum(axis=0), w.sum(axis=1)
        x, y = np.arange(px.size), np.arange(py.size)
        cx, cy = float(px @ x) / tot, float(py @ y) / tot
        vx, vy = float(px @ (x - cx) ** 2) / tot, float(py @ (y - cy) ** 2) / tot
        sx, sy = vx**0.5, vy**0.5
        vals = {"CentroidX": cx, "CentroidY": cy, "SigmaX": sx, "SigmaY": sy}
        if sx > 0:
            vals["SkewX"] = float(px @ (x - cx) ** 3) / tot / sx**3
            vals["KurtosisX"] = float(px @ (x - cx) ** 4) / tot / sx**4 - 3
        if sy > 0:
            vals["SkewY"] = float(py @ (y - cy) ** 3) / tot / sy**3
            vals["KurtosisY"] = float(py @ (y - cy) ** 4) / tot / sy**4 - 3
        for name, val in vals.items():
            await self.set_pair(name, val)

    async def _histogram(self, a: np.ndarray) -> None:
        size = max(min(int(self.get("HistSize")), 256), 1)
        lo, hi = float(self.get("HistMin")), float(self.get("HistMax"))
        if hi <= lo:
            return
        hist, edges = np.histogram(a, bins=size, range=(lo, hi))
        below = int(np.count_nonzero(a < lo))
        above = int(np.count_nonzero(a > hi))
        p = hist[hist > 0] / max(hist.sum(), 1)
        await self.set("Histogram_RBV", hist.astype(np.float64))
        await self.set("HistogramX_RBV", edges[:-1].astype(np.float64))
        await self.set_pair("HistBelow", below)
        await self.set_pair("HistAbove", above)
        await self.set_pair("HistEntropy", float(-(p * np.log2(p)).sum()))

    async def _profiles(self, a: np.ndarray) -> None:
        if a.ndim != 2:
            return
        ny, nx = a.shape
        px = a.mean(axis=0)[:2048]
        py = a.mean(axis=1)[:2048]
        cx = min(max(int(self.get("CursorX")), 0), nx - 1)
        cy = min(max(int(self.get("CursorY")), 0), ny - 1)
        await self.set("ProfileSizeX_RBV", nx)
        await self.set("ProfileSizeY_RBV", ny)
        await self.set("ProfileAverageX_RBV", px.astype(np.float64))
        await self.set("ProfileAverageY_RBV", py.astype(np.float64))
        await self.set("ProfileCursorX_RBV", a[cy, :2048].astype(np.float64))
        await self.set("ProfileCursorY_RBV", a[:2048, cx].astype(np.float64))


class ImageBehaviour(PluginBehaviour):
    async def process(self, arr: NDArr) -> NDArr | None:
        inst = self.pv("ArrayData")
        flat = arr.data.ravel()
        if flat.size > inst.max_length:
            flat = flat[: inst.max_length]
        if inst.data_type.name == "CHAR" and flat.dtype != np.uint8:
            flat = flat.view(np.uint8) if flat.dtype == np.int8 else flat.astype(np.uint8)
        await inst.write(flat, verify_value=False)
        return None


class PvaBehaviour(PluginBehaviour):
    """NDPluginPva: PVs only (no pvAccess server is run by the simulator)."""


class HDF5Behaviour(PluginBehaviour):
    manual_rbv = frozenset({"FilePath", "Capture", "WriteFile", "ReadFile", "FileNumber"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hdf1")
        self.writer: H5Writer | None = None
        self.capturing = False
        self.buffer: list[NDArr] = []
        self.last: NDArr | None = None
        self._lock = asyncio.Lock()

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def message(self, text: str, error: bool = False) -> None:
        await self.set("WriteMessage", text)
        await self.set("WriteStatus", "Write error" if error else "Write OK")
        if error:
            logger.warning("HDF1: %s", text)

    # -- puts
    async def on_put(self, name, value):
        value = await super().on_put(name, value)
        if name == "FilePath":
            path = ad_records._to_text(value)
            await self.check_path(path)
        elif name == "FileNumber":
            await self.set("FileNumber_RBV", int(value))
        elif name == "Capture":
            async with self._lock:
                if value in ("Capture", 1):
                    ok = await self.start_capture()
                    return "Capture" if ok else "Done"
                await self.stop_capture()
            return "Done"
        elif name == "WriteFile":
            if value in ("Write", 1):
                await self.set("WriteFile_RBV", "Write")
                async with self._lock:
                    await self.write_file_now()
                await self.set("WriteFile_RBV", "Done")
            return "Done"
        elif name == "ReadFile":
            await self.message("ReadFile is not supported by the simulator", error=True)
            return "Done"
        return value

    async def check_path(self, path: str) -> bool:
        """Like ADCore's NDPluginFile::checkPath: an empty path changes nothing; one trailing
        "/" is stripped before stat() (so "/" itself does not exist); an existing directory
        gets its terminator back."""
        if not path:
            await self.set("FilePath_RBV", path)
            return self.get("FilePathExists_RBV") == "Yes"
        depth = int(self.get("CreateDirectory"))
        if depth:
            await self._run(create_directories, path if path.endswith("/") else path + "/", depth)
        bare = path[:-1] if path.endswith(("/", "\\")) else path
        exists = bool(bare) and os.path.isdir(bare)
        if exists:
            path = bare + "/"
        await self.set("FilePath_RBV", path)
        await self.set("FilePathExists_RBV", "Yes" if exists else "No")
        if not exists:
            await self.message(f"Path {path} does not exist", error=True)
        return exists

    def _next_name(self) -> str:
        tmpl = self.get("FileTemplate") or "%s%s_%6.6d.h5"
        path = self.get("FilePath_RBV") or self.get("FilePath")
        if path and not path.endswith("/"):
            path += "/"
        num = int(self.get("FileNumber_RBV"))
        return c_format(tmpl, (path, self.get("FileName"), num))

    async def open_file(self, shape, dtype) -> bool:
        """Open the next file; FileNumber incremented (AutoIncrement) before returning."""
        path = self.get("FilePath_RBV") or self.get("FilePath")
        if not await self.check_path(path):
            return False
        fname = self._next_name()
        try:
            self.writer = await self._run(
                H5Writer,
                fname,
                tuple(shape),
                dtype,
                self.get("StoreAttr") == "Yes",
                self.get("StorePerform") == "Yes",
            )
        except Exception as ex:  # noqa: BLE001 - reported like ADCore does
            self.writer = None
            await self.message(f"Error opening file {fname}: {ex}", error=True)
            return False
        await self.set("FullFileName_RBV", fname)
        if self.get("AutoIncrement") == "Yes":
            n = int(self.get("FileNumber_RBV")) + 1
            await self.set("FileNumber", n)
            await self.set("FileNumber_RBV", n)
        await self.message(f"Opened {fname}")
        return True

    async def write_frame(self, arr: NDArr) -> None:
        """Append one frame (creating the dataset at the first one)."""
        w = self.writer
        if w.ds is None:
            comp, note = _compression_kwargs(
                self.get("Compression"),
                int(self.get("ZLevel")),
                (
                    self.get("BloscCompressor"),
                    int(self.get("BloscLevel")),
                    self.get("BloscShuffle"),
                ),
            )
            await self._run(w.create_data, comp)
            if note:
                await self.message(note)
        # Flush policy: at the end of each acquisition (a point's frames; before AcquireBusy
        # falls, as the cam waits for the plugins) and at least every FLUSH_INTERVAL seconds
        # (Continuous mode), not after every frame (a flush costs about as much as the write).
        flush = (
            arr.end_of_acquisition
            or not self.ioc.acquiring
            or time.monotonic() - w.t_flush >= FLUSH_INTERVAL
        )
        await self._run(w.append, arr, flush)

    async def close_file(self) -> None:
        w, self.writer = self.writer, None
        if w is not None:
            try:
                if w.ds is None:  # no frame arrived: still leave a complete layout
                    await self._run(w.create_data, {})
                await self._run(w.close)
            except Exception as ex:  # noqa: BLE001 - e.g. disk full: reported, the put succeeds
                await self.message(f"Error closing {w.path}: {ex}", error=True)
            if "RunTime" in self.specs:  # NDFileHDF5 only
                await self.set("RunTime", time.time() - w.t_open)

    async def start_capture(self) -> bool:
        mode = self.get("FileWriteMode")
        if self.capturing:
            return True
        if mode == "Single":
            await self.message("Capture is not used in Single mode", error=True)
            return False
        await self.set("NumCaptured_RBV", 0)
        self.buffer = []
        if mode == "Stream" and self.get("LazyOpen") != "Yes":
            if self.last is None:
                await self.message(
                    "ERROR: must collect an array to get dimensions first", error=True
                )
                return False
            if not await self.open_file(self.last.data.shape, self.last.data.dtype):
                return False
        self.capturing = True
        await self.set("Capture_RBV", "Capture")
        return True

    async def stop_capture(self, reason: str = "") -> None:
        if not self.capturing:
            await self.set("Capture_RBV", "Done")
            return
        self.capturing = False
        # wait for frames already queued to this plugin to be written first
        mode = self.get("FileWriteMode")
        if mode == "Capture" and self.buffer and self.get("AutoSave") == "Yes":
            await self.write_file_now()
        await self.close_file()
        self.buffer = []
        await self.set("Capture", "Done")
        await self.set("Capture_RBV", "Done")
        if reason:
            await self.message(reason)

    async def write_file_now(self) -> None:
        """WriteFile: Single mode writes the last array; Capture mode the buffer."""
        frames = (
            self.buffer
            if self.get("FileWriteMode") == "Capture"
            else ([self.last] if self.last is not None else [])
        )
        if not frames:
            await self.message("No arrays to write", error=True)
            return
        if self.writer is None and not await self.open_file(
            frames[0].data.shape, frames[0].data.dtype
        ):
            return
        for f in frames:
            await self.write_frame(f)
        await self.close_file()
        self.buffer = []

    # -- frames
    async def process(self, arr: NDArr) -> NDArr | None:
        async with self._lock:
            self.last = arr
            mode = self.get("FileWriteMode")
            if mode == "Single":
                if self.get("AutoSave") == "Yes" and await self.open_file(
                    arr.data.shape, arr.data.dtype
                ):
                    await self.write_frame(arr)
                    await self.close_file()
                return None
            if not self.capturing:
                return None
            n = int(self.get("NumCaptured_RBV"))
            target = int(self.get("NumCapture"))
            if mode == "Capture":
                self.buffer.append(arr)
                await self.set("NumCaptured_RBV", n + 1)
                if target > 0 and n + 1 >= target:
                    await self.stop_capture()
                return None
            # Stream
            if self.writer is None and not await self.open_file(arr.data.shape, arr.data.dtype):
                return None
            if self.writer.shape != arr.data.shape:
                await self.message("ERROR: array dimensions changed during capture", True)
                return None
            try:
                await self.write_frame(arr)
            except Exception as ex:  # noqa: BLE001
                await self.message(
                    f"Error writing {self.writer.path}: {_errno_first(ex)}", error=True
                )
                return None
            await self.set("NumCaptured_RBV", n + 1)
            if target > 0 and n + 1 >= target:
                await self.stop_capture()
            return None

    async def shutdown_writer(self) -> None:
        async with self._lock:
            self.capturing = False
            await self.close_file()
        self.executor.shutdown(wait=True)


class ImageFileWriter:
    """One-image file of NDFileTIFF/NDFileJPEG/NDFileMagick, written by Pillow.

    These ADCore writers hold one array per file; in Capture/Stream mode the simulator keeps
    the first array of the capture (ADCore would open a new numbered file per array).
    """

    FORMATS = {"NDFileTIFF": "TIFF", "NDFileJPEG": "JPEG", "NDFileMagick": "TIFF"}

    def __init__(self, path: str, shape, dtype, plugin_type: str, quality: int = 100):
        self.path = path
        self.shape = tuple(shape)
        self.fmt = self.FORMATS.get(plugin_type)
        self.quality = quality
        self.ds = None
        self.t_open = self.t_flush = time.time()
        self.first: np.ndarray | None = None
        with open(path, "wb"):
            pass  # created at open, as ADCore does

    def create_data(self, comp: dict) -> None:
        self.ds = True

    def append(self, arr: NDArr, flush: bool = True) -> float:
        if self.first is None:
            self.first = np.array(arr.data)
        return 0.0

    def close(self) -> None:
        if self.first is None or self.fmt is None:
            return
        from PIL import Image

        a = self.first
        if self.fmt == "JPEG" and a.dtype != np.uint8:
            a = np.clip(a, 0, 255).astype(np.uint8)
        elif a.dtype == np.int8:
            a = a.view(np.uint8)
        elif a.dtype == np.uint32:
            a = a.astype(np.int32)
        elif a.dtype == np.float64:
            a = a.astype(np.float32)
        img = Image.fromarray(a)
        kw = {"quality": self.quality} if self.fmt == "JPEG" else {}
        img.save(self.path, format=self.fmt, **kw)


class FileBehaviour(HDF5Behaviour):
    """NDFileTIFF / NDFileJPEG / NDFileNetCDF / NDFileNexus / NDFileMagick: FilePath checks,
    numbering, Capture and FullFileName like HDF1; TIFF and JPEG (and Magick, as TIFF) files
    are written with Pillow; netCDF and Nexus files are created empty (not modelled)."""

    async def open_file(self, shape, dtype) -> bool:
        path = self.get("FilePath_RBV") or self.get("FilePath")
        if not await self.check_path(path):
            return False
        fname = self._next_name()
        quality = int(self.get("JPEGQuality")) if "JPEGQuality" in self.specs else 100
        try:
            self.writer = await self._run(
                ImageFileWriter, fname, tuple(shape), dtype, self.plugin_type, quality
            )
        except Exception as ex:  # noqa: BLE001 - reported like ADCore does
            self.writer = None
            await self.message(f"Error opening file {fname}: {ex}", error=True)
            return False
        await self.set("FullFileName_RBV", fname)
        if self.get("AutoIncrement") == "Yes":
            n = int(self.get("FileNumber_RBV")) + 1
            await self.set("FileNumber", n)
            await self.set("FileNumber_RBV", n)
        await self.message(f"Opened {fname}")
        return True

    async def write_frame(self, arr: NDArr) -> None:
        if self.writer.ds is None:
            await self._run(self.writer.create_data, {})
        await self._run(self.writer.append, arr, True)


class PassThroughBehaviour(PluginBehaviour):
    """A plugin the simulator does not model (Proc1, Trans1, Over1, CC1, CB1, ...): arrays
    pass through unchanged, so chains such as Proc1 -> ROI1 -> Stats1 still see frames."""

    async def process(self, arr: NDArr) -> NDArr | None:
        return arr


#: File-writing plugins of the common set (behaviour FileBehaviour).
FILE_PLUGINS = frozenset({"TIFF1:", "JPEG1:", "netCDF1:", "Nexus1:", "Magick1:"})

PLUGIN_BEHAVIOUR = {
    "image1:": ImageBehaviour,
    "Pva1:": PvaBehaviour,
    "ROI1:": ROIBehaviour,
    "Stats1:": StatsBehaviour,
    "HDF1:": HDF5Behaviour,
}


# ---------------------------------------------------------------------------- the IOC
@dataclass
class _State:
    acquiring: bool = False
    abort: asyncio.Event | None = None
    task: asyncio.Task | None = None
    unique_id: int = 0
    tasks: set = field(default_factory=set)


class SimDetectorIOC(PVGroup):
    """The simulated detector: sub-groups ``cam`` (cam1:), ``hdf1`` (HDF1:), ``image``
    (image1:), ``pva`` (Pva1:), ``roi1`` (ROI1:), ``stats1`` (Stats1:); ``pvdb`` holds every
    PV name -> channel for one caproto server.

    The sub-group classes are generated from the record table per instance (ArrayData's
    type and length follow ``frame_shape`` / ``data_type``), so they are attached in
    ``__init__`` rather than declared as ``SubGroup`` attributes; ``pvdb`` merges theirs.
    """

    def __init__(
        self,
        prefix: str = "kad:",
        *,
        data_dir: Path,
        frame_shape: tuple[int, int] = (1024, 1024),
        data_type: str = "UInt8",
        positions: Callable[[], dict[str, float]] | None = None,
        **kwargs,
    ):
        if data_type not in DTYPES:
            raise ValueError(f"data_type must be one of {sorted(DTYPES)}")
        # caproto expands {macros} in prefixes with str.format: keep braces literal
        super().__init__(prefix.replace("{", "{{").replace("}", "}}"), **kwargs)
        self.data_dir = Path(data_dir)
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.positions = positions
        self.synth = FrameSynth(self.frame_shape, data_type)
        self._synth = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="synth")
        self.state = _State()
        self._closed = False
        ny, nx = self.frame_shape
        nelm = nx * ny
        array_kw = {
            "ArrayData": dict(
                dtype=CA_ARRAY_TYPES[data_type],
                max_length=nelm,
                value=np.zeros(nelm, dtype=DTYPES[data_type] if data_type != "Int8" else np.uint8),
            )
        }
        groups = {}
        for suffix, (_, ptype, port, upstream) in _groups().items():
            base = (
                CamBehaviour
                if suffix == "cam1:"
                else PLUGIN_BEHAVIOUR.get(
                    suffix, FileBehaviour if suffix in FILE_PLUGINS else PassThroughBehaviour
                )
            )
            overrides = array_kw if suffix == "image1:" else {}
            cls = make_group_class(suffix, base=base, overrides=overrides)
            grp = cls(
                prefix=(prefix + suffix).replace("{", "{{").replace("}", "}}"),
                ioc=self,
                parent=self,
            )
            if suffix != "cam1:":
                grp.plugin_type, grp.port = ptype, port
            groups[suffix] = (grp, ptype, port, upstream)
        self.cam = groups["cam1:"][0]
        self.image = groups["image1:"][0]
        self.pva = groups["Pva1:"][0]
        self.roi1 = groups["ROI1:"][0]
        self.stats1 = groups["Stats1:"][0]
        self.hdf1 = groups["HDF1:"][0]
        self.plugins: list[PluginBehaviour] = [
            self.roi1,
            self.stats1,
            self.hdf1,
            self.image,
            self.pva,
        ]
        self.plugins += [
            g for sfx, (g, *_) in groups.items() if sfx != "cam1:" and g not in self.plugins
        ]
        for grp, *_ in groups.values():
            self.pvdb.update(grp.pvdb)
        self._initial_values(groups, data_type)

    # -- start-up values (set synchronously: channel values before the server runs)
    def _initial_values(self, groups, data_type: str) -> None:
        ny, nx = self.frame_shape

        def put(grp, name, value):
            inst = grp.pv(name)
            inst._data["value"] = inst.preprocess_value(value)

        cam = self.cam
        for name, val in (
            ("PortName_RBV", "SIM1"),
            ("MaxSizeX_RBV", nx),
            ("MaxSizeY_RBV", ny),
            ("SizeX", nx),
            ("SizeX_RBV", nx),
            ("SizeY", ny),
            ("SizeY_RBV", ny),
            ("ArraySizeX_RBV", nx),
            ("ArraySizeY_RBV", ny),
            ("ArraySize_RBV", nx * ny * np.dtype(DTYPES[data_type]).itemsize),
            ("DataType", data_type),
            ("DataType_RBV", data_type),
            ("AcquireTime", 0.1),
            ("AcquireTime_RBV", 0.1),
            ("AcquirePeriod", 0.1),
            ("AcquirePeriod_RBV", 0.1),
            ("StatusMessage_RBV", "Idle"),
            ("DriverVersion_RBV", "3.4.0"),
        ):
            put(cam, name, val)
        path = str(self.data_dir)
        if not path.endswith("/"):
            path += "/"
        for suffix, (grp, ptype, port, upstream) in groups.items():
            if suffix == "cam1:":
                continue
            put(grp, "PortName_RBV", port)
            put(grp, "PluginType_RBV", ptype)
            put(grp, "NDArrayPort", upstream)
            put(grp, "NDArrayPort_RBV", upstream)
            put(grp, "DriverVersion_RBV", "3.4.0")
        for name, val in (("SizeX", nx), ("SizeX_RBV", nx), ("SizeY", ny), ("SizeY_RBV", ny)):
            put(self.roi1, name, val)
        put(self.stats1, "MaxSizeX", nx)
        put(self.stats1, "MaxSizeY", ny)
        put(self.pva, "PvName_RBV", f"{self.prefix}Pva1:Image")
        # image1 starts with the cam's dimensions (a fresh real IOC has 0s, which makes
        # ophyd's ImagePlugin.image derived signal log "Invalid array size" tracebacks when a
        # client subscribes to ArrayData); HDF1 keeps 0s on purpose (priming, see above).
        for name, val in (
            ("NDimensions_RBV", 2),
            ("ArraySize0_RBV", nx),
            ("ArraySize1_RBV", ny),
            ("Dim0SA_RBV", nx),
            ("Dim1SA_RBV", ny),
            ("ArraySizeX_RBV", nx),
            ("ArraySizeY_RBV", ny),
            ("Dimensions_RBV", [nx, ny] + [0] * 8),
            ("DataType_RBV", data_type),
        ):
            put(self.image, name, val)
        hdf = self.hdf1
        for name, val in (
            ("FilePath", path),
            ("FilePath_RBV", path),
            ("FilePathExists_RBV", "Yes" if os.path.isdir(path) else "No"),
            ("FileName", "image"),
            ("FileName_RBV", "image"),
            ("FileWriteMode", "Stream"),
            ("FileWriteMode_RBV", "Stream"),
            ("NumCapture", 1),
            ("NumCapture_RBV", 1),
        ):
            put(hdf, name, val)

    # -- helpers
    @property
    def acquiring(self) -> bool:
        return self.state.acquiring

    def schedule(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    async def publish(self, port: str, arr: NDArr) -> None:
        """Pass ``arr`` (produced by ``port``) to every plugin connected to that port."""
        for p in self.plugins:
            if p.get("NDArrayPort") == port:
                await p.receive(arr)

    async def wait_plugins_idle(self, timeout: float = 300.0) -> None:
        t_end = time.monotonic() + timeout
        while any(p.pending for p in self.plugins) and time.monotonic() < t_end:
            await asyncio.sleep(0.001)

    def request_data_type(self, name: str) -> None:
        """Rebuild the frame bank for ``name`` (the latest request wins), in the background."""
        self._dtype_wanted = name
        self.schedule(self.set_data_type())

    async def set_data_type(self, name: str | None = None) -> None:
        """Make the frame bank match the latest requested data type (serialised)."""
        if name is not None:
            self._dtype_wanted = name
        if getattr(self, "_dtype_lock", None) is None:
            self._dtype_lock = asyncio.Lock()
        async with self._dtype_lock:
            wanted = getattr(self, "_dtype_wanted", None)
            if wanted is None or wanted == self.synth.dtype_name:
                return
            loop = asyncio.get_running_loop()
            self.synth = await loop.run_in_executor(None, FrameSynth, self.frame_shape, wanted)
            await self.update_cam_geometry()

    def _geometry(self):
        ny, nx = self.frame_shape
        cam = self.cam
        x0 = min(max(int(cam.get("MinX")), 0), nx - 1)
        y0 = min(max(int(cam.get("MinY")), 0), ny - 1)
        sx = int(cam.get("SizeX"))
        sy = int(cam.get("SizeY"))
        sx = nx - x0 if sx <= 0 else min(sx, nx - x0)
        sy = ny - y0 if sy <= 0 else min(sy, ny - y0)
        return x0, y0, sx, sy

    async def update_cam_geometry(self) -> None:
        x0, y0, sx, sy = self._geometry()
        cam = self.cam
        await cam.set("ArraySizeX_RBV", sx, only_changed=True)
        await cam.set("ArraySizeY_RBV", sy, only_changed=True)
        await cam.set("ArraySize_RBV", sx * sy * self.synth.dtype.itemsize, only_changed=True)

    def make_frame(self, data: np.ndarray | None = None) -> NDArr:
        """The next NDArray (``data``: pixels from :meth:`frame_data`, made now if None)."""
        if data is None:
            data = self.frame_data()
        self.state.unique_id += 1
        now = time.time()
        sec = int(now) - EPICS_EPOCH
        nsec = int((now % 1) * 1e9)
        return NDArr(data, self.state.unique_id, sec + nsec / 1e9, sec, nsec)

    def frame_data(self) -> np.ndarray:
        """Pixels of the next frame (peak at the motor positions now, cam crop/reverse)."""
        try:
            pos = self.positions() if self.positions is not None else None
        except Exception:  # noqa: BLE001 - motors unavailable: centred peak
            pos = None
        data = self.synth.frame(pos)
        x0, y0, sx, sy = self._geometry()
        ny, nx = self.frame_shape
        if (x0, y0, sx, sy) != (0, 0, nx, ny):
            data = data[y0 : y0 + sy, x0 : x0 + sx]
        if self.cam.get("ReverseX") == "Yes":
            data = data[:, ::-1]
        if self.cam.get("ReverseY") == "Yes":
            data = data[::-1, :]
        return data

    # -- acquisition
    async def start_acquisition(self) -> None:
        if self.state.acquiring or self._closed:
            return
        cam = self.cam
        self.state.acquiring = True
        self.state.abort = asyncio.Event()
        await cam.set("AcquireBusy", "Acquiring")
        await cam.set("Acquire_RBV", "Acquiring")
        await cam.set("DetectorState_RBV", "Acquire")
        await cam.set("StatusMessage_RBV", "Acquiring data")
        await cam.set("NumImagesCounter_RBV", 0)
        loop = asyncio.get_running_loop()
        self.state.task = loop.create_task(self._acquire())

    async def stop_acquisition(self) -> None:
        if self.state.acquiring and self.state.abort is not None:
            self.state.abort.set()

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless aborted; True when aborted."""
        ev = self.state.abort
        if seconds <= 0:
            await asyncio.sleep(0)
            return ev.is_set()
        try:
            await asyncio.wait_for(ev.wait(), seconds)
            return True
        except TimeoutError:
            return ev.is_set()

    async def _acquire(self) -> None:
        cam = self.cam
        aborted = False
        try:
            await self.set_data_type()  # a DataType write still being applied
            mode = cam.get("ImageMode")
            total = {"Single": 1, "Multiple": max(int(cam.get("NumImages")), 1)}.get(
                mode, float("inf")
            )
            i = 0
            loop = asyncio.get_running_loop()
            while i < total:
                t0 = loop.time()
                acq_time = max(float(cam.get("AcquireTime")), 0.0)
                period = max(acq_time, float(cam.get("AcquirePeriod")))
                if total != float("inf"):
                    await cam.set("TimeRemaining_RBV", (total - i) * period)
                await cam.set("DetectorState_RBV", "Acquire", only_changed=True)
                # the pixels are synthesised in a thread during the exposure (the readout of a
                # simulated frame then costs no exposure time; positions read at its start)
                pixels = loop.run_in_executor(self._synth, self.frame_data)
                if await self._wait(acq_time):
                    aborted = True
                    with contextlib.suppress(Exception):
                        await pixels
                    break
                await cam.set("DetectorState_RBV", "Readout")
                arr = self.make_frame(await pixels)
                i += 1
                arr.end_of_acquisition = i >= total
                cam._counter += 1
                await cam.set("ArrayCounter_RBV", cam._counter)
                await cam.set("NumImagesCounter_RBV", i)
                await cam.set("NumExposuresCounter_RBV", 1)
                await cam._tick_rate()
                if cam.get("ArrayCallbacks") == "Enable":
                    await self.publish("SIM1", arr)
                if i >= total:
                    break
                remaining = period - (loop.time() - t0)
                if await self._wait(remaining):
                    aborted = True
                    break
        except Exception:  # noqa: BLE001 - keep the IOC alive; report like a driver error
            logger.exception("acquisition failed")
            await cam.set("StatusMessage_RBV", "Acquisition error (see IOC log)")
        finally:
            await cam.set("Acquire", "Done")
            await cam.set("Acquire_RBV", "Done")
            await cam.set("TimeRemaining_RBV", 0.0)
            await cam.set("DetectorState_RBV", "Aborted" if aborted else "Idle")
            await cam.set(
                "StatusMessage_RBV", "Acquisition aborted" if aborted else "Acquisition completed"
            )
            if cam.get("WaitForPlugins") == "Yes" or aborted:
                await self.wait_plugins_idle()
            if aborted and self.hdf1.capturing:
                async with self.hdf1._lock:
                    await self.hdf1.stop_capture("Capture stopped: acquisition aborted")
            self.state.acquiring = False
            await cam.set("AcquireBusy", "Done")

    async def shutdown(self) -> None:
        """Stop acquiring and close any open HDF5 file (the server calls this on SIGTERM)."""
        if self._closed:
            return
        self._closed = True
        task = self.state.task
        if self.state.acquiring and self.state.abort is not None:
            self.state.abort.set()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 5.0)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                task.cancel()
        await self.hdf1.shutdown_writer()
        self._synth.shutdown(wait=False)


def _groups():
    from .ad_table import GROUPS

    return GROUPS


def main(argv: list[str] | None = None) -> int:
    """Detector only: ``python -m adscan.iocs.simdet --prefix kad: --data-dir D --port N``."""
    import argparse
    import signal

    from adscan import epics_env

    p = argparse.ArgumentParser(description="simulated ADSimDetector v3.4 IOC (detector only)")
    p.add_argument("--prefix", default="kad:")
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/adscan-simdet"))
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--cols", type=int, default=1024)
    p.add_argument("--data-type", default="UInt8")
    args = p.parse_args(argv)
    epics_env.apply_loopback(ca_port=args.port)

    async def run() -> int:
        from caproto.asyncio.server import Context

        t0 = time.monotonic()
        args.data_dir.mkdir(parents=True, exist_ok=True)
        ioc = SimDetectorIOC(
            args.prefix,
            data_dir=args.data_dir,
            frame_shape=(args.rows, args.cols),
            data_type=args.data_type,
        )
        ctx = Context(ioc.pvdb, interfaces=["127.0.0.1"])
        server = asyncio.create_task(ctx.run(log_pv_names=False))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await asyncio.sleep(0.2)
        print(
            f"READY simdet pvs={len(ioc.pvdb)} prefix={args.prefix} port={ctx.port} "
            f"startup_s={time.monotonic() - t0:.2f}",
            flush=True,
        )
        await asyncio.wait(
            {server, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        await ioc.shutdown()
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await server
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
