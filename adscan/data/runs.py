"""Read one run back from the catalog: its documents flattened into columns, its frames.

Shared by the plots (:mod:`adscan.data.plots`) and the one-to-one check
(:mod:`adscan.data.verify`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import event_model
import numpy as np

from adscan.core.schema import plan_of

IMAGE_DATASET = "/entry/data/data"


@dataclass
class RunData:
    """One run's documents, flattened: start, stop, primary columns, images' datum."""

    start: dict
    stop: dict | None
    descriptor: dict | None  # the (first) primary descriptor
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # scalar primary fields
    datum_ids: dict[str, list[str]] = field(default_factory=dict)  # external field -> ids
    resources: dict[str, dict] = field(default_factory=dict)  # uid -> resource
    datums: dict[str, dict] = field(default_factory=dict)  # datum_id -> datum
    seq_nums: list[int] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.start["uid"]

    @property
    def scan_id(self) -> Any:
        return self.start.get("scan_id")

    @property
    def points(self) -> int:
        return len(self.seq_nums)

    @property
    def motors(self) -> list[str]:
        return list(self.start.get("motors") or [])

    @property
    def image_keys(self) -> list[str]:
        """External fields of the primary stream with an image shape (e.g. ``simdet_image``)."""
        keys = (self.descriptor or {}).get("data_keys", {})
        return [
            k for k, dk in keys.items() if dk.get("external") and len(dk.get("shape") or []) >= 2
        ]

    @property
    def kind(self) -> str:
        return run_kind(self.start)

    @property
    def label(self) -> str:
        plan = plan_of(self.start) or "?"
        return f"scan {self.scan_id} ({plan}) {self.uid[:8]}"

    def detector_prefix(self, image_key: str | None = None) -> str:
        """``simdet`` for ``simdet_image``: the prefix of the detector's stats columns."""
        key = image_key or (self.image_keys[0] if self.image_keys else "simdet_image")
        return key[: -len("_image")] if key.endswith("_image") else key

    def stats_key(self, what: str, image_key: str | None = None) -> str:
        """Column name of a Stats1 value: ``total``, ``max_value`` or ``unique_id``."""
        return f"{self.detector_prefix(image_key)}_stats1_{what}"

    def resource_file(self, resource: dict) -> Path:
        root = resource.get("root") or ""
        rpath = resource["resource_path"]
        if not root or root.endswith("/"):
            return Path(root + rpath)
        return Path(root) / rpath

    def frame_location(self, image_key: str, point: int) -> tuple[Path, int, int]:
        """(HDF5 file, first frame index, frames per point) of one point's images."""
        datum = self.datums[self.datum_ids[image_key][point]]
        resource = self.resources[datum["resource"]]
        fpp = int((resource.get("resource_kwargs") or {}).get("frame_per_point", 1))
        pn = int((datum.get("datum_kwargs") or {}).get("point_number", 0))
        return self.resource_file(resource), pn * fpp, fpp


def run_kind(start: dict) -> str:
    """``count``, ``scan``, ``scan2``, ``grid`` (or ``other``) for a start document."""
    plan = plan_of(start) or ""
    plan = plan.removeprefix("adscan_")
    motors = start.get("motors") or []
    if plan in ("count",) or (not motors and plan != "grid_scan"):
        return "count"
    if plan in ("grid_scan", "rel_grid_scan") or start.get("plan_pattern") == "outer_product":
        return "grid"
    if plan in ("scan", "scan2", "rel_scan", "list_scan", "inner_product_scan"):
        return "scan" if len(motors) == 1 else "scan2"
    return "scan" if len(motors) == 1 else "other"


def open_run(cfg: dict | None, uid_or_index: Any):
    """A databroker v2 run: ``-N`` (N-th most recent), a scan_id, or a (partial) uid."""
    from adscan.data.catalog import open_catalog

    cat = open_catalog(cfg)
    key = uid_or_index
    if isinstance(key, str) and key.lstrip("-").isdigit():
        key = int(key)
    return cat[key]


def read_run(run) -> RunData:
    """Collect a run's documents (unfilled) into a :class:`RunData` (Tiled runs: from the
    Tiled client, :func:`adscan.tiled.reader.read_run_data`)."""
    from adscan.tiled.reader import is_tiled_run, read_run_data

    if is_tiled_run(run):
        return read_run_data(run)
    data = RunData(start=dict(run.metadata["start"]), stop=None, descriptor=None)
    primary: set[str] = set()
    rows: dict[str, list] = {}
    externals: list[str] = []
    scalar: list[str] = []
    documents = run.documents(fill="no") if hasattr(run, "documents") else run.canonical(fill="no")
    for name, doc in documents:
        if name == "descriptor":
            if doc.get("name") == "primary":
                primary.add(doc["uid"])
                if data.descriptor is None:
                    data.descriptor = doc
                    for key, dk in doc["data_keys"].items():
                        if dk.get("external"):
                            externals.append(key)
                        elif not dk.get("shape") and dk.get("dtype") in (
                            "number",
                            "integer",
                            "boolean",
                        ):
                            scalar.append(key)
                    rows = {k: [] for k in scalar + externals}
        elif name == "resource":
            data.resources[doc["uid"]] = doc
        elif name in ("datum", "datum_page"):
            datums = [doc] if name == "datum" else event_model.unpack_datum_page(doc)
            for d in datums:
                data.datums[d["datum_id"]] = d
        elif name in ("event", "event_page"):
            events = [doc] if name == "event" else event_model.unpack_event_page(doc)
            for ev in events:
                if ev["descriptor"] not in primary:
                    continue
                data.seq_nums.append(ev["seq_num"])
                for k in rows:
                    rows[k].append(ev["data"].get(k))
        elif name == "stop":
            data.stop = doc
    for k in scalar:
        data.columns[k] = np.array([np.nan if v is None else v for v in rows[k]], dtype=float)
    for k in externals:
        data.datum_ids[k] = list(rows[k])
    return data


def read_frame(
    data: RunData, point: int = 0, frame: int = 0, image_key: str | None = None
) -> np.ndarray:
    """One image frame of one point, read from the run's HDF5 file."""
    import h5py
    import hdf5plugin  # noqa: F401 - LZ4 filter

    key = image_key or data.image_keys[0]
    path, first, fpp = data.frame_location(key, point)
    if not 0 <= frame < fpp:
        raise IndexError(f"frame {frame} out of range (frames per point: {fpp})")
    with h5py.File(path, "r", locking=False) as f:
        return np.asarray(f[IMAGE_DATASET][first + frame])
