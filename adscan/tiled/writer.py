"""Worker side: every bluesky document into Tiled, with bluesky-tiled-plugins' ``TiledWriter``.

Why that writer: it converts ophyd's legacy ``AD_HDF5`` Resource/Datum documents into
StreamResource/StreamDatum (``frame_per_point`` becomes the multiplier), so a client reads
``simdet_image`` back as ``(points, frames, rows, cols)``.  bluesky 1.15's own
``bluesky.callbacks.tiled_writer.TiledWriter`` stores the same documents without error but the
image read then fails with HTTP 500.  Runs go into the ``CatalogOfBlueskyRuns`` child container
(see :func:`adscan.tiled.server.ensure_container`).

Faults (decided here, and said in the run's closing note):

* **Tiled down when a plan starts**: :func:`refuse_without_tiled` (a RunEngine preprocessor
  installed by :func:`install`) raises :class:`~adscan.tiled.server.TiledUnavailable`, naming
  the service and its address, before the plan's first message: nothing moves, nothing is
  staged, no SPEC scan is opened.
* **Tiled lost mid-run: buffered, the run goes on.**  The first failed write switches the run
  to its backup: every document of the run (those already sent too) is written to
  ``<tiled.directory>/backup/<start uid>.jsonl`` and the plan continues, so the SPEC file and
  the HDF5 files are complete.  The closing note (log + worker console) names the file;
  ``adscan catalog import FILE`` puts the run into Tiled once it is back (the partial copy
  there, which has no stop document, is replaced).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from adscan.tiled import server

logger = logging.getLogger("adscan.tiled.writer")

#: Seconds between writes of the buffered events/frames of a running run: a run reads back
#: while it grows, at most this much behind.  0: every event is written at once (each write
#: costs ~100 ms of HTTP on a loaded 2-core machine, too much for every point).
DEFAULT_FLUSH_INTERVAL = 1.0
#: Seconds the Tiled client retries a failing request (its default, 45 s, would stall the
#: RunEngine that long when the server is lost; after one failure the run goes to its backup).
DEFAULT_RETRY_TIMEOUT = 10.0


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_backup(path: Path, documents: list[tuple[str, dict]], mode: str = "w") -> None:
    """Documents as JSON lines ``{"name": ..., "doc": ...}`` (the format ``import`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        for name, doc in documents:
            f.write(json.dumps({"name": name, "doc": doc}, default=_jsonable) + "\n")
        f.flush()


def _flushing_writer_class():
    from bluesky_tiled_plugins import TiledWriter
    from bluesky_tiled_plugins.writing.tiled_writer import _RunWriter

    class FlushingTiledWriter(TiledWriter):
        """``TiledWriter`` that also writes its buffered rows and frames when told to.

        TiledWriter buffers by count only (``batch_size``); here the buffer is flushed by
        time (:meth:`flush`), using the run writer's own write methods, as its ``stop`` does.
        """

        def __init__(self, client):
            super().__init__(client, batch_size=1_000_000)
            self.current = None

        def _factory(self, name, doc):
            run_writer = _RunWriter(
                self.client, batch_size=self._batch_size, max_array_size=self._max_array_size
            )
            normalizer = self._normalizer(
                patches=self.patches, spec_to_mimetype=self.spec_to_mimetype
            )
            normalizer.subscribe(run_writer)
            self.current = run_writer
            return [normalizer], []

        def flush(self) -> None:
            rw = self.current
            if rw is None or rw.root_node is None:
                return
            for desc_name, cache in rw._internal_data_cache.items():
                if cache:
                    rw._write_internal_data(cache, desc_node=rw._desc_nodes[desc_name])
                    cache.clear()
            for sres_uid in list(rw._external_data_cache):
                rw._write_external_data(rw._external_data_cache.pop(sres_uid))

    return FlushingTiledWriter


def _FlushingTiledWriter(container):  # noqa: N802 - a class made on first use (lazy imports)
    global _FLUSHING_CLASS
    if _FLUSHING_CLASS is None:
        _FLUSHING_CLASS = _flushing_writer_class()
    return _FLUSHING_CLASS(container)


_FLUSHING_CLASS = None


class TiledCatalogWriter:
    """RunEngine callback ``(name, doc)``: documents to Tiled, or to a backup file if it fails.

    Connects at the first run (the environment opens even while Tiled is down; plans are then
    refused by :func:`refuse_without_tiled`).  ``stats`` holds documents written and seconds
    spent on the RunEngine thread; ``notes`` the closing note of each run that fell back.
    """

    kind = "tiled"

    def __init__(self, cfg: dict, *, flush_interval: float | None = None):
        self.settings = server.settings(cfg)
        cat_cfg = cfg.get("catalog") or {}
        if flush_interval is None:
            flush_interval = cat_cfg.get("tiled_flush_interval", DEFAULT_FLUSH_INTERVAL)
        self.flush_interval = float(flush_interval)
        self.retry_timeout = float(cat_cfg.get("tiled_retry_timeout", DEFAULT_RETRY_TIMEOUT))
        self._last_flush = 0.0
        self.backup_dir = self.settings.directory / "backup"
        self.target = f"{self.settings.url} container {self.settings.container!r}"
        self.stats = {"documents": 0, "seconds": 0.0}
        self.notes: list[str] = []
        self._writer = None
        self._run: list[tuple[str, dict]] = []
        self._failed: str | None = None  # the error, once this run fell back to its backup
        self._backup_path: Path | None = None

    # -- connection

    def _tiled_writer(self):
        if self._writer is None:
            import tiled.client.utils

            tiled.client.utils.TILED_RETRY_TIMEOUT = self.retry_timeout  # read at each request
            client = server.connect(self.settings)
            container = server.ensure_container(client, self.settings.container)
            self._writer = _FlushingTiledWriter(container)
        return self._writer

    def require(self) -> None:
        """Raise :class:`~adscan.tiled.server.TiledUnavailable` unless Tiled answers."""
        server.require(self.settings)

    # -- documents

    def __call__(self, name: str, doc: dict) -> None:
        t0 = time.perf_counter()
        try:
            self._handle(name, doc)
        finally:
            self.stats["seconds"] += time.perf_counter() - t0
            self.stats["documents"] += 1

    def _handle(self, name: str, doc: dict) -> None:
        if name == "start":
            self._run, self._failed, self._backup_path = [], None, None
        self._run.append((name, doc))
        if self._failed is None:
            try:
                if name == "start":
                    self._tiled_writer()  # connect now: a refused key fails the run here
                self._writer(name, doc)
                if name == "event" and time.monotonic() - self._last_flush >= self.flush_interval:
                    self._writer.flush()
                    self._last_flush = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - any write failure: fall back, keep going
                if name == "start" and isinstance(exc, server.ServiceError):
                    raise  # bad key file, etc.: a configuration error, not a lost server
                self._fall_back(exc)
        elif self._backup_path is not None:
            write_backup(self._backup_path, [(name, doc)], mode="a")
        if name == "stop":
            if self._failed is not None:
                note = (
                    f"adscan: Tiled lost during run {doc.get('run_start')} "
                    f"({self._failed}); the run went on: SPEC and HDF5 files are complete "
                    f"and all its documents are in {self._backup_path}; once Tiled is back: "
                    f"adscan catalog import {self._backup_path}"
                )
                self.notes.append(note)
                logger.warning(note)
                print(note, flush=True)  # the worker console (qserver monitor) shows it
            self._run = []

    def _fall_back(self, exc: Exception) -> None:
        self._failed = f"{type(exc).__name__}: {exc}"[:300]
        start = next((d for n, d in self._run if n == "start"), {})
        self._backup_path = self.backup_dir / f"{start.get('uid', 'unknown')}.jsonl"
        write_backup(self._backup_path, self._run)
        self._writer = None  # reconnect at the next run
        logger.error(
            "Tiled write failed (%s): run %s continues into %s",
            self._failed,
            start.get("uid"),
            self._backup_path,
        )

    def close(self) -> None:
        self._writer = None

    def __repr__(self) -> str:
        return f"<TiledCatalogWriter {self.target}>"


def refuse_without_tiled(writer: TiledCatalogWriter):
    """A RunEngine preprocessor: the plan fails before its first message if Tiled is down."""

    def preprocessor(plan):
        def checked():
            writer.require()
            return (yield from plan)

        return checked()

    return preprocessor


def install(RE, cfg: dict, *, flush_interval: float | None = None) -> TiledCatalogWriter:
    """Subscribe a :class:`TiledCatalogWriter` to ``RE`` and refuse plans while Tiled is down."""
    writer = TiledCatalogWriter(cfg, flush_interval=flush_interval)
    RE.subscribe(writer)
    RE.preprocessors.append(refuse_without_tiled(writer))
    return writer
