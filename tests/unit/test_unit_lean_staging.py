"""LeanStaging keeps ophyd's stage/unstage contract while skipping puts of values in place."""

from __future__ import annotations

import pytest
from ophyd import Component, Signal, Staged

from adscan.devices.fast_trigger import LeanStaging


class Counted(Signal):
    """A soft signal that counts the writes it receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes: list = []

    def put(self, value, **kwargs):
        self.writes.append(value)
        super().put(value, **kwargs)


class Failing(Signal):
    def put(self, value, **kwargs):
        raise RuntimeError("IOC refused the put")


class Child(LeanStaging):
    c = Component(Counted, value=0)


class Box(LeanStaging):
    a = Component(Counted, value=1)
    b = Component(Counted, value=7)
    child = Component(Child)


@pytest.fixture
def box(monkeypatch):
    monkeypatch.setenv("ADSCAN_CLIENT_LEVERS", "1")
    dev = Box(name="box")
    dev.stage_sigs.update({"a": 1, "b": 2})
    dev.child.stage_sigs["c"] = 3
    return dev


def test_value_in_place_is_not_put_and_originals_are_restored(box):
    box.stage()
    assert box._staged == Staged.yes and box.child._staged == Staged.yes
    assert (box.a.get(), box.b.get(), box.child.c.get()) == (1, 2, 3)
    assert box.a.writes == [] and box.b.writes == [2] and box.child.c.writes == [3]
    box.unstage()
    assert (box.a.get(), box.b.get(), box.child.c.get()) == (1, 7, 0)
    assert box.a.writes == [] and box.b.writes == [2, 7] and box.child.c.writes == [3, 0]
    assert box._staged == Staged.no and not box._original_vals


def test_a_signal_changed_during_the_run_is_put_back(box):
    box.stage()
    box.a.put(5)  # e.g. the IOC counting frames in array_counter
    box.unstage()
    assert box.a.get() == 1 and box.a.writes == [5, 1]


def test_error_while_staging_restores_what_was_done(box, monkeypatch):
    box.child.stage_sigs.clear()
    box.child.stage_sigs[Failing(name="bad", value=0)] = 1
    with pytest.raises(RuntimeError, match="refused"):
        box.stage()
    assert box.b.get() == 7 and box._staged == Staged.no


def test_levers_off_is_ophyd_behaviour(box, monkeypatch):
    monkeypatch.setenv("ADSCAN_CLIENT_LEVERS", "0")
    box.stage()
    assert box.a.writes == [1]  # ophyd puts every stage signal
    box.unstage()
    assert box.a.writes == [1, 1] and box.b.get() == 7
