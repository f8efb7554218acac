"""adscan.devices.connect: ophyd's device wait, then each late signal's blocking path."""

from __future__ import annotations

import pytest
from ophyd import Component as Cpt
from ophyd import Device, Signal

from adscan.devices import connect as connect_mod


class LateSignal(Signal):
    """Unconnected until its own ``wait_for_connection`` runs (``recovers``) or for good."""

    recovers = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ok = False
        self.blocking_calls = 0

    @property
    def connected(self):
        return self._ok

    def wait_for_connection(self, timeout=None):
        self.blocking_calls += 1
        if not self.recovers:
            raise TimeoutError(f"{self.name} could not connect")
        self._ok = True


class StuckSignal(LateSignal):
    recovers = False


class Box(Device):
    fine = Cpt(Signal, value=1)
    late = Cpt(LateSignal, value=2)


class StuckBox(Device):
    fine = Cpt(Signal, value=1)
    stuck = Cpt(StuckSignal, value=3)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(connect_mod, "SIGNAL_RETRY_TIMEOUT", 0.01)


def test_late_signal_connects_on_its_blocking_path():
    box = Box(name="box")
    connect_mod.connect(box, timeout=0.05)
    assert box.late.blocking_calls == 1 and box.late.connected


def test_signal_that_never_connects_is_named():
    box = StuckBox(name="box")
    with pytest.raises(TimeoutError, match=r"box: 1 signal\(s\) did not connect.*box_stuck"):
        connect_mod.connect(box, timeout=0.05)
    assert box.stuck.blocking_calls == 1


def test_connected_device_takes_the_fast_path():
    class Plain(Device):
        a = Cpt(Signal, value=1)

    assert connect_mod.connect(Plain(name="p"), timeout=1) < 1


def test_absent_ioc_fails_without_the_second_chance():
    class Absent(Device):
        a = Cpt(StuckSignal, value=1)
        b = Cpt(StuckSignal, value=2)

    box = Absent(name="gone")
    with pytest.raises(TimeoutError, match="Failed to connect to all signals"):
        connect_mod.connect(box, timeout=0.05)
    assert box.a.blocking_calls == box.b.blocking_calls == 0
