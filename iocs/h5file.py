"""ADCore-like HDF5 files and NDFile path/name rules (used by the HDF1 plugin's thread).

* Layout of ADCore's default: ``/entry/instrument/detector/data`` (one chunk per frame),
  ``/entry/data/data`` hard link (NXdata), ``/entry/instrument/NDAttributes/``
  (NDArrayUniqueId, NDArrayTimeStamp, NDArrayEpicsTSSec, NDArrayEpicsTSnSec),
  ``/entry/instrument/performance/timestamp``, NX_class attributes.
* LZ4 and no compression are written with HDF5 *direct chunk writes*: the chunk is
  compressed by python-lz4 (which releases the GIL) into the byte format of the HDF5 LZ4
  filter 32004 (big-endian original size and block size, then per block its compressed
  size and LZ4 block; a block LZ4 cannot shrink is stored raw), so any reader with
  hdf5plugin decodes it.  Other compressions go through h5py's filter pipeline.
* :func:`format_name` formats ``FileTemplate`` like ADCore's ``epicsSnprintf(full, max,
  template, path, name, number)``: surplus arguments are ignored (``%s%s.h5`` gives
  ``<name>.h5``).  :func:`check_path` is ADCore's ``checkPath``.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import time
from pathlib import Path

import numpy as np

from .frames import NDArr

#: printf conversion specifications (flags, width, precision, length modifiers, conversion).
_CONV = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t)?([diouxXeEfgGcsp%])")


def format_name(template: str, path: str, name: str, number: int) -> str:
    """``epicsSnprintf(template, path, name, number)`` as C formats it."""
    args = [path, name, int(number)]
    out, pos, i = [], 0, 0
    for m in _CONV.finditer(template):
        out.append(template[pos : m.start()])
        pos = m.end()
        flags, width, prec, _, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        arg = args[i] if i < len(args) else 0
        i += 1
        spec = "%" + flags + (width or "") + (f".{prec}" if prec is not None else "") + conv
        if conv in "diouxXc":
            arg = arg if isinstance(arg, int) else 0
        elif conv in "eEfgG":
            arg = float(arg) if isinstance(arg, int) else 0.0
        elif conv == "s":
            arg = str(arg)
        elif conv == "p":
            spec, arg = "%s", "0x0"
        out.append(spec % arg)
    out.append(template[pos:])
    return "".join(out)


def check_path(path: str) -> tuple[str, bool | None]:
    """ADCore ``checkPath``: (FilePath with one trailing ``/``, exists); empty: (path, None)."""
    if not path:
        return path, None
    stripped = path[:-1] if path.endswith("/") else path
    exists = bool(stripped) and os.path.isdir(stripped)
    return stripped + "/", exists


def create_directories(path: str, depth: int) -> None:
    """ADCore's CreateDirectory: 0 never; N < 0 create up to |N| trailing directories;
    N > 0 the first N path components must exist; the leaf is always created when != 0."""
    if depth == 0 or not path:
        return
    p = Path(path)
    if p.is_dir():
        return
    parts = p.parts
    first = max(len(parts) + depth, 1) if depth < 0 else min(depth, len(parts) - 1)
    first = min(first, len(parts) - 1)
    base = Path(*parts[:first]) if first > 0 else Path(parts[0])
    if not base.is_dir():
        return
    with contextlib.suppress(OSError):
        p.mkdir(parents=True, exist_ok=True)


def lz4_chunk(data: np.ndarray) -> bytes:
    """``data`` in the byte format of HDF5 filter 32004 (one block up to 1 GiB)."""
    import lz4.block

    raw = memoryview(np.ascontiguousarray(data)).cast("B")
    n = raw.nbytes
    parts = [struct.pack(">QI", n, min(n, 1 << 30))]
    for start in range(0, n, 1 << 30):
        block = raw[start : start + (1 << 30)]
        comp = lz4.block.compress(block, store_size=False)
        if len(comp) >= block.nbytes:
            comp = bytes(block)
        parts.append(struct.pack(">I", len(comp)))
        parts.append(comp)
    return b"".join(parts)


def compression_kwargs(name: str, zlevel: int, blosc: tuple[str, int, str]) -> tuple[dict, str]:
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
    """One open HDF5 file (used from the HDF1 plugin's thread only)."""

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
        self.dtype = np.dtype(dtype)
        self.f = h5py.File(path, "w", locking=False)
        self.t_open = time.time()
        self.t_flush = time.monotonic()
        self.count = 0
        self.ds = None
        self.direct = None  # None | "lz4" | "raw"
        entry = self.f.create_group("entry")
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
        self.f.flush()

    def create_data(self, compression: str = "None", comp: dict | None = None) -> None:
        """Create the image dataset (at the first frame, with the compression then in force)."""
        comp = comp or {}
        shape = self.shape
        self.ds = self.det.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            chunks=(1, *shape),
            dtype=self.dtype,
            **comp,
        )
        self.direct = {"LZ4": "lz4", "None": "raw"}.get(compression)
        self.ds.attrs["NX_class"] = "SDS"
        self.ds.attrs["signal"] = np.int32(1)
        self.ds.attrs["interpretation"] = "image"
        data = self.entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data["data"] = self.ds  # hard link, as ADCore's default layout

    def append(self, arr: NDArr, flush: bool = True) -> float:
        """Write one frame and its attributes; flush the file when ``flush``."""
        t0 = time.perf_counter()
        n = self.count
        self.ds.resize(n + 1, axis=0)
        offset = (n,) + (0,) * len(self.shape)
        if self.direct == "lz4":
            self.ds.id.write_direct_chunk(offset, lz4_chunk(arr.data))
        elif self.direct == "raw":
            self.ds.id.write_direct_chunk(offset, np.ascontiguousarray(arr.data).tobytes())
        else:
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
            self.perf.resize(n + 1, axis=0)
            # [seconds since open, write seconds, frames, MB written, MB/s]
            mb = arr.data.nbytes * self.count / 1e6
            self.perf[n] = (
                time.time() - self.t_open,
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
            # a failed write (disk full): h5py's close() would raise and the process then
            # crashes when the datasets are freed; close the file id only
            with contextlib.suppress(Exception):
                f.id.close()
            raise
        f.close()


def errno_first(ex: Exception) -> str:
    """``ex`` as text, its OS error (``[Errno N] ...``) first: HDF5 buries it."""
    text = str(ex)
    m = re.search(r"errno = (\d+)", text)
    if m and "[Errno" not in text:
        n = int(m.group(1))
        return f"[Errno {n}] {os.strerror(n)}: {text}"
    return text
