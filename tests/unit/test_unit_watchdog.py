"""adscan.devices.watchdog.disconnected: only the PVs of the devices in use count."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, Signal

from adscan.devices import REGISTRY
from adscan.devices.watchdog import disconnected, fail_on_disconnect


class Link(Signal):
    """A signal with a PV name, whose connection the test sets."""

    up = True
    pvname = ""

    @property
    def connected(self):
        return self.up


class Motor(Device):
    done = Cpt(Link, value=1)


def watched_motor(pv: str) -> Motor:
    motor = Motor(name="wd_m1")
    motor.done.pvname = pv
    return fail_on_disconnect(motor, motor.done)


def test_only_the_registered_device_reports_its_lost_pv(monkeypatch):
    old = watched_motor("old:m1.DMOV")  # an earlier start-up's motor (another IOC)
    new = watched_motor("new:m1.DMOV")
    monkeypatch.setitem(REGISTRY, "wd_m1", new)
    old.done.up = False  # the earlier IOC is gone
    assert disconnected() == {}
    new.done.up = False
    assert disconnected() == {"new:m1.DMOV": "wd_m1"}
    monkeypatch.delitem(REGISTRY, "wd_m1")  # no longer in use: not reported either
    assert disconnected() == {}
