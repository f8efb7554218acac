"""NDPlugins as threads, like ADCore's: queue, BlockingCallbacks, DroppedArrays; ROI, Stats,
StdArrays (image1), Pva (NTNDArray over pvAccess with p4p) and pass-through plugins.

A producer (the driver's acquisition thread or an upstream plugin) calls
:meth:`Plugin.receive` for each plugin whose NDArrayPort names it.  With
BlockingCallbacks=Yes the plugin works in the producer's thread; otherwise the array goes to
the plugin's queue (QueueSize deep) and the plugin's own thread processes it.  A full queue
drops the array *and counts it* in DroppedArrays (nothing is lost silently).  ``pending``
counts arrays received and not yet processed; the driver waits for every plugin's
``pending`` to reach 0 before AcquireBusy falls when WaitForPlugins=Yes.  numpy reductions
and LZ4 release the GIL, so ROI, Stats and the HDF5 writer overlap.

Plugins of ``commonPlugins.cmd`` without a model of their own (Proc, Trans, Over, CC, CB,
Codec, FFT, ROIStat, Attr, Scatter, Gather, BadPix, ...) are *pass-through*: they count,
report the array's dimensions and pass it on unchanged to their clients.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import numpy as np

from .frames import DTYPES, NDArr
from .records import Group

logger = logging.getLogger("adscan.iocs.plugins")


class Plugin:
    """Common NDPluginDriver behaviour (see the module docstring)."""

    #: the output records :meth:`on_put` acts on (the others are plain parameters)
    ACTIVE_PUTS = frozenset({"ArrayCounter", "DroppedArrays"})

    def __init__(self, ioc, group: Group, plugin_type: str, port: str):
        self.ioc = ioc
        self.g = group
        self.plugin_type = plugin_type
        self.port = port
        group.on_put = self.on_put
        group.active = self.ACTIVE_PUTS
        self.cv = threading.Condition()
        self.q: collections.deque[NDArr] = collections.deque()
        self.pending = 0
        self.counter = 0
        self.dropped = 0
        self._last_dims = None
        self._rate = (time.monotonic(), 0)
        self._stop = False
        self.thread = threading.Thread(target=self._run, name=port, daemon=True)
        self.thread.start()

    # -- puts (dispatcher thread)
    def on_put(self, name: str, value):
        if name == "ArrayCounter":
            self.counter = int(value)
        elif name == "DroppedArrays":
            self.dropped = int(value)
            self.g.set("DroppedArrays_RBV", self.dropped)
        return value

    @property
    def enabled(self) -> bool:
        return self.g.get("EnableCallbacks") == "Enable"

    # -- arrays in
    def receive(self, arr: NDArr) -> None:
        if not self.enabled:
            return
        if self.g.get("BlockingCallbacks") == "Yes":
            with self.cv:
                self.pending += 1
            try:
                self._process(arr)
            finally:
                with self.cv:
                    self.pending -= 1
                    self.cv.notify_all()
            return
        size = max(int(self.g.get("QueueSize")), 1)
        with self.cv:
            if len(self.q) >= size:
                self.dropped += 1
                dropped = self.dropped
            else:
                dropped = None
                self.q.append(arr)
                self.pending += 1
                self.cv.notify_all()
            free = size - len(self.q)
        if dropped is not None:
            self.g.set_pair("DroppedArrays", dropped)
            logger.warning("%s: queue full, array %d dropped", self.port, arr.unique_id)
        if dropped is None and free < size - 1:  # the plugin thread posts it as it takes arrays
            self.g.set("QueueFree", free)

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.q and not self._stop:
                    self.cv.wait()
                if self._stop and not self.q:
                    return
                arr = self.q.popleft()
            try:
                self._process(arr)
            except Exception:  # noqa: BLE001 - a plugin error must not kill the thread
                logger.exception("%s: processing failed", self.port)
            finally:
                with self.cv:
                    self.pending -= 1
                    free = max(int(self.g.get("QueueSize")), 1) - len(self.q)
                    self.cv.notify_all()
                self.g.set("QueueFree", free)

    def wait_idle(self, deadline: float) -> bool:
        with self.cv:
            return self.cv.wait_for(
                lambda: self.pending == 0, timeout=max(deadline - time.monotonic(), 0)
            )

    def stop(self) -> None:
        with self.cv:
            self._stop = True
            self.cv.notify_all()

    def _process(self, arr: NDArr) -> None:
        t0 = time.perf_counter()
        out = self.process(arr)
        self.update_info(arr if out is None else out)
        self.g.set("ExecutionTime_RBV", (time.perf_counter() - t0) * 1e3)
        if out is not None:
            self.ioc.publish(self.port, out)

    def process(self, arr: NDArr) -> NDArr | None:
        """Plugin-specific work; return an output array to pass downstream (or None)."""
        return arr

    def update_info(self, arr: NDArr) -> None:
        g = self.g
        self.counter += 1
        g.set("ArrayCounter_RBV", self.counter)
        g.set("UniqueId_RBV", arr.unique_id)
        g.set("TimeStamp_RBV", arr.timestamp)
        g.set("EpicsTSSec_RBV", arr.ts_sec)
        g.set("EpicsTSNsec_RBV", arr.ts_nsec)
        key = (arr.data.shape, arr.data.dtype, arr.color_mode)
        if key != self._last_dims:
            self._last_dims = key
            full = (arr.dims() + [0] * 10)[:10]
            g.set("NDimensions_RBV", arr.data.ndim)
            g.set("Dimensions_RBV", np.array(full, dtype=np.int32))
            for i in range(10):
                g.set(f"Dim{i}SA_RBV", full[i], only_changed=True)
                g.set(f"ArraySize{i}_RBV", full[i], only_changed=True)
            g.set("ArraySizeX_RBV", full[0])
            g.set("ArraySizeY_RBV", full[1])
            g.set("ArraySizeZ_RBV", full[2])
            g.set("ArraySize_RBV", int(arr.data.nbytes))
            g.set("DataType_RBV", arr.dtype_name)
            g.set("ColorMode_RBV", arr.color_mode)
        t, n = self._rate
        now = time.monotonic()
        if now - t >= 1.0:
            g.set("ArrayRate_RBV", max((self.counter - n) / (now - t), 0.0))
            self._rate = (now, self.counter)


class ROIPlugin(Plugin):
    def process(self, arr: NDArr) -> NDArr | None:
        g = self.g
        data = arr.data
        if data.ndim != 2:
            return arr
        ny, nx = data.shape
        g.set("MaxSizeX_RBV", nx, only_changed=True)
        g.set("MaxSizeY_RBV", ny, only_changed=True)

        def axis(c, n):
            if g.get(f"Enable{c}") != "Enable":
                return 0, n, 1, False
            start = min(max(int(g.get(f"Min{c}")), 0), n - 1)
            size = int(g.get(f"Size{c}"))
            if g.get(f"AutoSize{c}") == "Yes" or size <= 0:
                size = n - start
            size = min(size, n - start)
            return start, size, max(int(g.get(f"Bin{c}")), 1), g.get(f"Reverse{c}") == "Yes"

        x0, sx, bx, rx = axis("X", nx)
        y0, sy, by, ry = axis("Y", ny)
        view = data[y0 : y0 + sy, x0 : x0 + sx]
        if bx > 1 or by > 1:
            sy2, sx2 = (sy // by) * by, (sx // bx) * bx
            v = view[:sy2, :sx2].reshape(sy2 // by, by, sx2 // bx, bx)
            binned = v.sum(axis=(1, 3), dtype=np.float64 if data.dtype.kind == "f" else np.int64)
            if data.dtype.kind != "f":
                info = np.iinfo(data.dtype)
                binned = np.clip(binned, info.min, info.max)
            view = binned.astype(data.dtype)
        if rx:
            view = view[:, ::-1]
        if ry:
            view = view[::-1, :]
        out_type = g.get("DataTypeOut")
        if g.get("EnableScale") == "Enable":
            view = view / (float(g.get("Scale")) or 1.0)
            if out_type == "Automatic":
                view = view.astype(data.dtype)
        if out_type != "Automatic" and view.dtype != np.dtype(DTYPES[out_type]):
            view = view.astype(DTYPES[out_type])
        return arr.like(view)


class StatsPlugin(Plugin):
    def process(self, arr: NDArr) -> NDArr | None:
        a = arr.data
        if a.size == 0:
            return None
        g = self.g
        if g.get("ComputeStatistics") == "Yes":
            self._statistics(a)
        if g.get("ComputeCentroid") == "Yes":
            self._centroid(a)
        if g.get("ComputeHistogram") == "Yes":
            self._histogram(a)
        if g.get("ComputeProfiles") == "Yes":
            self._profiles(a)
        return None

    def _statistics(self, a: np.ndarray) -> None:
        g = self.g
        n = a.size
        flat = a.ravel()
        acc = np.float64 if a.dtype.kind == "f" else np.int64
        total = float(np.add.reduce(flat, dtype=acc))
        imax, imin = int(np.argmax(flat)), int(np.argmin(flat))
        vmax, vmin = float(flat[imax]), float(flat[imin])
        mean = total / n
        sq = (
            float(np.dot(flat, flat))
            if a.dtype.kind == "f"
            else float(np.einsum("i,i->", flat, flat, dtype=np.int64))
        )
        var = max(sq / n - mean * mean, 0.0)
        ny, nx = a.shape if a.ndim == 2 else (1, a.size)
        bgd = 0.0
        w = int(g.get("BgdWidth"))
        if w > 0 and a.ndim == 2 and nx > 2 * w and ny > 2 * w:
            border = np.concatenate(
                [a[:w].ravel(), a[-w:].ravel(), a[w:-w, :w].ravel(), a[w:-w, -w:].ravel()]
            ).astype(np.float64)
            bgd = float(border.mean()) * n
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
            g.set_pair(name, float(val), only_changed=True)
        g.set("SigmaValue", var**0.5)
        g.set("Sigma_RBV", var**0.5)

    def _centroid(self, a: np.ndarray) -> None:
        if a.ndim != 2:
            return
        g = self.g
        thr = float(g.get("CentroidThreshold"))
        w = a.astype(np.float64)
        if thr > 0:
            w = np.where(w >= thr, w, 0.0)
        tot = float(w.sum())
        g.set_pair("CentroidTotal", tot)
        if tot <= 0:
            return
        px, py = w.sum(axis=0), w.sum(axis=1)
        x, y = np.arange(px.size), np.arange(py.size)
        cx, cy = float(px @ x) / tot, float(py @ y) / tot
        sx = (float(px @ (x - cx) ** 2) / tot) ** 0.5
        sy = (float(py @ (y - cy) ** 2) / tot) ** 0.5
        vals = {"CentroidX": cx, "CentroidY": cy, "SigmaX": sx, "SigmaY": sy}
        if sx > 0:
            vals["SkewX"] = float(px @ (x - cx) ** 3) / tot / sx**3
            vals["KurtosisX"] = float(px @ (x - cx) ** 4) / tot / sx**4 - 3
        if sy > 0:
            vals["SkewY"] = float(py @ (y - cy) ** 3) / tot / sy**3
            vals["KurtosisY"] = float(py @ (y - cy) ** 4) / tot / sy**4 - 3
        for name, val in vals.items():
            g.set_pair(name, val)

    def _histogram(self, a: np.ndarray) -> None:
        g = self.g
        size = max(min(int(g.get("HistSize")), 256), 1)
        lo, hi = float(g.get("HistMin")), float(g.get("HistMax"))
        if hi <= lo:
            return
        hist, edges = np.histogram(a, bins=size, range=(lo, hi))
        p = hist[hist > 0] / max(hist.sum(), 1)
        g.set("Histogram_RBV", np.resize(hist.astype(np.float64), 256))
        g.set("HistogramX_RBV", np.resize(edges[:-1].astype(np.float64), 256))
        g.set_pair("HistBelow", int(np.count_nonzero(a < lo)))
        g.set_pair("HistAbove", int(np.count_nonzero(a > hi)))
        g.set_pair("HistEntropy", float(-(p * np.log2(p)).sum()))

    def _profiles(self, a: np.ndarray) -> None:
        if a.ndim != 2:
            return
        g = self.g
        ny, nx = a.shape
        cx = min(max(int(g.get("CursorX")), 0), nx - 1)
        cy = min(max(int(g.get("CursorY")), 0), ny - 1)

        def fit(v):
            out = np.zeros(2048)
            v = np.asarray(v, dtype=np.float64)[:2048]
            out[: v.size] = v
            return out

        g.set("ProfileSizeX_RBV", nx)
        g.set("ProfileSizeY_RBV", ny)
        g.set("ProfileAverageX_RBV", fit(a.mean(axis=0)))
        g.set("ProfileAverageY_RBV", fit(a.mean(axis=1)))
        g.set("ProfileCursorX_RBV", fit(a[cy, :]))
        g.set("ProfileCursorY_RBV", fit(a[:, cx]))


class StdArraysPlugin(Plugin):
    """image1: ArrayData holds the last array (converted to the waveform's element type)."""

    def process(self, arr: NDArr) -> NDArr | None:
        rec = self.g.records["ArrayData"]
        flat = arr.data.ravel()
        nelm = rec._nelm if hasattr(rec, "_nelm") else flat.size
        dtype = rec._dtype if hasattr(rec, "_dtype") else flat.dtype
        if flat.size > nelm:
            flat = flat[:nelm]
        if flat.dtype != dtype:
            flat = (
                flat.view(dtype)
                if flat.dtype.itemsize == np.dtype(dtype).itemsize
                and flat.dtype.kind in "ui"
                and np.dtype(dtype).kind in "ui"
                else flat.astype(dtype)
            )
        rec.set(flat)
        return None


class PvaPlugin(Plugin):
    """NDPluginPva: each array posted as an NTNDArray (uniqueId, dimensions, timestamps)."""

    def __init__(self, *args, pv=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pv = pv
        from p4p.nt import NTNDArray

        self.nt = NTNDArray()

    def process(self, arr: NDArr) -> NDArr | None:
        if self.pv is not None:
            from .frames import EPICS_EPOCH

            v = self.nt.wrap(arr.data, attrib={"ColorMode": 0})
            v["uniqueId"] = int(arr.unique_id)
            ts = {"secondsPastEpoch": arr.ts_sec + EPICS_EPOCH, "nanoseconds": arr.ts_nsec}
            v["timeStamp"] = ts
            v["dataTimeStamp"] = ts
            self.pv.post(v)
        return None


class PassThroughPlugin(Plugin):
    """A commonPlugins.cmd plugin modelled as identity (see the module docstring)."""
