"""tests/peer/pyepics_release.py: a released PV's channel is never read by its metadata task.

A fake shim stands in for ``ophyd._pyepics_shim``: its metadata read takes a while and
records whether the channel was cleared under it (what segfaults libca for real).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peer"))

import pyepics_release  # noqa: E402


class FakePV:
    def __init__(self, name: str, read_seconds: float = 0.3):
        self.pvname = name
        self.chid = 1
        self.read_seconds = read_seconds
        self.read_a_cleared_channel = False
        self.reads = 0

    def get_all_metadata_blocking(self, timeout):
        self.reads += 1
        t_end = time.monotonic() + self.read_seconds
        while time.monotonic() < t_end:
            if self.chid is None:
                self.read_a_cleared_channel = True
            time.sleep(0.005)
        return {"units": "mm"}


class Dispatcher:
    """One utility thread, like ophyd's."""

    def __init__(self):
        self.threads: list[threading.Thread] = []
        self.gate = threading.Event()
        self.gate.set()

    def schedule_utility_task(self, fn, **kwargs):
        def run():
            self.gate.wait()
            fn(**kwargs)

        t = threading.Thread(target=run, daemon=True)
        self.threads.append(t)
        t.start()


def fake_shim() -> SimpleNamespace:
    def release_pvs(*pvs):
        for pv in pvs:
            pv.chid = None

    class PyepicsShimPV(FakePV):
        def get_all_metadata_callback(self, callback, *, timeout):  # ophyd's: no guard
            shim._dispatcher.schedule_utility_task(
                lambda pvname: callback(pvname, self.get_all_metadata_blocking(timeout)),
                pvname=self.pvname,
            )

    shim = SimpleNamespace(
        PyepicsShimPV=PyepicsShimPV, release_pvs=release_pvs, _dispatcher=Dispatcher()
    )
    return shim


def test_unpatched_release_clears_the_channel_under_a_running_read():
    """The fake reproduces the race (so the next test can fail)."""
    shim = fake_shim()
    pv = shim.PyepicsShimPV("ad:TIFF1:PluginType_RBV")
    pv.get_all_metadata_callback(lambda *a: None, timeout=1)
    time.sleep(0.05)
    shim.release_pvs(pv)
    shim._dispatcher.threads[0].join(5)
    assert pv.read_a_cleared_channel


def test_release_waits_for_the_running_metadata_read():
    shim = fake_shim()
    ns = SimpleNamespace(release_pvs=shim.release_pvs)  # ophyd.cl, made before the patch
    pyepics_release.patch(shim, (ns,))
    pv = shim.PyepicsShimPV("ad:TIFF1:PluginType_RBV")
    got = []
    pv.get_all_metadata_callback(lambda name, md: got.append((name, md)), timeout=1)
    time.sleep(0.05)
    t0 = time.monotonic()
    ns.release_pvs(pv)  # the namespace's release is the patched one
    waited = time.monotonic() - t0
    shim._dispatcher.threads[0].join(5)
    assert not pv.read_a_cleared_channel
    assert pv.chid is None
    assert waited > 0.15, waited
    assert got == [("ad:TIFF1:PluginType_RBV", {"units": "mm"})]


def test_a_task_that_starts_after_release_does_not_read():
    shim = fake_shim()
    pyepics_release.patch(shim)
    shim._dispatcher.gate.clear()  # the utility thread is busy elsewhere
    pv = shim.PyepicsShimPV("ad:cam1:Acquire")
    pv.get_all_metadata_callback(lambda *a: None, timeout=1)
    shim.release_pvs(pv)  # nothing running for this PV: no wait
    shim._dispatcher.gate.set()
    shim._dispatcher.threads[0].join(5)
    assert pv.reads == 0


def test_release_of_other_pvs_does_not_wait():
    shim = fake_shim()
    pyepics_release.patch(shim)
    slow = shim.PyepicsShimPV("ad:slow", read_seconds=1.0)
    other = shim.PyepicsShimPV("ad:other")
    slow.get_all_metadata_callback(lambda *a: None, timeout=2)
    time.sleep(0.05)
    t0 = time.monotonic()
    shim.release_pvs(other)
    assert time.monotonic() - t0 < 0.5
    shim._dispatcher.threads[0].join(5)
