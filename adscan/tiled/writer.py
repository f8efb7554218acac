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
import queue
import threading
import time
from pathlib import Path
from typing import Any

from adscan.tiled import server

logger = logging.getLogger("adscan.tiled.writer")

#: Seconds between writes of the buffered events/frames of a running run: a run reads back
#: while it grows, at most about this much behind.  0: every event is written at once (one
#: write costs ~100 ms of HTTP on a loaded 2-core machine; it is the writer thread's time).
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

    class DeferredCloseRunWriter(_RunWriter):
        """``_RunWriter`` whose ``stop`` leaves closing the run's live streams (one request per
        node, 30-55 ms each here) to :meth:`close_streams`: the run is complete for readers
        once its stop document is in its metadata, so the RunEngine need not wait for them."""

        close_pending = False

        def _close_stream_tree(self) -> None:
            self.close_pending = True

        def close_streams(self) -> None:
            if self.close_pending:
                self.close_pending = False
                _RunWriter._close_stream_tree(self)

    class FlushingTiledWriter(TiledWriter):
        """``TiledWriter`` that also writes its buffered rows and frames when told to.

        TiledWriter buffers by count only (``batch_size``); here the buffer is flushed by
        time (:meth:`flush`), using the run writer's own write methods, as its ``stop`` does.
        """

        run_writer_class = DeferredCloseRunWriter

        def __init__(self, client):
            super().__init__(client, batch_size=1_000_000)
            self.current = None

        def _factory(self, name, doc):
            run_writer = self.run_writer_class(
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

    The RunEngine thread only queues documents; one writer thread sends them to Tiled and
    writes the buffered rows and frames every ``flush_interval`` seconds, so a run reads back
    while it grows and HTTP costs the scan nothing.  ``start`` and ``stop`` wait for the thread
    (bounded by ``drain_timeout``): a refused key fails the run at its start, and a run is
    complete in Tiled (or in its backup file) when the plan returns; closing the run's live
    streams (one request per node) is left to the thread once the RunEngine goes on.

    Connects at the first run (the environment opens even while Tiled is down; plans are then
    refused by :func:`refuse_without_tiled`).  ``stats``: documents, seconds on the RunEngine
    thread, seconds of the writer thread; ``notes``: the closing note of each run that fell
    back to its backup.
    """

    kind = "tiled"

    def __init__(
        self, cfg: dict, *, flush_interval: float | None = None, drain_timeout: float = 300.0
    ):
        self.settings = server.settings(cfg)
        cat_cfg = cfg.get("catalog") or {}
        if flush_interval is None:
            flush_interval = cat_cfg.get("tiled_flush_interval", DEFAULT_FLUSH_INTERVAL)
        self.flush_interval = float(flush_interval)
        self.retry_timeout = float(cat_cfg.get("tiled_retry_timeout", DEFAULT_RETRY_TIMEOUT))
        self.drain_timeout = float(drain_timeout)
        self.backup_dir = self.settings.directory / "backup"
        self.target = f"{self.settings.url} container {self.settings.container!r}"
        self.stats = {
            "documents": 0,
            "seconds": 0.0,
            "thread_seconds": 0.0,
            "start_seconds": 0.0,
            "stop_seconds": 0.0,
        }
        self.notes: list[str] = []
        self._writer = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._run: list[tuple[str, dict]] = []
        self._failed: str | None = None  # the error, once this run fell back to its backup
        self._backup_path: Path | None = None
        self._refused: Exception | None = None  # a configuration error at the run's start
        self._dirty = False
        self._last_flush = 0.0
        self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._work, name="adscan-tiled-writer", daemon=True)
        self._thread.start()

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

    # -- the RunEngine thread

    def __call__(self, name: str, doc: dict) -> None:
        t0 = time.perf_counter()
        try:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="adscan-tiled-writer", daemon=True
                )
                self._thread.start()
            self._queue.put((name, doc))
            if name in ("start", "stop"):
                self.drain()
                if name == "start" and self._refused is not None:
                    raise self._refused
        finally:
            dt = time.perf_counter() - t0
            self.stats["seconds"] += dt
            self.stats["documents"] += 1
            if name in ("start", "stop"):  # the waits for the thread: a per-run cost
                self.stats[f"{name}_seconds"] += dt

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the writer thread has handled every queued document."""
        done = threading.Event()
        self._queue.put(("_drained", done))
        ok = done.wait(self.drain_timeout if timeout is None else timeout)
        if not ok:
            logger.error(
                "Tiled writer still busy after %.0f s (%s)", self.drain_timeout, self.target
            )
        return ok

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.drain()
            self._queue.put(None)
            self._thread.join(10)
        self._writer = None

    # -- the writer thread

    def _work(self) -> None:
        try:  # import the Tiled client now, not at the first run's start
            import bluesky_tiled_plugins  # noqa: F401
            import tiled.client  # noqa: F401
        except ImportError:  # pragma: no cover - reported at the first run
            pass
        while True:
            try:
                item = self._queue.get(timeout=self.flush_interval if self._dirty else None)
            except queue.Empty:
                self._flush()
                continue
            if item is None:
                self._close_streams()
                return
            name, doc = item
            if name == "_drained":
                doc.set()  # the RunEngine goes on; then the last run's streams are closed
                self._close_streams()
                continue
            t0 = time.perf_counter()
            try:
                self._handle(name, doc)
            except Exception:  # noqa: BLE001 - never let the thread die
                logger.exception("Tiled writer: unexpected error on a %s document", name)
            finally:
                self.stats["thread_seconds"] += time.perf_counter() - t0

    def _handle(self, name: str, doc: dict) -> None:
        if name == "start":
            self._run, self._failed, self._backup_path = [], None, None
            self._refused, self._dirty = None, False
        if self._refused is not None:
            return  # the run was refused at its start (wrong key...): the plan has failed
        self._run.append((name, doc))
        if self._failed is None:
            try:
                if name == "start":
                    try:
                        self._tiled_writer()  # connect now: a refused key fails the run here
                    except server.ServiceError as exc:
                        self._refused = exc
                        return
                self._writer(name, doc)
                if name == "event":
                    self._dirty = True
                    due = time.monotonic() - self._last_flush >= self.flush_interval
                    if due and not self._stop_is_next():
                        self._flush()
                elif name == "stop":
                    self._dirty = False
            except Exception as exc:  # noqa: BLE001 - any write failure: fall back, keep going
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

    def _stop_is_next(self) -> bool:
        """A stop document waits in the queue (it writes every buffered row itself)."""
        with self._queue.mutex:
            nxt = self._queue.queue[0] if self._queue.queue else None
        return nxt is not None and nxt[0] == "stop"

    def _close_streams(self) -> None:
        """Close the live streams of the run whose stop was written (deferred, see
        ``DeferredCloseRunWriter``); a failure is only logged: the run is complete."""
        run_writer = getattr(self._writer, "current", None)
        if run_writer is None or not getattr(run_writer, "close_pending", False):
            return
        t0 = time.perf_counter()
        try:
            run_writer.close_streams()
        except Exception:  # noqa: BLE001 - the run's data and stop are written
            logger.exception("Tiled writer: closing the run's streams failed (%s)", self.target)
        finally:
            self.stats["thread_seconds"] += time.perf_counter() - t0

    def _flush(self) -> None:
        self._dirty = False
        self._last_flush = time.monotonic()
        if self._failed is not None or self._writer is None:
            return
        try:
            self._writer.flush()
        except Exception as exc:  # noqa: BLE001
            self._fall_back(exc)

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
