"""Read side: the runs adscan wrote, through a Tiled client (the how-to's read API).

::

    from adscan.tiled.reader import open_catalog, image_files, find_runs
    cat = open_catalog()                  # the CatalogOfBlueskyRuns container, over HTTP
    run = cat[-1]                         # or cat[uid], cat["87ba"] (partial uid), cat[scan_id]
    ds = run.primary.read()               # xarray; ds["simdet_image"].shape ==
                                          #   (points, frames, rows, cols)
    run.primary["simdet_image"][0, 1]     # one frame, sliced on the server
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

    ``cfg``: an iconfig dictionary (default: :func:`adscan.config.load_iconfig`).  The server is
    adscan's own (``tiled.port``) or ``catalog.tiled_uri``; ``api_key`` overrides the key file.
    A wrong key raises ``tiled``'s ``ClientError`` (401) here; a server that does not answer,
    :class:`~adscan.tiled.server.TiledUnavailable`.
    """
    if cfg is None:
        from adscan.config import load_iconfig

        cfg = load_iconfig()
    s = server.settings(cfg)
    server.require(s)
    root = server.connect(s, key=api_key)
    if s.container not in root:
        raise KeyError(f"no container {s.container!r} at {s.url}: `adscan up` creates it")
    return root[s.container]


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
