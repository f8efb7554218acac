"""The softioc AD IOC posts every value it writes to an output record, even when busy.

A blocking output record posts its value when its processing completes; the IOC writing
AcquireBusy 1 then 0 while the put dispatcher is still behind used to overwrite the 1
unseen, and ophyd's trigger (waiting for AcquireBusy's 1 -> 0 edge) waited forever: seen
in CI as a scan hung for 600 s with the detector idle, and reproduced here under load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TAG

from adscan.ports import free_port

SCRIPT = Path(__file__).with_name("slow_dispatch_ioc.py")
CYCLES = 5


def expect(proc: subprocess.Popen, word: str) -> None:
    """Read the IOC's output (banners first) until a line is ``word``."""
    for line in proc.stdout:
        if line.strip() == word:
            return
    raise AssertionError(f"the IOC ended before printing {word} (exit {proc.wait(5)})")


def edges_seen(unpatched: bool) -> list[int]:
    """AcquireBusy values a CA client saw while the IOC wrote 1, 0 ``CYCLES`` times.

    Also checks the IOC core's callback-queue report (``iocs/callback_queue``)."""
    from caproto.threading.client import Context

    port = free_port(udp=True)
    prefix = f"{TAG}slow{int(unpatched)}:"
    env = dict(os.environ, EPICS_CA_ADDR_LIST=f"127.0.0.1:{port}")
    argv = [sys.executable, str(SCRIPT), "--port", str(port), "--prefix", prefix]
    argv += ["--cycles", str(CYCLES)] + (["--unpatched"] if unpatched else [])
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    saved = os.environ.get("EPICS_CA_ADDR_LIST", "")
    os.environ["EPICS_CA_ADDR_LIST"] = f"{saved} 127.0.0.1:{port}"
    ctx = None
    try:
        expect(proc, "READY")
        ctx = Context()
        (pv,) = ctx.get_pvs(prefix + "cam1:AcquireBusy", timeout=5)
        pv.wait_for_connection(timeout=10)
        seen: list[int] = []
        sub = pv.subscribe()
        cb = lambda sub, resp: seen.append(int(resp.data[0]))  # noqa: E731 - kept referenced
        sub.add_callback(cb)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        expect(proc, "DONE")
        queues = json.loads(proc.stdout.readline())
        assert queues["size"] == 2000 and set(queues["overflows"].values()) == {0}, queues
        assert queues["max_used"]["low"] >= 1, queues  # the subscription's values went there
        time.sleep(0.5)
        return seen[1:]  # the first is the value at subscription
    finally:
        if ctx is not None:
            ctx.disconnect()
        os.environ["EPICS_CA_ADDR_LIST"] = saved
        proc.stdin.close()
        proc.wait(10)


@pytest.mark.timeout(120)
def test_busy_ioc_posts_both_edges_of_every_acquisition():
    assert edges_seen(unpatched=False) == [1, 0] * CYCLES


@pytest.mark.timeout(120)
def test_without_the_wait_the_busy_ioc_loses_the_rising_edge():
    """The mechanism itself (so the test above can fail): the 1 is never posted."""
    assert 1 not in edges_seen(unpatched=True)
