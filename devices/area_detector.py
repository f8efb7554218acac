"""The how-to's area detector: ADSimDetector v3.4 with HDF5 (LZ4), ROI and Stats plugins."""

from __future__ import annotations

import copy
import logging
import time

from apstools.devices import SimDetectorCam_V34, SingleTrigger_V34
from ophyd import Staged
from ophyd.areadetector import ADComponent, DetectorBase
from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
from ophyd.areadetector.plugins import (
    HDF5Plugin_V34,
    ImagePlugin_V34,
    PvaPlugin_V34,
    ROIPlugin_V34,
    StatsPlugin_V34,
)
from ophyd.status import StatusTimeoutError

from adscan.devices.fast_trigger import CachedADTriggerStatus, LeanStaging, levers_enabled

logger = logging.getLogger("adscan.devices")


def monitored(cpt):
    """A copy of component ``cpt`` whose signal is kept current by a CA monitor.

    Reading a monitored signal costs no Channel Access round trip.  Used for what is read at
    every point: with the IOC busy acquiring, each ``get()`` round trip waited for it (about
    10-30 ms a point).  The IOC posts these values before ``AcquireBusy`` falls, on the same
    circuit, so when the trigger completes the monitors already hold this point's values.
    """
    new = copy.copy(cpt)
    new.kwargs = {**cpt.kwargs, "auto_monitor": True}
    return new


class MyHDF5Plugin(FileStoreHDF5IterativeWrite, HDF5Plugin_V34, LeanStaging):
    """HDF5 file writer: one file per run stage, frames appended (Stream mode)."""

    port_name = monitored(HDF5Plugin_V34.port_name)  # ophyd validates the asyn ports
    nd_array_port = monitored(HDF5Plugin_V34.nd_array_port)  # at every stage (2 reads/plugin)
    enable = monitored(HDF5Plugin_V34.enable)  # read by generate_datum() at every trigger
    write_status = monitored(HDF5Plugin_V34.write_status)  # checked by read() at every point


class MyStatsPlugin(StatsPlugin_V34, LeanStaging):
    """Stats plugin whose per-point readings (total, max, unique ID) are CA monitors."""

    port_name = monitored(StatsPlugin_V34.port_name)
    nd_array_port = monitored(StatsPlugin_V34.nd_array_port)
    total = monitored(StatsPlugin_V34.total)
    max_value = monitored(StatsPlugin_V34.max_value)
    unique_id = monitored(StatsPlugin_V34.unique_id)


class MyCam(SimDetectorCam_V34, LeanStaging):
    """The how-to's cam; staged without re-putting values already there (``LeanStaging``)."""

    port_name = monitored(SimDetectorCam_V34.port_name)  # read by every stage's port check


class MyImagePlugin(ImagePlugin_V34, LeanStaging):
    """image1, staged by ``LeanStaging``."""

    port_name = monitored(ImagePlugin_V34.port_name)
    nd_array_port = monitored(ImagePlugin_V34.nd_array_port)


class MyPvaPlugin(PvaPlugin_V34, LeanStaging):
    """Pva1, staged by ``LeanStaging``."""

    port_name = monitored(PvaPlugin_V34.port_name)
    nd_array_port = monitored(PvaPlugin_V34.nd_array_port)


class MyROIPlugin(ROIPlugin_V34, LeanStaging):
    """ROI1, staged by ``LeanStaging``."""

    port_name = monitored(ROIPlugin_V34.port_name)
    nd_array_port = monitored(ROIPlugin_V34.nd_array_port)


class SingleTriggerV34(SingleTrigger_V34):
    """apstools' ``SingleTrigger_V34`` with ophyd's trigger race closed, and a deadline.

    ophyd's ``SingleTrigger.trigger()`` returns ``self._status``, which the acquisition
    callback (a CA thread) sets to ``None`` when AcquireBusy falls.  With short exposures
    the frames can be done before ``trigger()`` returns, and the RunEngine then receives
    ``None`` ("'NoneType' object has no attribute 'add_callback'").  Here the status
    object created is the one returned.

    A trigger not done after ``trigger_slack`` x its frames' time + ``trigger_margin`` s
    fails (ophyd's ``StatusTimeoutError``) and the detector's state is logged: a detector
    that stops finishing (IOC alive, AcquireBusy never falling) closes the run with a
    reason instead of holding the queue forever.

    The status is ``CachedADTriggerStatus`` (no CA read before the Acquire put; the frame
    count is the cam's ``num_images``, read once at stage) unless ``ADSCAN_CLIENT_LEVERS=0``.
    """

    trigger_slack: float = 2.0
    trigger_margin: float = 60.0

    def stage(self):
        self._adscan_frames = None
        staged = super().stage()
        frames = int(self.cam.num_images.get(use_monitor=False))
        if levers_enabled():
            self._adscan_frames = frames
        period = max(float(self.cam.acquire_time.get()), float(self.cam.acquire_period.get()))
        self._adscan_trigger_timeout = self.trigger_slack * frames * period + self.trigger_margin
        return staged

    def trigger(self):
        if self._staged != Staged.yes:
            raise RuntimeError("This detector is not ready to trigger: stage() it first.")
        fast = getattr(self, "_adscan_frames", None) is not None
        timeout = getattr(self, "_adscan_trigger_timeout", None)
        status = (CachedADTriggerStatus if fast else self._status_type)(self, timeout=timeout)
        status.add_callback(self._report_stall)
        self._status = status
        self._acquisition_signal.put(1, wait=False)
        self.generate_datum(self._image_name, time.time(), {})
        return status

    def _report_stall(self, status) -> None:
        if not isinstance(status.exception(), StatusTimeoutError):
            return
        if self._status is status:
            self._status = None  # a late AcquireBusy fall must not finish a failed status
        logger.error(
            "%s: trigger not done after %.1f s; %s", self.name, status.timeout, self.state_line()
        )

    def state_line(self) -> str:
        """The acquisition's state as the IOC reports it (for a stall's log line)."""
        parts = []
        for sig in (
            self.cam.acquire,
            self.cam.acquire_busy,
            self.cam.detector_state,
            self.cam.num_images_counter,
            self.cam.num_images,
            self.hdf1.capture,
            self.hdf1.num_captured,
        ):
            try:
                value = sig.get(as_string=True, timeout=2)
            except Exception as ex:  # noqa: BLE001 - report what can be read
                value = f"unreadable ({type(ex).__name__})"
            parts.append(f"{sig.dotted_name}={value}")
        return " ".join(parts)


class SimDetector_V34(SingleTriggerV34, DetectorBase, LeanStaging):
    """ADSimDetector v3.4 as in the how-to (trigger race fixed, see ``SingleTriggerV34``).

    ``cam`` is declared before ``hdf1`` so that the camera's ``num_images`` is staged
    before the HDF5 plugin reads it as the number of frames per point.
    """

    cam = ADComponent(MyCam, "cam1:")
    hdf1 = ADComponent(MyHDF5Plugin, "HDF1:", write_path_template="/", read_path_template="/")
    image = ADComponent(MyImagePlugin, "image1:")
    pva = ADComponent(MyPvaPlugin, "Pva1:")
    roi1 = ADComponent(MyROIPlugin, "ROI1:")
    stats1 = ADComponent(MyStatsPlugin, "Stats1:")

    #: cam1 (AcquireTime, AcquirePeriod) put back after an IOC restart (``configure_timing``).
    acquire_times: tuple[float, float] | None = None

    def configure_timing(self, acquire_time: float, acquire_period: float) -> None:
        """Put the configured acquire time and period, and remember them for restarts."""
        self.acquire_times = (float(acquire_time), float(acquire_period))
        self.cam.acquire_time.put(self.acquire_times[0])
        self.cam.acquire_period.put(self.acquire_times[1])

    def restore_after_restart(self) -> bool:
        """After an IOC restart (HDF1 not primed): the acquire times put back and HDF1 primed
        with one frame (apstools' ``AD_prime_plugin2``).  True if it was needed.

        Plans call it before staging (:func:`adscan.plans.frames.preflight`)."""
        from apstools.devices import AD_plugin_primed, AD_prime_plugin2

        if AD_plugin_primed(self.hdf1):
            return False
        if self.acquire_times is not None:
            self.configure_timing(*self.acquire_times)
        logger.info("priming %s.hdf1 with one frame", self.name)
        AD_prime_plugin2(self.hdf1)
        return True

    def read(self):
        """The reading, after checking that HDF1 wrote this point's frames.

        A file writer error (disk full, file size limit, directory gone) would otherwise
        leave events that point at frames missing from the HDF5 file: fail the point.
        """
        if (
            self.hdf1._staged == Staged.yes
            and self.hdf1.write_status.get(as_string=True) == "Write error"
        ):  # a monitor: no round trip per point
            raise OSError(
                f"{self.name}: HDF5 file writer error: "
                f"{self.hdf1.write_message.get(use_monitor=False)}"
            )
        return super().read()


def ad_setup(
    det: SimDetector_V34,
    *,
    frames: int,
    write_path: str,
    read_path: str,
    compression: str = "LZ4",
) -> None:
    """The how-to's ``ad_setup``: n frames per point, HDF5 with LZ4, stats recorded.

    Records for each image: the HDF5 file (datum), total counts, maximum counts and
    the image's unique ID (last frame of each point, as the Stats plugin reports it).
    """
    det.hdf1.write_path_template = write_path
    det.hdf1.read_path_template = read_path
    det.cam.stage_sigs["num_images"] = frames
    det.cam.stage_sigs["wait_for_plugins"] = "Yes"
    det.hdf1.stage_sigs["compression"] = compression
    det.hdf1.stage_sigs["blocking_callbacks"] = "No"
    det.image.stage_sigs["blocking_callbacks"] = "No"
    det.hdf1.stage_sigs.move_to_end("capture", last=True)

    det.read_attrs = ["hdf1", "stats1"]
    det.hdf1.kind = "hinted"
    det.stats1.kind = "hinted"
    det.stats1.read_attrs = ["total", "max_value", "unique_id"]
    for name in ("total", "max_value", "unique_id"):
        getattr(det.stats1, name).kind = "hinted"


def frames_per_point(det: SimDetector_V34) -> int:
    """Frames the detector will collect at each point (its staged ``num_images``)."""
    return int(det.cam.stage_sigs["num_images"])
