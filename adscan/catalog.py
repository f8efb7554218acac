"""Databroker catalog: write every bluesky document, read runs back.

Two back ends, chosen by ``catalog.mongo_uri`` in ``iconfig.yml``:

``mongo_uri: null`` (default, embedded)
    A persistent, file-backed databroker catalog under ``catalog.directory``: one msgpack file per
    run (``<start uid>.msgpack``), written by ``suitcase.msgpack.Serializer(dir, flush=True)``
    behind an ``event_model.RunRouter``.  Every document is flushed as it arrives, so another
    process can read a run while it is being written.

``mongo_uri: mongodb://host:27017/dbname``
    ``suitcase.mongo_normalized.Serializer(uri, uri)`` (metadata and assets in the same
    database); read with databroker's ``BlueskyMongoCatalog``.  ``serverSelectionTimeoutMS``
    is added to the URI when absent so a missing server fails in seconds, not 30 s.

Reading::

    from adscan.catalog import open_catalog, image_files
    cat = open_catalog()                 # settings from iconfig.yml
    run = cat[-1]                        # or cat[uid], cat[scan_id]
    ds = run.primary.read()              # ds["simdet_image"].shape == (points, frames, rows, cols)
    run.primary._resources               # the AD_HDF5 resource documents
    image_files(run)                     # [Path(root + resource_path), ...]

    db = open_v1()                       # databroker.v1.Broker, db[uid].table() is fast
                                         # for long runs

``intake``: :func:`write_intake_yaml` writes ``<data_dir>/intake/<catalog name>.yml``; with
``INTAKE_PATH=<data_dir>/intake`` in the environment, ``databroker.catalog["adscan"]`` opens the
same catalog (with the LZ4-capable ``AD_HDF5`` handler).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import event_model
import h5py
import hdf5plugin  # noqa: F401  (registers the LZ4 & other HDF5 filters with h5py)
from area_detector_handlers.handlers import AreaDetectorHDF5Handler

logger = logging.getLogger(__name__)

MONGO_TIMEOUT_MS = 5000  # serverSelectionTimeoutMS added to mongo URIs without one


class AdscanHDF5Handler(AreaDetectorHDF5Handler):
    """``AD_HDF5`` handler that can decode LZ4 (and other hdf5plugin-filtered) frames.

    ``area_detector_handlers`` does not import ``hdf5plugin``; in a fresh process h5py then
    cannot read LZ4-compressed frames.  Importing this module imports ``hdf5plugin``.

    Two more changes for runs that are still being written (the IOC holds the file open):

    * the file is opened on the first read, not when the handler is made, so reading a run's
      scalar columns never touches the HDF5 file;
    * it is opened with HDF5 file locking off (``locking=False``: the writer's lock would
      refuse readers), and reopened when a point beyond the frames seen so far is requested.
    """

    specs = {"AD_HDF5"} | set(getattr(AreaDetectorHDF5Handler, "specs", set()))

    def open(self):
        """Deferred: see :meth:`_open_now`."""

    def _open_now(self):
        if self._file is None:
            self._file = h5py.File(self._filename, "r", locking=False)

    def __call__(self, point_number):
        stop = (point_number + 1) * self._fpp
        if self._dataset is not None and stop > self._dataset.shape[0]:
            self.close()  # file still growing: reopen to see the newer frames
        self._open_now()
        return super().__call__(point_number)

    def close(self):
        self._dataset = None
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


HANDLER_REGISTRY: dict[str, type] = {"AD_HDF5": AdscanHDF5Handler}


# ---------------------------------------------------------------------------------------------
# settings


def _cfg(cfg: dict | None) -> dict:
    if cfg is None:
        from .config import load_iconfig

        cfg = load_iconfig()
    return cfg


def _catalog_cfg(cfg: dict | None) -> dict:
    return dict(_cfg(cfg).get("catalog") or {})


def mongo_uri_with_timeout(uri: str, timeout_ms: int = MONGO_TIMEOUT_MS) -> str:
    """Return *uri* with ``serverSelectionTimeoutMS`` set (unless it already has one)."""
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() == "serverselectiontimeoutms" for k, _ in query):
        return uri
    query.append(("serverSelectionTimeoutMS", str(int(timeout_ms))))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def catalog_kind(cfg: dict | None = None) -> str:
    """``"mongo"`` when ``catalog.mongo_uri`` is set, else ``"msgpack"`` (embedded)."""
    return "mongo" if _catalog_cfg(cfg).get("mongo_uri") else "msgpack"


def catalog_directory(cfg: dict | None = None) -> Path:
    """Directory of the embedded catalog (``catalog.directory``)."""
    directory = _catalog_cfg(cfg).get("directory")
    if not directory:
        raise ValueError("iconfig: catalog.directory is not set")
    return Path(directory).expanduser()


# ---------------------------------------------------------------------------------------------
# writing


class CatalogWriter:
    """RunEngine callback ``(name, doc)`` that stores every document in the catalog.

    Subscribe it with ``RE.subscribe(writer)``.  Errors are NOT swallowed: losing catalog data
    silently is worse than a failed scan.  ``stats`` holds the number of documents and the
    cumulative time spent writing them (seconds), to measure the cost on the RunEngine thread.
    """

    def __init__(self, kind: str, target: str, callback: Callable[[str, dict], Any],
                 closer: Callable[[], None] | None = None):
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
    ccfg = _catalog_cfg(cfg)
    uri = ccfg.get("mongo_uri")
    if uri:
        import pymongo
        from suitcase.mongo_normalized import Serializer as MongoSerializer

        if not pymongo.uri_parser.parse_uri(uri).get("database"):
            raise ValueError(f"catalog.mongo_uri {_redact(uri)!r} names no database "
                             "(mongodb://host:port/DATABASE)")
        uri = mongo_uri_with_timeout(uri)
        client = pymongo.MongoClient(uri)
        db = client.get_database()  # the database named in the URI (required)
        serializer = MongoSerializer(db, db)  # metadata and assets in the same database
        serializer.create_indexes()  # idempotent; once per writer

        def closer():
            client.close()

        return CatalogWriter("mongo", _redact(uri), serializer, closer)

    from suitcase.msgpack import Serializer as MsgpackSerializer

    directory = catalog_directory(cfg)
    directory.mkdir(parents=True, exist_ok=True)

    def factory(name, start_doc):
        return [MsgpackSerializer(str(directory), flush=True)], []

    router = event_model.RunRouter([factory])
    return CatalogWriter("msgpack", str(directory), router)


def _redact(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


# ---------------------------------------------------------------------------------------------
# reading

try:  # databroker is a hard dependency, keep import errors readable
    from databroker._drivers.msgpack import BlueskyMsgpackCatalog
except ImportError as exc:  # pragma: no cover
    raise ImportError("adscan.catalog needs databroker 1.2.x") from exc


class AdscanMsgpackCatalog(BlueskyMsgpackCatalog):
    """``BlueskyMsgpackCatalog`` that always sees the newest runs.

    databroker reloads (incrementally, by file mtime) only for ``cat[-N]``; here
    ``cat[scan_id]``, ``len(cat)`` and iteration reload as well so a catalog opened before a
    run started finds it.
    """

    name = "adscan-msgpack-catalog"

    def __getitem__(self, name):
        if not isinstance(name, str) or name.lstrip("-").isdigit():
            self.force_reload()
        return super().__getitem__(name)

    def __len__(self):
        self.force_reload()
        return super().__len__()


def open_catalog(cfg: dict | None = None, **kwargs):
    """Open the catalog adscan writes to, as a databroker v2 catalog.

    ``kwargs`` go to the catalog class (e.g. ``root_map``).
    """
    ccfg = _catalog_cfg(cfg)
    name = ccfg.get("name") or "adscan"
    registry = dict(HANDLER_REGISTRY)
    registry.update(kwargs.pop("handler_registry", None) or {})
    uri = ccfg.get("mongo_uri")
    if uri:
        from databroker._drivers.mongo_normalized import BlueskyMongoCatalog

        uri = mongo_uri_with_timeout(uri)
        return BlueskyMongoCatalog(uri, uri, handler_registry=registry, name=name, **kwargs)
    directory = catalog_directory(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    return AdscanMsgpackCatalog(f"{directory}/*.msgpack", handler_registry=registry, name=name,
                                **kwargs)


def open_v1(cfg: dict | None = None, **kwargs):
    """``databroker.v1.Broker`` on the same catalog (``db[uid].table()`` is fast)."""
    from databroker.v1 import Broker

    return Broker(open_catalog(cfg, **kwargs))


def write_intake_yaml(cfg: dict | None = None, directory: str | Path | None = None) -> Path:
    """Write an intake catalog file so ``databroker.catalog[<name>]`` works.

    Written to ``<data_dir>/intake/<name>.yml`` (or *directory*).  Use with
    ``export INTAKE_PATH=<that directory>``.  Returns the file path.
    """
    import yaml

    cfg = _cfg(cfg)
    ccfg = _catalog_cfg(cfg)
    name = ccfg.get("name") or "adscan"
    if directory is None:
        directory = Path(cfg["instrument"]["data_dir"]) / "intake"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    registry = {spec: f"{cls.__module__}.{cls.__qualname__}"
                for spec, cls in HANDLER_REGISTRY.items()}
    uri = ccfg.get("mongo_uri")
    if uri:
        uri = mongo_uri_with_timeout(uri)
        source = {
            "driver": "bluesky-mongo-normalized-catalog",
            "args": {"metadatastore_db": uri, "asset_registry_db": uri,
                     "handler_registry": registry},
        }
    else:
        source = {
            "driver": f"{AdscanMsgpackCatalog.__module__}.{AdscanMsgpackCatalog.__qualname__}",
            "args": {"paths": [f"{catalog_directory(cfg)}/*.msgpack"],
                     "handler_registry": registry},
        }
    path = directory / f"{name}.yml"
    tmp = path.with_suffix(".yml.tmp")
    tmp.write_text(yaml.safe_dump({"sources": {name: source}}, sort_keys=False))
    os.replace(tmp, path)
    return path


def resources_of(run) -> list[dict]:
    """The resource documents of a databroker v2 run (all streams)."""
    found: dict[str, dict] = {}
    for stream_name in list(run):
        stream = run[stream_name]
        for res in getattr(stream, "_resources", None) or []:
            found.setdefault(res["uid"], dict(res))
    return list(found.values())


def image_files(run, spec: str | None = "AD_HDF5") -> list[Path]:
    """Paths of the run's external (image) files: ``root + resource_path`` of each resource.

    *spec* selects resources by spec (``None``: all).  The order is that of the documents.
    """
    files = []
    for res in resources_of(run):
        if spec is not None and res.get("spec") != spec:
            continue
        root = res.get("root") or ""
        rpath = res["resource_path"]
        path = Path(root + rpath) if root.endswith("/") or not root else Path(root) / rpath
        if path not in files:
            files.append(path)
    return files
