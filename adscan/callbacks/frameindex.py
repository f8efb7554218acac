"""Which frames of an HDF5 image file belong to which point: ``/entry/adscan/point_index``.

After a pause/resume (or a stop) the detector may have written the frames of an interrupted
point that no event names: the catalog is right (each datum's ``point_number`` selects its
frames), but a reader going by (point, frame) from the SPEC ``#C resource`` line would get
shifted images.  This worker callback records, in each image file itself, one integer per
frame: the index of the ``primary`` event (0-based, the SPEC row) it belongs to, or -1 for a
frame no event names.  It is written once the run has ended and the detector is unstaged (the IOC
has closed the file): :func:`flush` writes what is pending; the adscan plans call it when they
end (after unstaging), and the next run's start document triggers it for any other plan.

Read it with ``h5py``: ``f["/entry/adscan/point_index"][()]``; the frames of SPEC row ``i``
are ``numpy.flatnonzero(point_index == i)``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import event_model
import numpy as np

logger = logging.getLogger(__name__)

DATASET = "/entry/adscan/point_index"
#: Seconds to wait for the IOC to close an image file before giving up (logged).
CLOSE_TIMEOUT = 20.0

_pending: list[tuple[str, list[tuple[int, int, int]]]] = []


class FrameIndexWriter:
    """RunEngine callback writing ``/entry/adscan/point_index`` into each AD_HDF5 file."""

    def __init__(self, timeout: float = CLOSE_TIMEOUT):
        self.timeout = timeout
        self._reset()

    def _reset(self) -> None:
        self._resources: dict[str, dict] = {}
        self._datums: dict[str, tuple[str, int]] = {}
        self._descriptors: dict[str, list[str]] = {}  # primary descriptor -> external keys
        self._events: list[dict[str, str]] = []  # per primary event: key -> datum id

    def __call__(self, name: str, doc: dict) -> None:
        try:
            if name == "start":
                flush(self.timeout)  # the previous run's detectors are unstaged by now
                self._reset()
            elif name == "resource" and doc.get("spec") == "AD_HDF5":
                self._resources[doc["uid"]] = doc
            elif name == "datum":
                self._datum(doc)
            elif name == "datum_page":
                for datum in event_model.unpack_datum_page(doc):
                    self._datum(datum)
            elif name == "descriptor" and doc.get("name") == "primary":
                keys = [k for k, v in doc["data_keys"].items() if v.get("external")]
                self._descriptors[doc["uid"]] = keys
            elif name == "event":
                self._event(doc)
            elif name == "event_page":
                for event in event_model.unpack_event_page(doc):
                    self._event(event)
            elif name == "stop":
                self._finish()
        except Exception:  # noqa: BLE001 - a by-product: never break the RunEngine
            logger.exception("frame index writer failed on %s", name)

    def _datum(self, doc: dict) -> None:
        if doc["resource"] in self._resources:
            point = (doc.get("datum_kwargs") or {}).get("point_number")
            if point is not None:
                self._datums[doc["datum_id"]] = (doc["resource"], int(point))

    def _event(self, doc: dict) -> None:
        keys = self._descriptors.get(doc["descriptor"])
        if keys is not None:
            self._events.append({k: doc["data"][k] for k in keys if k in doc["data"]})

    def _finish(self) -> None:
        """Map frames to events per file; write them once the IOC has closed each file."""
        per_file: dict[str, list[tuple[int, int, int]]] = {}
        for index, refs in enumerate(self._events):
            for datum_id in refs.values():
                if datum_id not in self._datums:
                    continue
                resource_uid, point = self._datums[datum_id]
                res = self._resources[resource_uid]
                fpp = int((res.get("resource_kwargs") or {}).get("frame_per_point", 1))
                path = str(Path(res.get("root") or "/") / res["resource_path"])
                per_file.setdefault(path, []).append((index, point * fpp, fpp))
        self._reset()
        _pending.extend(per_file.items())


def _write(path: str, spans: list[tuple[int, int, int]], timeout: float) -> None:
    import h5py
    import hdf5plugin  # noqa: F401 - the image dataset may be LZ4-compressed

    if not Path(path).is_file():
        logger.warning("frame index not written: %s is not a file here", path)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            f = h5py.File(path, "a")
            break
        except OSError as ex:
            if time.monotonic() > deadline:
                logger.warning("frame index not written to %s: %s", path, ex)
                return
            time.sleep(0.1)
    with f:
        n = f["/entry/data/data"].shape[0] if "/entry/data/data" in f else 0
        index = np.full(n, -1, dtype="int64")
        for event, first, count in spans:
            index[first : min(first + count, n)] = event
        if DATASET in f:
            del f[DATASET]
        dset = f.create_dataset(DATASET, data=index)
        dset.attrs["description"] = (
            "per frame of /entry/data/data: index of the primary event (SPEC row, 0-based) "
            "it belongs to; -1: a frame no event names (e.g. interrupted by a pause)"
        )


def flush(timeout: float = CLOSE_TIMEOUT) -> None:
    """Write every pending frame index (call once the detectors are unstaged); never raises."""
    while _pending:
        path, spans = _pending.pop(0)
        try:
            _write(path, spans, timeout)
        except Exception:  # noqa: BLE001 - a by-product: never break the plan
            logger.exception("frame index not written to %s", path)


def point_index(path: str | Path) -> np.ndarray | None:
    """The per-frame event index of an image file, or None if it has none (read side)."""
    import h5py

    with h5py.File(path, "r", locking=False) as f:
        return f[DATASET][()] if DATASET in f else None


def frames_of(index: np.ndarray, event: int) -> np.ndarray:
    """Frame numbers (rows of ``/entry/data/data``) of a given event (SPEC row)."""
    return np.flatnonzero(np.asarray(index) == event)


__all__ = ["DATASET", "FrameIndexWriter", "flush", "frames_of", "point_index"]
