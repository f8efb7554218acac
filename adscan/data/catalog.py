"""Databroker catalog, the read side: open the catalog the worker writes, find image files.

The embedded back end (``catalog.mongo_uri: null``) is read as msgpack files under
``catalog.directory``; MongoDB with databroker's ``BlueskyMongoCatalog``.  The writer is
:mod:`adscan.callbacks.catalog_writer`.

Reading::

    from adscan.data import open_catalog, image_files
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

import logging
import os
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the LZ4 & other HDF5 filters with h5py)
from area_detector_handlers.handlers import AreaDetectorHDF5Handler

from adscan.core.catalog_settings import (
    catalog_cfg,
    catalog_directory,
    mongo_uri_with_timeout,
    resolve_cfg,
)

logger = logging.getLogger(__name__)


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
# reading

try:  # databroker is a hard dependency, keep import errors readable
    from databroker._drivers.msgpack import BlueskyMsgpackCatalog
except ImportError as exc:  # pragma: no cover
    raise ImportError("adscan.data.catalog needs databroker 1.2.x") from exc


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

    ``kwargs`` go to the catalog class (e.g. ``root_map``).  With ``catalog.backend: tiled``
    it is the Tiled client's catalog instead (:func:`adscan.tiled.reader.open_catalog`).
    """
    from adscan.core.catalog_settings import resolve_cfg, tiled_enabled

    cfg = resolve_cfg(cfg)
    if tiled_enabled(cfg):
        from adscan.tiled.reader import open_catalog as open_tiled

        return open_tiled(cfg, **kwargs)
    ccfg = catalog_cfg(cfg)
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
    return AdscanMsgpackCatalog(
        f"{directory}/*.msgpack", handler_registry=registry, name=name, **kwargs
    )


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

    cfg = resolve_cfg(cfg)
    ccfg = catalog_cfg(cfg)
    name = ccfg.get("name") or "adscan"
    if directory is None:
        directory = Path(cfg["instrument"]["data_dir"]) / "intake"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    registry = {
        spec: f"{cls.__module__}.{cls.__qualname__}" for spec, cls in HANDLER_REGISTRY.items()
    }
    uri = ccfg.get("mongo_uri")
    if uri:
        uri = mongo_uri_with_timeout(uri)
        source = {
            "driver": "bluesky-mongo-normalized-catalog",
            "args": {
                "metadatastore_db": uri,
                "asset_registry_db": uri,
                "handler_registry": registry,
            },
        }
    else:
        source = {
            "driver": f"{AdscanMsgpackCatalog.__module__}.{AdscanMsgpackCatalog.__qualname__}",
            "args": {
                "paths": [f"{catalog_directory(cfg)}/*.msgpack"],
                "handler_registry": registry,
            },
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
    A run read through Tiled: its assets' files (:func:`adscan.tiled.reader.image_files`).
    """
    from adscan.tiled.reader import is_tiled_run

    if is_tiled_run(run):
        from adscan.tiled.reader import image_files as tiled_files

        return tiled_files(run, mimetype="application/x-hdf5" if spec else None)
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
