"""The catalog writer, a RunEngine callback in the worker: every document to the catalog.

Two back ends, chosen by ``catalog.mongo_uri`` in ``iconfig.yml``:

``mongo_uri: null`` (default, embedded)
    A persistent, file-backed databroker catalog under ``catalog.directory``: one msgpack file per
    run (``<start uid>.msgpack``), written by ``suitcase.msgpack.Serializer(dir, flush=True)``
    behind an ``event_model.RunRouter``.  Every document is flushed as it arrives, so another
    process can read a run while it is being written.

``mongo_uri: mongodb://host:27017/dbname``
    ``suitcase.mongo_normalized.Serializer(uri, uri)`` (metadata and assets in the same
    database).  ``serverSelectionTimeoutMS`` is added to the URI when absent so a missing
    server fails in seconds, not 30 s.

The read side is :mod:`adscan.data.catalog`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import event_model

from adscan.core.catalog_settings import (
    catalog_cfg,
    catalog_directory,
    mongo_uri_with_timeout,
    redact_uri,
)


class CatalogWriter:
    """RunEngine callback ``(name, doc)`` that stores every document in the catalog.

    Subscribe it with ``RE.subscribe(writer)``.  Errors are NOT swallowed: losing catalog data
    silently is worse than a failed scan.  ``stats`` holds the number of documents and the
    cumulative time spent writing them (seconds), to measure the cost on the RunEngine thread.
    """

    def __init__(
        self,
        kind: str,
        target: str,
        callback: Callable[[str, dict], Any],
        closer: Callable[[], None] | None = None,
    ):
        self.kind = kind
        self.target = target
        self._callback = callback
        self._closer = closer
        self.stats = {"documents": 0, "seconds": 0.0}

    def __call__(self, name: str, doc: dict) -> None:
        t0 = time.perf_counter()
        try:
            self._callback(name, doc)
        except Exception:
            if name == "start" and self.kind == "msgpack":  # e.g. a value msgpack cannot pack
                path = Path(self.target) / f"{doc.get('uid')}.msgpack"
                with contextlib.suppress(OSError):
                    if path.stat().st_size == 0:
                        path.unlink()  # no empty run file is left behind (issue 12.3)
            raise
        self.stats["seconds"] += time.perf_counter() - t0
        self.stats["documents"] += 1

    def close(self) -> None:
        if self._closer is not None:
            self._closer()

    def __repr__(self) -> str:
        return f"<CatalogWriter {self.kind} {self.target}>"


def make_catalog_writer(cfg: dict | None = None) -> CatalogWriter:
    """The RunEngine callback that stores every document (see module docstring)."""
    ccfg = catalog_cfg(cfg)
    uri = ccfg.get("mongo_uri")
    if uri:
        import pymongo
        from suitcase.mongo_normalized import Serializer as MongoSerializer

        if not pymongo.uri_parser.parse_uri(uri).get("database"):
            raise ValueError(
                f"catalog.mongo_uri {redact_uri(uri)!r} names no database "
                "(mongodb://host:port/DATABASE)"
            )
        uri = mongo_uri_with_timeout(uri)
        client = pymongo.MongoClient(uri)
        db = client.get_database()  # the database named in the URI (required)
        serializer = MongoSerializer(db, db)  # metadata and assets in the same database
        serializer.create_indexes()  # idempotent; once per writer

        def closer():
            client.close()

        return CatalogWriter("mongo", redact_uri(uri), serializer, closer)

    from suitcase.msgpack import Serializer as MsgpackSerializer

    directory = catalog_directory(cfg)
    directory.mkdir(parents=True, exist_ok=True)

    def factory(name, start_doc):
        return [MsgpackSerializer(str(directory), flush=True)], []

    router = event_model.RunRouter([factory])
    return CatalogWriter("msgpack", str(directory), router)
