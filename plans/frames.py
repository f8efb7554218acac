"""Collect n frames per point: the detector frame configuration applied around a plan."""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

from bluesky import preprocessors as bpp
from bluesky.utils import RequestAbort, RequestStop
from ophyd import Staged

from adscan.callbacks import frameindex
from adscan.core.preprocessors import wait_connected
from adscan.devices.watchdog import DeviceDisconnectedError, disconnected
from adscan.plans import spec

logger = logging.getLogger("adscan.plans")


class DetectorNotReady(RuntimeError):
    """An area detector cannot take data: raised by :func:`preflight` before anything moves."""


def area_detectors(detectors: Iterable[Any]) -> list[Any]:
    """The detectors among ``detectors`` that have an areaDetector ``cam``."""
    return [d for d in detectors if hasattr(d, "cam") and hasattr(d.cam, "stage_sigs")]


def preflight(det: Any) -> None:
    """Check an area detector before the plan stages or moves anything.

    * its IOC answers (every PV connected; :func:`with_frames` waits
      ``epics.reconnect_timeout``);
    * a detector left staged (an earlier plan could not unstage: IOC gone) is unstaged;
    * after an IOC restart (HDF1 not primed) the configured acquire times are put back and
      HDF1 is primed (``det.restore_after_restart()``, a method of ``SimDetector_V34``);
    * the image directory as bluesky sees it (``hdf1.read_path_template``) is a writable
      directory (a probe file is created and removed), and the IOC reports
      ``FilePathExists_RBV`` for the directory it writes to (``write_path_template``).
    """
    if not det.connected:
        down = [w.item for w in det.walk_signals() if not w.item.connected]
        names = ", ".join(getattr(s, "pvname", s.name) for s in down[:3])
        raise DetectorNotReady(
            f"{det.name}: {len(down)} PVs do not answer (e.g. {names}) after "
            f"{spec.SETTINGS.reconnect_timeout:.0f} s: is the detector IOC running?"
        )
    if det._staged != Staged.no:  # a plan ended while its IOC was gone: unstage failed then
        logger.warning("%s was left staged by an earlier plan: unstaging it now", det.name)
        deadline = time.monotonic() + spec.SETTINGS.reconnect_timeout
        while True:  # an IOC just restarted may still be reconnecting some PVs
            try:
                det.unstage()
                break
            except Exception as ex:
                if time.monotonic() > deadline:
                    raise DetectorNotReady(
                        f"{det.name}: left staged and cannot unstage: {ex}"
                    ) from ex
                time.sleep(0.5)
    restore = getattr(det, "restore_after_restart", None)  # SimDetector_V34's method
    if restore is not None and restore():
        logger.warning(
            "%s: HDF1 was not primed (IOC restarted?): reconfigured and primed", det.name
        )
    hdf = det.hdf1
    now = datetime.datetime.now()  # the templates may hold strftime codes, as ophyd's stage()
    read_path = Path(now.strftime(hdf.read_path_template))
    write_path = now.strftime(hdf.write_path_template)
    if read_path.exists():
        if not read_path.is_dir():
            raise DetectorNotReady(f"{det.name}: image directory {read_path} is not a directory")
        try:
            fd, probe = tempfile.mkstemp(prefix=".adscan-probe-", dir=read_path)
            try:
                os.write(fd, b"adscan write probe\n")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as ex:
            raise DetectorNotReady(
                f"{det.name}: image directory {read_path} is not writable: {ex}"
            ) from ex
        hdf.file_path.put(write_path, wait=True)
        if not hdf.file_path_exists.get(use_monitor=False):
            raise DetectorNotReady(
                f"{det.name}: the IOC reports that image directory {write_path} "
                f"does not exist (FilePathExists_RBV=No): {hdf.write_message.get()}"
            )


#: Bytes per pixel of the cam's DataType (areaDetector NDDataType_t names).
_PIXEL_BYTES = {
    "Int8": 1,
    "UInt8": 1,
    "Int16": 2,
    "UInt16": 2,
    "Int32": 4,
    "UInt32": 4,
    "Int64": 8,
    "UInt64": 8,
    "Float32": 4,
    "Float64": 8,
}
#: Free space kept beyond the expected image size (other files, HDF5 overhead).
SPACE_MARGIN = 1.05


def expected_image_bytes(det: Any, points: int, frames: int) -> int:
    """Uncompressed bytes of ``points * frames`` images of ``det`` (LZ4 of noise saves ~10%)."""
    cam = det.cam
    x = int(cam.size.size_x.get(use_monitor=False))
    y = int(cam.size.size_y.get(use_monitor=False))
    dtype = str(cam.data_type.get(as_string=True, use_monitor=False))
    colour = str(cam.color_mode.get(as_string=True, use_monitor=False))
    per_pixel = _PIXEL_BYTES.get(dtype, 8) * (3 if colour.startswith("RGB") else 1)
    return int(points) * int(frames) * x * y * per_pixel


def check_space(det: Any, points: int, frames: int) -> None:
    """Refuse a scan whose images cannot fit the free space of the image directory."""
    read_path = Path(datetime.datetime.now().strftime(det.hdf1.read_path_template))
    try:
        need = expected_image_bytes(det, points, frames)
    except Exception as ex:  # noqa: BLE001 - a cam without these PVs: say so, do not block
        logger.warning("%s: image size unknown (%s): free space not checked", det.name, ex)
        return
    free = shutil.disk_usage(read_path if read_path.exists() else read_path.parent).free
    if need * SPACE_MARGIN > free:
        raise DetectorNotReady(
            f"{det.name}: {points} points x {frames} frames need about {need / 1e9:.3g} GB of "
            f"images (uncompressed), but {read_path} has only {free / 1e9:.3g} GB free: "
            "take fewer points or frames, or free space first"
        )


def with_frames(
    plan: Generator, detectors: Iterable[Any], frames: int, points: int | None = None
) -> Generator:
    """Run ``plan`` with every area detector staged for ``frames`` images per point.

    The camera's ``num_images`` stage signal is set when the plan starts and restored
    when it ends, whether it completed, failed, or was aborted.  With ``points``, the
    expected image size is checked against the free space first (:func:`check_space`).
    """
    dets = area_detectors(detectors)
    saved: list[tuple[Any, Any]] = []

    def configured():
        # e.g. an IOC just restarted
        yield from wait_connected(dets, spec.SETTINGS.reconnect_timeout)
        for det in dets:
            preflight(det)
            if points is not None:
                check_space(det, points, frames)
        for det in dets:
            saved.append((det, det.cam.stage_sigs.get("num_images")))
            det.cam.stage_sigs["num_images"] = int(frames)
        try:
            return (yield from plan)
        except (RequestAbort, RequestStop, DeviceDisconnectedError):
            raise
        except Exception as ex:
            down = disconnected()
            if not down:
                raise
            # whatever failed first (a read, a put, a timeout), say which IOC went away
            raise DeviceDisconnectedError(
                f"IOC connection lost: PV {', '.join(sorted(down))} disconnected "
                f"({type(ex).__name__}: {ex})"
            ) from ex

    def restore():
        frameindex.flush()  # detectors unstaged: each image file gets its frame -> point index
        for det, value in saved:
            if value is None:
                det.cam.stage_sigs.pop("num_images", None)
            else:
                det.cam.stage_sigs["num_images"] = value
        saved.clear()
        yield from ()

    return (yield from bpp.finalize_wrapper(configured(), restore))
