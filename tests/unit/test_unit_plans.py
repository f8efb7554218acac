"""The plans' parameter specs, in process: annotation, run-time checks, command as called."""

from __future__ import annotations

import inspect

import pytest

from adscan.plans import (
    PlanArgumentError,
    adscan_count,
    adscan_grid_scan,
    adscan_read_stats,
    adscan_scan,
    adscan_scan2,
)


def starts(RE) -> list[dict]:
    return [doc for name, doc in RE.docs if name == "start"]


def events(RE) -> list[dict]:
    return [doc for name, doc in RE.docs if name == "event"]


def test_annotation_and_defaults_come_from_the_configuration(fakes, cfg):
    ann = adscan_scan._custom_parameter_annotation_["parameters"]
    assert ann["motor"]["devices"] == {"Motors": ["m1", "m2"]}
    assert ann["detectors"]["devices"] == {"Detectors": ["simdet"]}
    assert ann["num"] == {
        "description": "Number of points (1 to 100000).",
        "annotation": "int",
        "min": 1,
        "max": 100_000,
    }
    sig = inspect.signature(adscan_scan)
    assert sig.parameters["frames"].default == cfg["detector"]["frames_per_point"]
    assert sig.parameters["detectors"].default == ("simdet",)
    assert inspect.isgeneratorfunction(adscan_scan)  # the queue server lists it as a plan


def test_scan_records_the_command_as_called_and_the_frames(fakes, RE):
    (uid,) = RE(adscan_scan("m1", -1, 1, 3, frames=2))
    (start,) = starts(RE)
    assert start["uid"] == uid
    assert start["adscan_command"] == "adscan_scan(m1, -1, 1, 3, frames=2, detectors=['simdet'])"
    assert start["adscan_plan"] == "adscan_scan" and start["frames_per_point"] == 2
    assert start["plan_name"] == "scan" and list(start["motors"]) == ["m1"]
    assert [e["data"]["m1"] for e in events(RE)] == [-1.0, 0.0, 1.0]
    assert [e["data"]["simdet_total"] for e in events(RE)] == [2.0, 2.0, 2.0]  # 2 frames/point
    assert fakes["simdet"].cam.stage_sigs["num_images"] == 1  # restored after the plan


def test_count_grid_and_scan2_run(fakes, RE):
    RE(adscan_count(num=2, frames=1, md={"sample": "Si"}))
    RE(adscan_scan2("m1", 0, 1, "m2", 1, 0, 2))
    RE(adscan_grid_scan("m1", -1, 1, 2, "m2", 0, 1, 3, snake=True, frames=1))
    count, scan2, grid = starts(RE)
    assert count["sample"] == "Si" and count["num_points"] == 2
    assert count["adscan_command"] == (
        "adscan_count(detectors=['simdet'], num=2, frames=1, delay=0.0)"
    )
    assert list(scan2["motors"]) == ["m1", "m2"] and scan2["frames_per_point"] == 3  # the default
    assert list(grid["shape"]) == [2, 3] and list(grid["snaking"]) == [False, True]
    assert len(events(RE)) == 2 + 2 + 6


@pytest.mark.parametrize(
    "plan, words",
    [
        (lambda: adscan_scan("m9", 0, 1, 3), "unknown motor 'm9'"),
        (lambda: adscan_scan("m1", 0, 1, 0), "num must be between 1 and 100000"),
        (lambda: adscan_scan("m1", 0, 1, True), "num must be an integer"),
        (lambda: adscan_scan("m1", 0, 11, 3), "outside the soft limits of m1"),
        (lambda: adscan_scan("m1", float("nan"), 1, 3), "start/stop must be a finite number"),
        (lambda: adscan_scan("m1", 0, 1, 3, frames=1001), "frames must be between 1 and 1000"),
        (lambda: adscan_scan2("m1", 0, 1, "m1", 0, 1, 3), "must differ"),
        (lambda: adscan_grid_scan("m1", 0, 1, 1000, "m2", 0, 1, 1000), "exceeds"),
        (lambda: adscan_grid_scan("m1", 0, 1, 2, "m2", 0, 1, 2, snake=1), "snake must be True"),
        (lambda: adscan_count(detectors="simdet"), "detectors must be a list"),
        (lambda: adscan_count(detectors=["simdet", "simdet"]), "must not repeat"),
        (lambda: adscan_count(delay=-1), "delay must be a number from 0"),
        (lambda: adscan_count(md={"scan_id": 3}), "reserved"),
        (lambda: adscan_count(md={"a.b": 1}), "not allowed"),
    ],
)
def test_bad_arguments_are_refused_before_anything_moves(fakes, RE, plan, words):
    with pytest.raises(PlanArgumentError, match=words.replace("(", r"\(").replace(")", r"\)")):
        RE(plan())
    assert RE.docs == []  # no run opened
    assert fakes["m1"].position == 0 and fakes["m2"].position == 0


def test_read_stats_needs_no_frames_wrapper(fakes, RE):
    det = fakes["simdet"]
    det.stats1 = det.cam  # any readable component will do for the plan's logic
    try:
        RE(adscan_read_stats("simdet", num=2))
    finally:
        del det.stats1
    (start,) = starts(RE)
    assert start["adscan_plan"] == "adscan_read_stats" and "frames_per_point" not in start
    assert start["adscan_command"] == "adscan_read_stats(detector=simdet, num=2, delay=0.0)"
    assert len(events(RE)) == 2
