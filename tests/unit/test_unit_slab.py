"""adscan's server-side HDF5 adapter gives exactly what tiled's own adapter gives.

Real LZ4 HDF5 files (one frame per chunk, as the IOC writes them), the adapters built through
``from_catalog`` as the Tiled server builds them; pixels compared for whole reads, slices,
blocks, several files, a file that grew past the structure and one still short of it.
"""

from __future__ import annotations

from types import SimpleNamespace

import h5py
import hdf5plugin
import numpy as np
import pytest
from tiled.adapters.hdf5 import HDF5ArrayAdapter
from tiled.ndslice import NDBlock, NDSlice
from tiled.structures.array import ArrayStructure
from tiled.structures.data_source import Asset, DataSource, Management

from adscan.tiled.slab import SlabHDF5ArrayAdapter, adapters_by_mimetype

DATASET = "/entry/data/data"


def _file(path, frames: np.ndarray):
    with h5py.File(path, "w") as f:
        f.create_dataset(DATASET, data=frames, chunks=(1, *frames.shape[1:]), **hdf5plugin.LZ4())
    return path


def _adapters(paths, shape):
    structure = ArrayStructure.from_array(np.empty(shape, np.uint16))
    structure.chunks = tuple((n,) for n in shape)
    assets = [
        Asset(data_uri=p.as_uri(), is_directory=False, parameter="data_uris", num=i)
        for i, p in enumerate(paths)
    ]
    source = DataSource(
        structure_family="array",
        structure=structure,
        mimetype="application/x-hdf5",
        parameters={"dataset": DATASET, "swmr": True},
        assets=assets,
        management=Management.external,
    )
    node = SimpleNamespace(metadata_={}, specs=[])
    return [
        cls.from_catalog(source, node, **source.parameters)
        for cls in (HDF5ArrayAdapter, SlabHDF5ArrayAdapter)
    ]


@pytest.fixture
def frames():
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, size=(12, 8, 6), dtype=np.uint16)


SLICES = [
    NDSlice(...),
    NDSlice(2),
    NDSlice(-1),
    NDSlice(slice(1, 3)),
    NDSlice(slice(1, 3), 1),
    NDSlice(slice(None), 2, slice(2, 5), slice(None, None, 2)),
    NDSlice(slice(None, None, 2)),
    NDSlice(3, 0, 4, 5),
]


@pytest.mark.parametrize("files", [1, 3])
def test_slab_reads_equal_tiled_reads(tmp_path, frames, files, monkeypatch):
    paths = [_file(tmp_path / f"f{i}.h5", part) for i, part in enumerate(np.split(frames, files))]
    tiled, slab = _adapters(paths, (4, 3, 8, 6))
    expected = frames.reshape(4, 3, 8, 6)
    for sl in SLICES:
        got = slab.read(sl)
        assert np.array_equal(got, np.asarray(tiled.read(sl))), sl
        assert np.array_equal(got, expected[tuple(sl)]), sl
    assert slab._frames_per_index() == 3
    # The unstrided reads above never needed tiled's own path:
    monkeypatch.setattr(HDF5ArrayAdapter, "read", None)
    assert np.array_equal(slab.read(NDSlice(slice(1, 3), 1)), expected[1:3, 1])
    block = NDBlock(0, 0, 0, 0)
    assert np.array_equal(slab.read_block(block), expected)
    assert np.array_equal(slab.read_block(block, NDSlice(1, 2)), expected[1, 2])


def test_grown_file_serves_the_advertised_frames(tmp_path, frames):
    (path,) = [_file(tmp_path / "f.h5", frames)]
    tiled, slab = _adapters([path], (10, 8, 6))
    assert slab._frames_per_index() == 1
    assert np.array_equal(slab.read(), frames[:10])
    assert np.array_equal(
        slab.read(NDSlice(slice(8, 10))), np.asarray(tiled.read(NDSlice(slice(8, 10))))
    )


def test_file_short_of_the_structure_is_tiled_own_error(tmp_path, frames):
    (path,) = [_file(tmp_path / "f.h5", frames[:9])]
    tiled, slab = _adapters([path], (12, 8, 6))
    with pytest.raises(Exception) as tiled_error:
        tiled.read()
    with pytest.raises(type(tiled_error.value)):
        slab.read()


def test_registered_for_hdf5():
    assert adapters_by_mimetype() == {"application/x-hdf5": SlabHDF5ArrayAdapter}
