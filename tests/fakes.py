"""Fake devices for the unit layer (``tests/unit``): no EPICS, no IOC, no process.

``ophyd.sim`` axes and detector stand in for the motors and a plain detector; ``FakeAD`` has
what :func:`adscan.plans.frames.with_frames` and ``preflight`` use of an area detector (a
``cam`` with stage signals, an ``hdf1`` with paths, ``restore_after_restart``).
"""

from __future__ import annotations

from pathlib import Path

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.sim import SynAxis, SynGauss


class LimitedAxis(SynAxis):
    """A simulated motor with soft limits (what plans check positions against)."""

    limits = (-10.0, 10.0)


class FakeCam(Device):
    acquire_time = Cpt(Signal, value=0.01)
    acquire_period = Cpt(Signal, value=0.01)
    num_images = Cpt(Signal, value=1)


class FakeHDF(Device):
    file_path = Cpt(Signal, value="")
    file_path_exists = Cpt(Signal, value=True)
    write_message = Cpt(Signal, value="")


class FakeAD(Device):
    """An area detector's surface, enough for the frames wrapper's pre-flight checks."""

    cam = Cpt(FakeCam, "cam1:")
    hdf1 = Cpt(FakeHDF, "HDF1:")
    total = Cpt(Signal, value=0.0, kind="hinted")

    def __init__(self, *args, image_dir: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.hdf1.read_path_template = f"{image_dir}/"
        self.hdf1.write_path_template = f"{image_dir}/"
        self.cam.stage_sigs["num_images"] = 1
        self.restores = 0  # calls of restore_after_restart
        self.needs_restore = False

    def restore_after_restart(self) -> bool:
        self.restores += 1
        needed, self.needs_restore = self.needs_restore, False
        return needed

    def trigger(self):
        self.total.put(float(self.cam.num_images.get()))
        return super().trigger()


def make_fakes(image_dir: Path) -> dict:
    """``m1``, ``m2`` (soft limits -10..10) and ``simdet`` (a FakeAD) by name."""
    m1 = LimitedAxis(name="m1", labels={"motor"})
    m2 = LimitedAxis(name="m2", labels={"motor"})
    simdet = FakeAD("fake:", name="simdet", image_dir=image_dir, labels={"detector"})
    return {"m1": m1, "m2": m2, "simdet": simdet}


def gauss_detector(motor) -> SynGauss:
    """A plain (non area) simulated detector that follows ``motor``."""
    return SynGauss("gauss", motor, "m1", center=0, Imax=1, sigma=1)
