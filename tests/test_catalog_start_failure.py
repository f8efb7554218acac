"""Issue 12.3: a start document the catalog cannot store leaves no empty run file."""

from __future__ import annotations

import copy

import pytest
from bluesky import RunEngine
from bluesky import plans as bp

from adscan.callbacks.catalog_writer import make_catalog_writer


def test_unstorable_start_document_leaves_no_empty_file(iconfig, tmp_path):
    cfg = copy.deepcopy(iconfig)
    cfg["catalog"].update(mongo_uri=None, directory=str(tmp_path / "catalog"))
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(make_catalog_writer(cfg))
    with pytest.raises(OverflowError):  # a stock plan: no md check before the run opens
        RE(bp.count([], md={"counts": 2**70}))
    files = [p for p in (tmp_path / "catalog").rglob("*") if p.is_file()]
    assert files == [], files
    assert RE(bp.count([], num=1))  # the next run is stored as usual
    assert len(list((tmp_path / "catalog").glob("*.msgpack"))) == 1
