"""The IOC's callback-queue watch logs each new overflow once, and never stops the IOC."""

from __future__ import annotations

import logging

from adscan.iocs import callback_queue


def _status(overflows: dict[str, int]):
    return lambda reset=False: {
        "size": 2000,
        "used": dict.fromkeys(callback_queue.PRIORITIES, 0),
        "max_used": {"low": 2000, "medium": 0, "high": 3},
        "overflows": overflows,
    }


def test_new_overflows_are_logged_once(monkeypatch, caplog):
    watch = callback_queue.OverflowWatch()
    monkeypatch.setattr(callback_queue, "status", _status({"low": 0, "medium": 0, "high": 0}))
    assert watch.poll() == {}
    monkeypatch.setattr(callback_queue, "status", _status({"low": 4, "medium": 0, "high": 0}))
    with caplog.at_level(logging.ERROR, logger="adscan.ioc.callbacks"):
        assert watch.poll() == {"low": 4}
        assert watch.poll() == {}  # the same count: no second report
    assert len(caplog.records) == 1
    assert "{'low': 4}" in caplog.text and "stale values" in caplog.text


def test_a_failing_status_is_no_overflow(monkeypatch):
    def broken(reset=False):
        raise RuntimeError("callback queues not running")

    monkeypatch.setattr(callback_queue, "status", broken)
    assert callback_queue.OverflowWatch().poll() == {}
