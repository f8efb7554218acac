"""The profile as users load it: missing devices reported, frames restored, metadata kept.

``from adscan.instrument import *`` runs in subprocesses (as IPython or the queue-server
worker would load it) against the session's simulated beamline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(240)


def run_profile(code: str, env: dict | None = None, timeout: float = 120) -> dict:
    """Run ``from adscan.instrument import *`` then ``code`` (which prints one JSON line)."""
    script = "from adscan.instrument import *\nimport json\n" + code
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def test_missing_device_is_named_and_the_rest_usable(beamline, iconfig, tmp_path):
    """A device whose IOC does not answer is reported by name; the others still scan."""
    cfg_dir = Path(os.environ["ADSCAN_ICONFIG"]).parent
    new = tmp_path / "config"
    new.mkdir()
    cfg = yaml.safe_load((cfg_dir / "iconfig.yml").read_text())
    cfg["epics"]["connection_timeout"] = 1
    (new / "iconfig.yml").write_text(yaml.safe_dump(cfg))
    devices = yaml.safe_load((cfg_dir / "devices.yml").read_text())
    devices["motors"]["m9"] = {"pv": "no_such_motor", "description": "not served"}
    (new / "devices.yml").write_text(yaml.safe_dump(devices))
    result, out = run_profile(
        "uids = RE(adscan_scan('m1', 0, 0.2, 2, frames=1))\n"
        "print(json.dumps({'missing': missing_devices, 'n': len(uids),"
        " 'has_m9': 'm9' in globals()}))",
        env={"ADSCAN_ICONFIG": str(new / "iconfig.yml")},
    )
    assert "device m9 is MISSING" in out
    assert list(result["missing"]) == ["m9"] and "no_such_motor" in result["missing"]["m9"]
    assert result["n"] == 1 and result["has_m9"] is False


def test_frames_restored_after_a_failing_plan_and_scan_id_persists(beamline):
    """``frames`` applies during the plan only, failure or not; scan_id survives a restart."""
    code = (
        "from bluesky import plan_stubs as bps\n"
        "from adscan.plans.frames import with_frames\n"
        "before = simdet.cam.stage_sigs['num_images']\n"
        "seen = {}\n"
        "def failing():\n"
        "    seen['during'] = simdet.cam.stage_sigs['num_images']\n"
        "    yield from bps.null()\n"
        "    raise RuntimeError('plan failed on purpose')\n"
        "try:\n"
        "    RE(with_frames(failing(), [simdet], 7))\n"
        "except RuntimeError:\n"
        "    pass\n"
        "RE(adscan_count(num=1, frames=2))\n"
        "import time; time.sleep(0.5)\n"
        "print(json.dumps({'before': before, 'during': seen['during'],"
        " 'after': simdet.cam.stage_sigs['num_images'], 'scan_id': RE.md['scan_id'],"
        " 'frames': cat[-1].metadata['start']['frames_per_point']}))"
    )
    first, _ = run_profile(code)
    assert first["during"] == 7
    assert first["after"] == first["before"] == 3
    assert first["frames"] == 2
    second, _ = run_profile(
        "RE(adscan_count(num=1, frames=1))\nimport time; time.sleep(0.5)\n"
        "print(json.dumps({'scan_id': RE.md['scan_id']}))"
    )
    assert second["scan_id"] == first["scan_id"] + 1
