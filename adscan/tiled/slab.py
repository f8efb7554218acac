"""Server side of Tiled reads: the HDF5 adapter adscan's Tiled server uses for image files.

tiled 0.2.20's ``HDF5ArrayAdapter`` serves an ``application/x-hdf5`` array as a dask graph with
one task per HDF5 chunk (one frame in the files the IOC writes), each task opening the file
again, then reshapes and stitches the pieces: three times h5py's own read of the same frames
(benchmarks/RESULTS.md).  :class:`SlabHDF5ArrayAdapter` serves the same structure and the
same pixels, but reads the frames a request needs with one ``read_direct`` per file into one
array.  Anything it does not handle (strided or empty slices of the leading axis, a shape it
cannot map onto the files' frames, files still short of the frames the structure advertises)
goes to tiled's own adapter, errors included.  Registered through tiled's
``adapters_by_mimetype`` (:func:`adapters_by_mimetype`).
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
from tiled.adapters.hdf5 import SWMR_DEFAULT, HDF5ArrayAdapter, h5open
from tiled.ndslice import NDBlock, NDSlice
from tiled.utils import path_from_uri

HDF5_MIMETYPE = "application/x-hdf5"


def adapters_by_mimetype() -> dict[str, Any]:
    """The ``adapters_by_mimetype`` mapping for ``tiled.catalog.from_uri``."""
    return {HDF5_MIMETYPE: SlabHDF5ArrayAdapter}


class SlabHDF5ArrayAdapter(HDF5ArrayAdapter):
    """``HDF5ArrayAdapter`` whose reads take one h5py call per file instead of one per chunk."""

    _files: tuple = ()
    _open_kwargs: dict | None = None

    @classmethod
    def from_catalog(
        cls,
        data_source,
        node,
        /,
        dataset: str | None = None,
        slice: str | NDSlice | None = None,
        squeeze: bool | None = False,
        swmr: bool = SWMR_DEFAULT,
        libver: str = "latest",
        locking: bool | str | None = None,
    ) -> SlabHDF5ArrayAdapter:
        adapter = super().from_catalog(
            data_source,
            node,
            dataset=dataset,
            slice=slice,
            squeeze=squeeze,
            swmr=swmr,
            libver=libver,
            locking=locking,
        )
        if not slice and not squeeze:  # a data source's own slice/squeeze: tiled's path
            uris = [a.data_uri for a in data_source.assets if a.parameter == "data_uris"]
            uris = uris or [data_source.assets[0].data_uri]
            adapter._files = tuple(path_from_uri(u) for u in uris)
            adapter._open_kwargs = {
                "dataset": dataset,
                "swmr": swmr,
                "libver": libver,
                "locking": locking,
            }
        return adapter

    def _frames_per_index(self) -> int | None:
        """Stored frames per index of the structure's leading axis (None: no clean mapping)."""
        stored, shape = tuple(self._array.shape), tuple(self._structure.shape)
        if not self._files or len(stored) < 1 or len(shape) < len(stored):
            return None
        trailing = stored[1:]
        if trailing and tuple(shape[len(shape) - len(trailing) :]) != trailing:
            return None
        per_index = math.prod(shape[1 : len(shape) - len(trailing)])
        if len(shape) == len(stored) and stored[0] >= shape[0]:
            return 1  # the file grew past the structure: serve the advertised frames
        return per_index if stored[0] == shape[0] * per_index else None

    def read(self, slice: NDSlice = NDSlice(...)) -> Any:
        shape = tuple(self._structure.shape)
        per_index = self._frames_per_index()
        if per_index is None or not shape:
            return super().read(slice)
        full = NDSlice(slice).expand_for_shape(shape) if slice else NDSlice()
        lead = full[0] if full else builtins.slice(None)
        if isinstance(lead, (int, np.integer)):
            index = int(lead) + shape[0] if lead < 0 else int(lead)
            if not 0 <= index < shape[0]:
                return super().read(slice)
            lo, hi, keep = index, index + 1, 0
        elif isinstance(lead, builtins.slice) and lead.step in (None, 1):
            lo, hi, _ = lead.indices(shape[0])
            if hi <= lo:
                return super().read(slice)
            keep = builtins.slice(None)
        else:
            return super().read(slice)
        out = np.empty(((hi - lo) * per_index, *self._array.shape[1:]), self._array.dtype)
        if not self._read_frames(out, lo * per_index):
            return super().read(slice)  # files short of the frames: tiled's error
        array = out.reshape((hi - lo, *shape[1:]))
        return array[(keep, *full[1:])]

    def _read_frames(self, out: np.ndarray, first: int) -> bool:
        """Fill ``out`` with stored frames ``first ..`` over the files in order (one read each)."""
        want, done, offset = out.shape[0], 0, 0
        for path in self._files:
            if done == want:
                break
            with h5open(path, **(self._open_kwargs or {})) as ds:
                count = int(ds.shape[0])
                start = max(first + done - offset, 0)
                stop = min(count, first + want - offset)
                if stop > start:
                    into = np.s_[done : done + stop - start]
                    ds.read_direct(out, source_sel=np.s_[start:stop], dest_sel=into)
                    done += stop - start
            offset += count
        return done == want

    def read_block(self, block: NDBlock, slice: NDSlice = NDSlice(...)) -> Any:
        if self._frames_per_index() is None:
            return super().read_block(block, slice)
        whole = self.read(NDSlice(*block.slice_from_chunks(self._structure.chunks)))
        return whole[tuple(slice)] if slice else whole
