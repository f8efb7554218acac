"""The frames wrapper and its pre-flight checks, in process with a fake area detector."""

from __future__ import annotations

import pytest
from bluesky import plans as bp

from adscan.plans.frames import DetectorNotReady, preflight, with_frames


def test_frames_staged_during_the_plan_and_restored_after(fakes, RE):
    det = fakes["simdet"]
    RE(with_frames(bp.count([det], num=2), [det], 4))
    totals = [doc["data"]["simdet_total"] for name, doc in RE.docs if name == "event"]
    assert totals == [4.0, 4.0]
    assert det.cam.stage_sigs["num_images"] == 1


def test_frames_restored_after_a_failing_plan(fakes, RE):
    det = fakes["simdet"]

    def failing():
        yield from bp.count([det], num=1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        RE(with_frames(failing(), [det], 7))
    assert det.cam.stage_sigs["num_images"] == 1


def test_preflight_calls_the_detector_restore_method(fakes):
    det = fakes["simdet"]
    det.needs_restore = True
    preflight(det)
    assert det.restores == 1 and not det.needs_restore
    assert det.hdf1.file_path.get() == det.hdf1.write_path_template


def test_preflight_refuses_an_image_directory_that_is_a_file(fakes, tmp_path):
    det = fakes["simdet"]
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    det.hdf1.read_path_template = str(target)
    with pytest.raises(DetectorNotReady, match="is not a directory"):
        preflight(det)


def test_preflight_refuses_a_directory_the_ioc_does_not_see(fakes):
    det = fakes["simdet"]
    det.hdf1.file_path_exists.put(False)
    with pytest.raises(DetectorNotReady, match="FilePathExists_RBV=No"):
        preflight(det)
