"""A trigger that does not finish in time fails, naming the detector's state (no endless wait).

On the session's IOC: a 3 s exposure against a 0.5 s deadline stands for a detector that
stopped finishing (the IOC answers, AcquireBusy never falls).  The RunEngine gets ophyd's
StatusTimeoutError and the log line says where the acquisition stood.
"""

from __future__ import annotations

import logging
import time

import pytest
from ophyd.status import StatusTimeoutError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def simdet(iconfig, beamline):
    from adscan.core import startup

    found = startup.create_devices(iconfig)
    assert not found.missing, found.missing
    det = found.devices["simdet"]
    yield det
    det.cam.acquire.put(0)
    deadline = time.monotonic() + 20
    while det.cam.acquire_busy.get(use_monitor=False) and time.monotonic() < deadline:
        time.sleep(0.05)
    det.configure_timing(*det.acquire_times)


def test_a_stalled_trigger_fails_with_the_detector_state(simdet, caplog):
    simdet.cam.acquire_time.put(3.0)
    simdet.cam.acquire_period.put(3.0)
    simdet.trigger_slack, simdet.trigger_margin = 0.0, 0.5  # deadline 0.5 s
    simdet.stage()
    try:
        t0 = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="adscan.devices"):
            status = simdet.trigger()
            with pytest.raises(StatusTimeoutError):
                status.wait(10)
            deadline = time.monotonic() + 5
            while "trigger not done" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
        assert time.monotonic() - t0 < 2.5  # failed at its deadline, not after the exposure
        assert "simdet: trigger not done after 0.5 s" in caplog.text, caplog.text
        assert "cam.acquire_busy=Acquiring" in caplog.text, caplog.text
        assert "cam.num_images_counter=0" in caplog.text, caplog.text
        assert simdet._status is None
    finally:
        simdet.unstage()


def test_the_deadline_follows_the_frames_time(simdet):
    simdet.cam.acquire_time.put(0.25)
    simdet.cam.acquire_period.put(0.5)
    simdet.stage()
    try:
        frames = int(simdet.cam.num_images.get(use_monitor=False))
        assert frames == 3  # the configured frames per point
        assert simdet._adscan_trigger_timeout == pytest.approx(2.0 * frames * 0.5 + 60.0)
        assert simdet.trigger().wait(20) is None  # a normal trigger is well inside it
    finally:
        simdet.unstage()
