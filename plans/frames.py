"""Collect n frames per point: the detector frame configuration applied around a plan."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from bluesky import preprocessors as bpp


def area_detectors(detectors: Iterable[Any]) -> list[Any]:
    """The detectors among ``detectors`` that have an areaDetector ``cam``."""
    return [d for d in detectors if hasattr(d, "cam") and hasattr(d.cam, "stage_sigs")]


def with_frames(plan: Generator, detectors: Iterable[Any], frames: int) -> Generator:
    """Run ``plan`` with every area detector staged for ``frames`` images per point.

    The camera's ``num_images`` stage signal is set when the plan starts and restored
    when it ends, whether it completed, failed, or was aborted.
    """
    dets = area_detectors(detectors)
    saved: list[tuple[Any, Any]] = []

    def configured():
        for det in dets:
            saved.append((det, det.cam.stage_sigs.get("num_images")))
            det.cam.stage_sigs["num_images"] = int(frames)
        return (yield from plan)

    def restore():
        for det, value in saved:
            if value is None:
                det.cam.stage_sigs.pop("num_images", None)
            else:
                det.cam.stage_sigs["num_images"] = value
        saved.clear()
        yield from ()

    return (yield from bpp.finalize_wrapper(configured(), restore))
