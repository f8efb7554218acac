"""One NeXus file per run (``nexus.enabled``), beside the SPEC file: apstools' NXWriter, adapted.

What the stock ``NXWriter`` does not do for these runs, and this subclass does:

- the images are an ``h5py.ExternalLink`` with a *relative* path into the area detector's
  HDF5 file (the stock writer copies every frame in, a second copy of each image), with the
  frames' mapping to points (``frame_start``, ``frames_per_point``);
- the default plot (``/entry/data``) is the Stats total against the scanned motor(s), on the
  grid (``shape`` of the start document) for grid scans, not the first detector hint;
- ``/entry/instrument`` holds each motor as ``NXpositioner`` (``value`` readback,
  ``target_value`` setpoint) and the detector as ``NXdetector``;
- the file is written in a thread after the stop document, from a snapshot of the run
  (the next run may start meanwhile), and any failure (disk full, image file missing) is
  logged with the run uid and leaves no partial file: the run itself never sees it.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from pathlib import Path

import h5py
import numpy as np
from apstools.callbacks import NXWriter

logger = logging.getLogger("adscan.nexus")

IMAGE_DATASET = "/entry/data/data"  # where ADCore's NDFileHDF5 puts the frames


class AdscanNXWriter(NXWriter):
    """apstools NXWriter with linked images and the Stats total as default plot."""

    file_extension = "nxs"
    warn_on_missing_content = False
    #: Seconds to wait for the detector's HDF5 file to exist after the run stops.
    image_file_timeout = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads: list[threading.Thread] = []
        self.failures: list[tuple[str, str]] = []  # (run uid, error) for tests and status
        self.written: list[Path] = []

    # ------------------------------------------------------------------ writing, in a thread
    def writer(self) -> None:
        """Write from a snapshot in a daemon thread; never raise into the RunEngine."""
        if not self.streams.get("primary"):
            logger.info("NeXus: run %s has no primary events, no file written", self.uid)
            return
        job = copy.copy(self)  # clear() rebinds the buffers, so the snapshot keeps this run's
        thread = threading.Thread(
            target=job._write_file, args=(self,), daemon=True, name=f"nexus-{self.uid[:8]}"
        )
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _write_file(self, owner: AdscanNXWriter) -> None:
        fname = Path(self.make_file_name())
        try:
            fname.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(fname, "w") as self.root:
                self.write_root(fname)
            owner.written.append(fname)
            logger.info("NeXus: wrote %s for run %s", fname, self.uid)
        except Exception as exc:  # noqa: BLE001 - a NeXus failure must never reach the run
            owner.failures.append((self.uid, f"{type(exc).__name__}: {exc}"))
            logger.error(
                "NeXus: file for run %s (scan %s) NOT written: %s: %s",
                self.uid,
                self.scan_id,
                type(exc).__name__,
                exc,
            )
            if fname.is_file():
                fname.unlink(missing_ok=True)
        finally:
            self.root = None

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the files of finished runs (tests, scripts)."""
        deadline = time.monotonic() + timeout
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ images: linked
    def write_stream_external(self, parent, d, subgroup, stream_name, k, v):
        """``value`` is a relative ExternalLink into the detector file, plus the frame map."""
        datums = [self.externals[datum_id] for datum_id in d]
        resources = {datum["resource"] for datum in datums}
        if len(resources) != 1:
            raise ValueError(f"{k}: {len(resources)} image resources in one stream")
        resource_id = resources.pop()
        image_file = Path(self.getResourceFile(resource_id))
        deadline = time.monotonic() + self.image_file_timeout
        while not image_file.is_file():
            if time.monotonic() > deadline:
                raise FileNotFoundError(f"area detector file {image_file} missing ({k})")
            time.sleep(0.2)
        here = Path(self.root.filename).resolve().parent
        relative = os.path.relpath(image_file.resolve(), here)
        subgroup["value"] = h5py.ExternalLink(relative, IMAGE_DATASET)
        fpp = int(self.externals[resource_id].get("resource_kwargs", {}).get("frame_per_point", 1))
        points = np.array(
            [datum["datum_kwargs"].get("point_number", i) for i, datum in enumerate(datums)],
            dtype=np.int64,
        )
        subgroup["frame_start"] = points * fpp
        subgroup["frame_start"].attrs["long_name"] = (
            "index in value of each point's first frame; frames_per_point frames follow"
        )
        subgroup["frames_per_point"] = fpp
        subgroup.attrs["source_file"] = relative
        subgroup.attrs["source_address"] = IMAGE_DATASET
        subgroup.attrs["resource_id"] = resource_id
        subgroup.attrs["signal"] = "value"

    @staticmethod
    def _is_external(group) -> bool:
        return isinstance(group.get("value", getlink=True), h5py.ExternalLink)

    def assign_signal_type(self):
        """As the stock one, without writing into the (read-only, external) image file."""
        primary = self.root["/entry/instrument/bluesky/streams/primary"]
        detectors, motors = self.data_map.get("detectors", []), self.data_map.get("motors", [])
        for k, group in primary.items():
            kind = "detector" if k in detectors else "positioner" if k in motors else "other"
            group.attrs["signal_type"] = kind
            if "value" in group and not self._is_external(group):
                group["value"].attrs["signal_type"] = kind

    # ------------------------------------------------------------------ the default plot
    def _primary(self):
        return self.root["/entry/instrument/bluesky/streams/primary"]

    def _key(self, suffix: str) -> str | None:
        keys = [k for k in self._primary() if k.endswith(suffix)]
        return keys[0] if keys else None

    def _motors(self) -> list[str]:
        return [m for m in (self.metadata.get("motors") or []) if m in self._primary()]

    def _setpoints(self, motor: str) -> np.ndarray:
        primary = self._primary()
        key = f"{motor}_user_setpoint" if f"{motor}_user_setpoint" in primary else motor
        return np.asarray(primary[key]["value"][()], dtype=float)

    def _is_grid(self) -> bool:
        shape = self.metadata.get("shape") or ()
        return (
            self.metadata.get("plan_pattern") == "outer_product"
            and len(shape) == 2
            and len(self._motors()) >= 2
        )

    def write_data(self, parent):
        """``/entry/data``: Stats total v. the scanned motor(s) (grid-shaped for grid scans)."""
        nxdata = self.create_NX_group(parent, "data:NXdata")
        primary = self._primary()
        total = self._key("stats1_total") or self._key("_total")
        maximum = self._key("stats1_max_value") or self._key("_max_value")
        images = [k for k in primary if self._is_external(primary[k])]
        for k in images:  # same relative link (same directory), and the frame map
            link = primary[k].get("value", getlink=True)
            nxdata["images"] = h5py.ExternalLink(link.filename, link.path)
            nxdata["frame_start"] = primary[k]["frame_start"]
            nxdata["frames_per_point"] = primary[k]["frames_per_point"]
            break
        if self._is_grid():
            self._write_grid(nxdata, total, maximum)
        else:
            for k in primary:
                if k not in images and "value" in primary[k]:
                    nxdata[k] = primary[k]["value"]
            motors = self._motors()
            if not motors:  # count: the point number is the axis
                n = len(primary[total]["value"]) if total else 0
                nxdata["point"] = np.arange(1, n + 1)
                motors = ["point"]
            nxdata.attrs["axes"] = [motors[0]]
            for m in motors:  # scan2: every motor is an axis of dimension 0
                nxdata.attrs[f"{m}_indices"] = 0
        if total:
            nxdata.attrs["signal"] = total
            if maximum:
                nxdata.attrs["auxiliary_signals"] = [maximum]
        return nxdata

    def _write_grid(self, nxdata, total: str | None, maximum: str | None) -> None:
        """Signals on the (slow, fast) grid; each point placed by the plan's (snake) order."""
        primary = self._primary()
        n0, n1 = (int(n) for n in self.metadata["shape"])
        snake = bool((self.metadata.get("snaking") or (False, False))[1])
        motors = self._motors()[:2]
        npts = len(self._setpoints(motors[0]))
        rows = np.arange(npts) // n1
        cols = np.arange(npts) % n1
        if snake:
            cols = np.where(rows % 2 == 1, n1 - 1 - cols, cols)
        for key in (total, maximum):
            if key:
                grid = np.full((n0, n1), np.nan)
                grid[rows, cols] = np.asarray(primary[key]["value"][()], dtype=float)
                nxdata[key] = grid
        for dim, (motor, index, n) in enumerate(((motors[0], rows, n0), (motors[1], cols, n1))):
            values = self._setpoints(motor)
            axis = np.full(n, np.nan)
            for i in range(n):
                if np.any(index == i):
                    axis[i] = values[index == i].mean()
            nxdata[motor] = axis
            nxdata.attrs[f"{motor}_indices"] = dim
        nxdata["point_index"] = np.stack([rows, cols], axis=1)
        nxdata["point_index"].attrs["long_name"] = "(row, column) of each point, in scan order"
        nxdata.attrs["axes"] = motors

    # ------------------------------------------------------------------ instrument and entry
    def write_positioner(self, parent):
        """``/entry/instrument/<motor>:NXpositioner``: readback and setpoint of each motor."""
        primary = self._primary()
        for motor in self._motors():
            group = self.create_NX_group(parent, f"{motor}:NXpositioner")
            group["value"] = primary[motor]["value"]
            if f"{motor}_user_setpoint" in primary:
                group["target_value"] = primary[f"{motor}_user_setpoint"]["value"]

    def write_detector(self, parent):
        """``/entry/instrument/<detector>:NXdetector``: images (linked) and the Stats."""
        primary = self._primary()
        for det in self.detectors:
            group = self.create_NX_group(parent, f"{det}:NXdetector")
            for k in primary:
                if not k.startswith(f"{det}_"):
                    continue
                name = k[len(det) + 1 :]
                if self._is_external(primary[k]):
                    link = primary[k].get("value", getlink=True)
                    group["data"] = h5py.ExternalLink(link.filename, link.path)
                    group["frame_start"] = primary[k]["frame_start"]
                    group["frames_per_point"] = primary[k]["frames_per_point"]
                elif "value" in primary[k]:
                    group[name] = primary[k]["value"]
            baseline = "/entry/instrument/bluesky/streams/baseline"
            key = f"{det}_cam_acquire_time"
            if baseline in self.root and key in self.root[baseline]:
                group["count_time"] = self.root[baseline][key]["value_start"]

    def write_entry(self):
        nxentry = super().write_entry()
        nxentry["scan_id"] = int(self.scan_id)
        plan = self.metadata.get("adscan_command") or self.metadata.get("plan_name", "")
        nxentry["plan"] = self.h5string(str(plan))
        if self.metadata.get("item_uid"):
            nxentry["item_uid"] = self.h5string(self.metadata["item_uid"])
        return nxentry


def make_nexus_writer(cfg: dict) -> AdscanNXWriter | None:
    """The profile's NeXus writer (``nexus.enabled``, default on), or None."""
    nexus = cfg.get("nexus") or {}
    if not nexus.get("enabled", True):
        return None
    writer = AdscanNXWriter()
    writer.file_path = Path(nexus.get("directory") or cfg["spec"]["directory"])
    writer.instrument_name = cfg.get("instrument", {}).get("name", "adscan")
    return writer
