"""Read side: the runs adscan wrote, through a Tiled client (the how-to's read API).

::

    from adscan.tiled.reader import open_catalog, image_files, find_runs
    cat = open_catalog()                  # the CatalogOfBlueskyRuns container, over HTTP
    run = cat[-1]                         # or cat[uid], cat["87ba"] (partial uid), cat[scan_id]
    ds = run.primary.read()               # xarray; ds["simdet_image"].shape ==
                                          #   (points, frames, rows, cols)
    run["primary/simdet_image"][0, 1]     # one frame, sliced on the server (one request)
    image_files(run)                      # the HDF5 files, from the run's assets
    find_runs(cat, plan="adscan_scan", scan_id=3, since="2026-12-01")

``image_files`` / ``assets`` are the documented equivalent of the how-to's
``run.primary._resources``: with Tiled, an externally stored array's data sources carry its
assets (``file://localhost/<path>`` of each HDF5 file) and the HDF5 parameters (dataset
``/entry/data/data``).  The same works from another machine with ``tiled.client.from_uri``
and the API key.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from adscan.tiled import server


def open_catalog(cfg: dict | None = None, *, api_key: str | None = None):
    """The Tiled catalog of adscan's runs (``CatalogOfBlueskyRuns``).

    ``cfg``: an iconfig dictionary (default: :func:`adscan.core.config.load_iconfig`).  The
    server is adscan's own (``tiled.port``) or ``catalog.tiled_uri``; ``api_key`` overrides the
    key file.
    A wrong key raises ``tiled``'s ``ClientError`` (401) here; a server that does not answer,
    :class:`~adscan.tiled.server.TiledUnavailable`.
    """
    if cfg is None:
        from adscan.core.config import load_iconfig

        cfg = load_iconfig()
    s = server.settings(cfg)
    server.require(s)
    try:
        return server.connect(s, key=api_key, path=(s.container,))
    except KeyError:
        raise KeyError(f"no container {s.container!r} at {s.url}: `adscan up` creates it") from None


def stream_nodes(run) -> dict[str, Any]:
    """``{"<stream>/<key>": array client}`` of every externally stored array of a run."""
    out = {}
    for stream_name in list(run):
        stream = run[stream_name]
        base = getattr(stream, "base", stream)
        for key, node in base.items():
            if getattr(node, "structure_family", None) == "array":
                out[f"{stream_name}/{key}"] = node
    return out


def assets(run) -> list[dict[str, Any]]:
    """The run's external data: one dict per data source of each array (the resources).

    Keys: ``stream``, ``data_key``, ``mimetype``, ``dataset`` (HDF5 path), ``shape``,
    ``paths`` (the files, as the server sees them).
    """
    out = []
    for name, node in stream_nodes(run).items():
        stream, key = name.split("/", 1)
        for ds in node.data_sources():
            if ds.management != "external":
                continue
            paths = [_path(a.data_uri) for a in ds.assets]
            out.append(
                {
                    "stream": stream,
                    "data_key": key,
                    "mimetype": ds.mimetype,
                    "dataset": (ds.parameters or {}).get("dataset"),
                    "shape": list((ds.structure or {}).get("shape") or []),
                    "paths": paths,
                }
            )
    return out


def _path(data_uri: str) -> Path:
    parts = urllib.parse.urlsplit(data_uri)
    return Path(urllib.parse.unquote(parts.path))


def image_files(run, mimetype: str | None = "application/x-hdf5") -> list[Path]:
    """The run's HDF5 image files, in order (from its assets; ``mimetype=None``: all files)."""
    files: list[Path] = []
    for entry in assets(run):
        if mimetype is not None and entry["mimetype"] != mimetype:
            continue
        for path in entry["paths"]:
            if path not in files:
                files.append(path)
    return files


def find_runs(
    cat,
    *,
    plan: str | None = None,
    scan_id: int | None = None,
    since: str | float | None = None,
    until: str | float | None = None,
):
    """Search the catalog: plan name (``adscan_plan`` or ``plan_name``), scan id, start time.

    Returns the narrowed catalog (index it, iterate it, ``len()`` it).  ``since`` / ``until``:
    ``"2026-12-01 10:00"``-like strings or POSIX timestamps (bluesky's ``TimeRange``).
    """
    from bluesky_tiled_plugins.queries import ScanID, TimeRange
    from tiled.queries import Key

    result = cat
    if plan is not None:
        by_adscan = result.search(Key("adscan_plan") == plan)
        result = by_adscan if len(by_adscan) else result.search(Key("plan_name") == plan)
    if scan_id is not None:
        result = result.search(ScanID(int(scan_id)))
    if since is not None or until is not None:
        result = result.search(TimeRange(since=since, until=until))
    return result


def is_tiled_run(run) -> bool:
    """True for a run read through a Tiled client (``BlueskyRun`` of bluesky-tiled-plugins)."""
    return type(run).__module__.startswith("bluesky_tiled_plugins")


def read_run_data(run):
    """A Tiled run as :class:`adscan.data.runs.RunData` (what ``adscan plot``/``verify`` use).

    Scalar columns from the stream's table; the images' location from the run's assets,
    presented as one ``AD_HDF5``-like resource per HDF5 file and one datum per point
    (``point_number`` p: frames ``p*fpp .. p*fpp+fpp-1`` of that file), as the writer received
    them.  (``run.documents()`` needs a serializer plain ``tiled serve catalog`` lacks.)
    A run over several files (one resource each, e.g. after a restage) is served by Tiled as
    their frames concatenated in order; each file's frame count (its HDF5 header) tells which
    points it holds.
    """
    import numpy as np

    from adscan.data.runs import RunData

    data = RunData(
        start=dict(run.start), stop=(dict(run.metadata.get("stop") or {}) or None), descriptor=None
    )
    if "primary" not in list(run):
        return data
    stream = run.primary
    descriptors = list(getattr(stream, "descriptors", []) or [])
    data.descriptor = dict(descriptors[0]) if descriptors else None
    data_keys = (data.descriptor or {}).get("data_keys", {})
    scalar = [
        k
        for k, dk in data_keys.items()
        if not dk.get("external")
        and not dk.get("shape")
        and dk.get("dtype") in ("number", "integer", "boolean")
    ]
    if scalar:
        ds = stream.read(variables=scalar)
        for key in scalar:
            data.columns[key] = np.asarray(ds[key].values, dtype=float)
    points = len(next(iter(data.columns.values()))) if data.columns else 0
    data.seq_nums = list(range(1, points + 1))
    by_key: dict[str, list] = {}  # key -> [frames per point, files, points they hold]
    for entry in assets(run):
        if entry["stream"] != "primary" or entry["mimetype"] != "application/x-hdf5":
            continue
        shape = entry["shape"]
        fpp = int(shape[1]) if len(shape) == 4 else 1
        found = by_key.setdefault(entry["data_key"], [fpp, [], 0])
        found[1].extend(p for p in entry["paths"] if p not in found[1])
        found[2] += int(shape[0]) if shape else 0
    for key, (fpp, paths, held) in by_key.items():
        data.datum_ids[key] = _datums_over_files(data, key, paths, fpp, held)
    return data


def _frame_count(path: Path) -> int | None:
    import h5py
    import hdf5plugin  # noqa: F401 - LZ4 filter

    from adscan.data.runs import IMAGE_DATASET

    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f[IMAGE_DATASET].shape[0])
    except (OSError, KeyError):
        return None


def _datums_over_files(data, key: str, paths: list[Path], fpp: int, points: int) -> list[str]:
    """One ``AD_HDF5``-like resource per file, one datum per point, in the files' order.

    A single file holds every point.  Several: file *i* holds ``frames // fpp`` points; a file
    that cannot be opened ends the mapping there (``verify`` reports the points left).
    """
    ids: list[str] = []
    for i, path in enumerate(paths):
        if len(paths) == 1:
            count = points
        else:
            frames = _frame_count(path)
            if frames is None:
                break
            count = frames // fpp if i < len(paths) - 1 else points - len(ids)
        res_uid = f"tiled:{key}:{path}"
        data.resources[res_uid] = {
            "uid": res_uid,
            "spec": "AD_HDF5",
            "root": "/",
            "resource_path": str(path).lstrip("/"),
            "resource_kwargs": {"frame_per_point": fpp},
        }
        for local in range(max(0, min(count, points - len(ids)))):
            datum_id = f"{res_uid}/{local}"
            data.datums[datum_id] = {
                "datum_id": datum_id,
                "resource": res_uid,
                "datum_kwargs": {"point_number": local},
            }
            ids.append(datum_id)
    return ids
