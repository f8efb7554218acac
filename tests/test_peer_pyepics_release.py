"""The peer plugin's pyepics fix against the real library: ophyd's ``ad_prefix`` pattern
(connect a signal, destroy it at once) repeated on the session's detector IOC.

Unpatched, ophyd 1.11.2 + pyepics 3.5.10 segfault within 400 cycles here (4 runs of 4:
the metadata task reads a channel ``release_pvs`` just cleared; bluesky/ophyd#937).  This
asserts that, patched, the client survives them (see tests/peer/pyepics_release.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import helpers

PLUGIN_DIR = Path(__file__).resolve().parent / "peer"

CYCLES = 400

SCRIPT = textwrap.dedent(
    """
    import sys
    import ophyd
    from ophyd import EpicsSignalRO, _pyepics_shim
    from pyepics_release import patch

    patch(_pyepics_shim, (ophyd.cl,))
    prefix, cycles = sys.argv[1], int(sys.argv[2])
    names = ["TIFF1:PluginType_RBV", "cam1:Acquire_RBV", "HDF1:FilePath_RBV", "cam1:ImageMode_RBV"]
    for i in range(cycles):
        sig = EpicsSignalRO(prefix + names[i % len(names)])
        sig.wait_for_connection(timeout=10)
        sig.destroy()
    print("survived", cycles)
    """
)


def test_destroy_right_after_connect_does_not_crash_pyepics(beamline, iconfig):
    from adscan.services.ioc import ioc_env

    env = ioc_env(helpers.CA_PORTS[0])
    env.update(OPHYD_CONTROL_LAYER="pyepics", PYTHONPATH=str(PLUGIN_DIR), PYTHONFAULTHANDLER="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, iconfig["ioc"]["ad_prefix"], str(CYCLES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"survived {CYCLES}" in proc.stdout
