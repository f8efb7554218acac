"""NDArrays and fresh simulated frames: Poisson background and peak, the peak at the motors.

Every frame is new:

* the background is a random window of a precomputed pool of Poisson(5) counts four frames
  long (a window costs one copy; its total comes from the pool's prefix sums);
* the peak (a 2-D Gaussian whose centre and height follow the first two motor positions:
  centre = frame centre + position * size/8, height = 200 * exp(-(a^2 + b^2)/2) counts) is
  drawn as Poisson counts where it exceeds one count and *added* to the window (a sum of
  independent Poisson variables is Poisson), so the peak has counting statistics too;
* no two frames share a total by construction: the synthesiser remembers the totals of the
  last 100,000 frames and a frame whose total was seen gets one count more on its first
  pixel(s) until it is new (rare, so the totals keep their Poisson spread).

Cost: about 1.5-2.5 ms per 1024x1024 UInt8 frame (copy + ~40k Poisson draws).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np

EPICS_EPOCH = 631152000  # 1990-01-01 in POSIX seconds
#: Totals of any RECENT consecutive frames differ.
RECENT = 100_000

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


@dataclass
class NDArr:
    """One NDArray travelling between ports (ADCore's NDArray: data, uniqueId, timestamps)."""

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

    @classmethod
    def new(cls, data: np.ndarray, unique_id: int) -> NDArr:
        now = time.time()
        sec = int(now) - EPICS_EPOCH
        nsec = int((now % 1) * 1e9)
        return cls(data, unique_id, sec + nsec / 1e9, sec, nsec)


class FrameSynth:
    """Fresh frames of one shape and data type (see the module docstring)."""

    BACKGROUND = 5.0
    HEIGHT = 200.0

    def __init__(self, shape: tuple[int, int], dtype_name: str, seed: int | None = None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype_name = dtype_name
        self.dtype = np.dtype(DTYPES[dtype_name])
        self.scale = {"Int8": 0.5, "UInt8": 1.0, "Int16": 100.0}.get(dtype_name, 256.0)
        self.rng = np.random.default_rng(seed)
        ny, nx = self.shape
        self.npix = nx * ny
        n = self.npix * 4
        counts = self.rng.poisson(self.BACKGROUND * self.scale, n)
        self.pool = counts.astype(self.dtype)
        self.cums = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        self.vmax = int(np.iinfo(self.dtype).max) if self.dtype.kind in "ui" else None
        self.counter = 0
        self._seen: set[int] = set()
        self._order: collections.deque[int] = collections.deque()
        self._key = None
        self._peak: tuple[slice, slice, np.ndarray] | None = None

    def _remember(self, total: int) -> None:
        self._seen.add(total)
        self._order.append(total)
        if len(self._order) > RECENT:
            self._seen.discard(self._order.popleft())

    def _peak_lambda(self, a: float, b: float):
        key = (round(a, 4), round(b, 4))
        if key == self._key:
            return self._peak
        ny, nx = self.shape
        cx, cy = nx / 2 + a * nx / 8, ny / 2 + b * ny / 8
        height = self.HEIGHT * np.exp(-(a * a + b * b) / 2) * self.scale
        sx, sy = max(nx / 32, 1.0), max(ny / 32, 1.0)
        reach = np.sqrt(2 * np.log(max(height, 1.0001)))  # where the peak drops to 1 count
        x0, x1 = int(max(cx - reach * sx, 0)), int(min(cx + reach * sx + 1, nx))
        y0, y1 = int(max(cy - reach * sy, 0)), int(min(cy + reach * sy + 1, ny))
        if x1 <= x0 or y1 <= y0:
            self._peak = None
        else:
            gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sx) ** 2)
            gy = height * np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sy) ** 2)
            self._peak = (slice(y0, y1), slice(x0, x1), np.outer(gy, gx))
        self._key = key
        return self._peak

    def frame(self, positions: list[float] | None = None) -> np.ndarray:
        """The next frame; ``positions``: motor positions (first two used; none: centred)."""
        vals = list(positions or [])
        a = float(vals[0]) if vals else 0.0
        b = float(vals[1]) if len(vals) > 1 else 0.0
        ny, nx = self.shape
        off = int(self.rng.integers(0, self.pool.size - self.npix + 1))
        out = self.pool[off : off + self.npix].copy()
        total = int(self.cums[off + self.npix] - self.cums[off])
        img = out.reshape(ny, nx)
        peak = self._peak_lambda(a, b)
        if peak is not None:
            ys, xs, lam = peak
            draw = self.rng.poisson(lam)
            region = img[ys, xs]
            summed = region.astype(np.int64) + draw
            if self.vmax is not None:  # saturate like a detector (no wrap-around)
                np.minimum(summed, self.vmax - 1, out=summed)
            total += int(summed.sum()) - int(region.sum(dtype=np.int64))
            img[ys, xs] = summed
        self.counter += 1
        # distinct totals by construction: a total seen among the last RECENT frames gets
        # one more count (rare: the totals' spread is the background's Poisson width)
        extra = 0
        while total + extra in self._seen:
            extra += 1
        if extra:
            out[: min(extra, self.npix)] += 1
            extra = min(extra, self.npix)
        self._remember(total + extra)
        return img
