"""The profile's live Publisher never slows or fails a run when the 0MQ proxy is missing or dead.

In-process RunEngine with bluesky's simulated detector and motor (a unit test of the callback,
no hardware involved); the proxy is the real ``bluesky-0MQ-proxy`` on loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adscan.callbacks.publisher import LivePublisher
from adscan.ports import free_ports

pytestmark = pytest.mark.timeout(120)

PROXY = str(Path(sys.executable).with_name("bluesky-0MQ-proxy"))


def test_publish_without_proxy_never_blocks():
    (port,) = free_ports(1)
    pub = LivePublisher(f"127.0.0.1:{port}", hwm=100)
    doc = {"uid": "x", "data": list(range(2000))}  # about 10 kB pickled
    t0 = time.monotonic()
    for _ in range(20_000):  # far beyond the high-water mark: dropped, not queued
        pub("event", doc)
    elapsed = time.monotonic() - t0
    t0 = time.monotonic()
    pub.close()  # LINGER 0: nothing waits for the missing proxy
    assert time.monotonic() - t0 < 1.0
    assert pub.sent == 20_000 and pub.errors == 0
    assert elapsed < 10.0, elapsed  # bound only: a blocking send would hang the test


def _scan(publisher=None, n=200):
    from bluesky import RunEngine
    from bluesky.plans import scan
    from ophyd.sim import det, motor

    RE = RunEngine()
    if publisher is not None:
        RE.subscribe(publisher)
    names = []
    RE.subscribe(lambda name, doc: names.append(name))
    t0 = time.monotonic()
    (uid,) = RE(scan([det], motor, -1, 1, n))
    return uid, time.monotonic() - t0, names.count("event")


def test_run_with_dead_proxy_succeeds_in_the_same_time():
    p_in, p_out = free_ports(2)
    proxy = subprocess.Popen(
        [
            PROXY,
            "--in-address",
            f"tcp://127.0.0.1:{p_in}",
            "--out-address",
            f"tcp://127.0.0.1:{p_out}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        pub = LivePublisher(f"127.0.0.1:{p_in}")
        time.sleep(0.3)  # connected to the live proxy
        os.kill(proxy.pid, signal.SIGKILL)  # then it dies, as a crashed proxy would
        proxy.wait(10)
        _scan(None, 20)  # warm-up (imports)
        times = {"none": [], "dead": []}
        for _ in range(3):  # interleaved, medians
            for key, p in (("none", None), ("dead", pub)):
                uid, elapsed, events = _scan(p)
                assert uid and events == 200
                times[key].append(elapsed)
        none, dead = sorted(times["none"])[1], sorted(times["dead"])[1]
        assert dead < 1.5 * none + 0.5, times  # generous: the point is "no stall, no failure"
        assert pub.errors == 0
        pub.close()
    finally:
        if proxy.poll() is None:
            proxy.kill()
