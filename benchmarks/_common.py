"""Shared helpers for adscan benchmarks: loopback EPICS, a private IOC, result tables.

Importing this module (every benchmark does, directly or through ``_service``) makes the
process's standard output line-buffered, so each figure shows as soon as it is printed even
through a pipe, and turns SIGTERM, SIGHUP and SIGINT into ``KeyboardInterrupt``: the
benchmarks' ``try/finally`` then stops the service they started (IOCs, Redis, RE Manager)
instead of leaving it running.  Inside :func:`shielded` (the service's own shutdown) a signal
waits until the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

from adscan import epics_env
from adscan.ports import free_port

RESULTS = Path(__file__).resolve().parent / "results"

_shield = {"depth": 0, "pending": None, "raised": False}


def _on_signal(signum: int, _frame) -> None:
    name = signal.Signals(signum).name
    if _shield["depth"]:
        _shield["pending"] = name  # raised when the shutdown block ends
        print(f"\n  {name}: stopping the service first", file=sys.stderr, flush=True)
        return
    if _shield["raised"]:
        print(f"\n  {name}: already stopping", file=sys.stderr, flush=True)
        return
    _shield["raised"] = True
    raise KeyboardInterrupt(f"benchmark stopped by {name}")


@contextlib.contextmanager
def shielded():
    """Run a block (stopping the service) that a signal must not cut short; a signal that
    came meanwhile is raised (as ``KeyboardInterrupt``) when the block ends."""
    _shield["depth"] += 1
    try:
        yield
    finally:
        _shield["depth"] -= 1
        name, _shield["pending"] = _shield["pending"], None
        if name and not _shield["depth"] and not _shield["raised"]:
            _shield["raised"] = True
            raise KeyboardInterrupt(f"benchmark stopped by {name}")


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP/SIGINT -> ``KeyboardInterrupt`` in the main thread (see the module doc)."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _on_signal)


if hasattr(sys.stdout, "reconfigure"):
    sys.stdout.reconfigure(line_buffering=True)
install_signal_handlers()


class Budget:
    """A time budget in minutes (None or 0: none); ``over()`` once it is spent."""

    def __init__(self, minutes: float | None) -> None:
        self.minutes = minutes or 0.0
        self.t0 = time.monotonic()
        self.hit = False

    def over(self) -> bool:
        if self.minutes and time.monotonic() - self.t0 > self.minutes * 60:
            if not self.hit:
                print(
                    f"  time budget of {self.minutes:g} min spent: stopping here, figures below "
                    "are from the runs made so far",
                    flush=True,
                )
            self.hit = True
        return self.hit


def free_ca_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (below the ephemeral range)."""
    return free_port(udp=True)


def use_port(port: int) -> None:
    """Point this process's CA clients at ``port`` on loopback (before CA loads)."""
    epics_env.apply_loopback(ca_port=port)
    os.environ["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{port} 127.0.0.1:{epics_env.ad_ca_port(port)}"


def start_ioc(port: int, data_dir: Path, motors: str, ad: str, *extra: str):
    """Start the simulated IOC (the one launcher); return (process, seconds from spawn to READY)."""
    from adscan.services import ioc_argv, ioc_env
    from adscan.services import start_ioc as launch

    data_dir.mkdir(parents=True, exist_ok=True)
    argv = ioc_argv(port=port, motors_prefix=motors, ad_prefix=ad, data_dir=data_dir, extra=extra)
    started = launch(argv, data_dir / "ioc.log", env=ioc_env(port))
    return started.proc, started.seconds


def report(name: str, rows: list[tuple[str, float | str, str]], extra: dict | None = None) -> Path:
    """Print ``rows`` (what, value, unit) as a table and write them as JSON."""
    width = max(len(r[0]) for r in rows)
    print(
        f"\n{name}  ({platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')})"
    )
    for what, value, unit in rows:
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"  {what:<{width}}  {shown:>12}  {unit}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "time": time.time(),
        "cpus": os.cpu_count(),
        "rows": [{"what": w, "value": v, "unit": u} for w, v, u in rows],
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"  -> {path}")
    return path
