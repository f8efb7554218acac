"""Put existing runs into Tiled: the old msgpack catalog, and the writer's backup files.

``adscan catalog import [PATH ...]`` (default: every ``*.msgpack`` of ``catalog.directory``
and every ``*.jsonl`` of ``<tiled.directory>/backup``).  Each file holds one run's documents:

* ``<uid>.msgpack`` from ``suitcase.msgpack`` (the retired embedded catalog);
* ``<uid>.jsonl`` written by :class:`adscan.tiled.writer.TiledCatalogWriter` when Tiled was
  lost mid-run (``{"name": ..., "doc": ...}`` per line).

A run already in Tiled with its stop document is skipped; a partial copy (no stop: the writer
lost the server) is replaced.  The documents go through the same ``TiledWriter`` as live runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from adscan.tiled import server


@dataclass
class Imported:
    path: Path
    uid: str
    status: str  # "imported", "replaced partial", "skipped (already in Tiled)", "failed: ..."


def read_documents(path: Path) -> Iterator[tuple[str, dict]]:
    """``(name, doc)`` pairs of one run file (``.msgpack`` or ``.jsonl``)."""
    path = Path(path)
    if path.suffix == ".msgpack":
        import msgpack
        import msgpack_numpy

        with open(path, "rb") as f:
            unpacker = msgpack.Unpacker(
                f, object_hook=msgpack_numpy.decode, raw=False, strict_map_key=False
            )
            yield from ((name, doc) for name, doc in unpacker)
    elif path.suffix == ".jsonl":
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not a JSON line ({exc})") from exc
                yield item["name"], item["doc"]
    else:
        raise ValueError(f"{path}: not a run file (.msgpack or .jsonl)")


def default_paths(cfg: dict) -> list[Path]:
    """The old embedded catalog's runs, then the writer's backups."""
    paths: list[Path] = []
    directory = (cfg.get("catalog") or {}).get("directory")
    if directory and Path(directory).is_dir():
        paths += sorted(Path(directory).glob("*.msgpack"), key=lambda p: p.stat().st_mtime)
    backup = server.settings(cfg).directory / "backup"
    if backup.is_dir():
        paths += sorted(backup.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    return paths


def import_runs(cfg: dict, paths: Iterable[Path] | None = None) -> list[Imported]:
    """Write each run file into adscan's Tiled container; one :class:`Imported` per file."""
    from bluesky_tiled_plugins import TiledWriter

    s = server.settings(cfg)
    server.require(s)
    container = server.ensure_container(server.connect(s), s.container)
    out = []
    for path in default_paths(cfg) if paths is None else [Path(p) for p in paths]:
        try:
            docs = list(read_documents(path))
        except (OSError, ValueError) as exc:
            out.append(Imported(path, "", f"failed: {exc}"))
            continue
        start = next((d for n, d in docs if n == "start"), None)
        if start is None:
            out.append(Imported(path, "", "failed: no start document"))
            continue
        uid = start["uid"]
        status = "imported"
        if uid in container:
            if container[uid].metadata.get("stop"):
                out.append(Imported(path, uid, "skipped (already in Tiled)"))
                continue
            # its rows are internal data (DuckDB/PostgreSQL); the HDF5 files (external) stay
            container.delete_contents(uid, recursive=True, external_only=False)
            status = "replaced partial"
        writer = TiledWriter(container)
        try:
            for name, doc in docs:
                writer(name, doc)
        except Exception as exc:  # noqa: BLE001 - report per file, go on with the others
            out.append(Imported(path, uid, f"failed: {type(exc).__name__}: {exc}"))
            continue
        out.append(Imported(path, uid, status))
    return out
