"""SPEC file numbering, in process: scans numbered on across writers (service restarts)."""

from __future__ import annotations

from bluesky import plans as bp
from ophyd.sim import SynGauss

from adscan.callbacks.specfile import make_spec_writer, scan_numbers_in_file, spec_file_path


def run_counts(cfg, RE, n: int, det) -> list[int]:
    writer = make_spec_writer(cfg, RE=RE)
    token = RE.subscribe(writer.receiver)
    try:
        for _ in range(n):
            RE(bp.count([det], num=1))
    finally:
        RE.unsubscribe(token)
    assert writer.errors == 0
    return scan_numbers_in_file(spec_file_path(cfg))


def test_scan_numbers_continue_across_writers(cfg, fakes, RE):
    det = SynGauss("det", fakes["m1"], "m1", center=0, Imax=1, sigma=1)
    assert run_counts(cfg, RE, 2, det) == [1, 2]
    RE.md["scan_id"] = 0  # a RunEngine that restarted without its metadata file
    assert run_counts(cfg, RE, 1, det) == [1, 2, 3]  # the file, not RE.md, decides


def test_command_and_resource_lines(cfg, fakes, RE):
    from adscan.plans import adscan_count

    writer = make_spec_writer(cfg, RE=RE)
    RE.subscribe(writer.receiver)
    RE(adscan_count(num=1, frames=2))
    text = spec_file_path(cfg).read_text()
    assert "adscan_count(detectors=['simdet'], num=1, frames=2, delay=0.0)" in text
    assert writer.errors == 0
