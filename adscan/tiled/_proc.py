"""Process helpers shared with :mod:`adscan.services` (pid files, detached spawn, stop).

One import point, so the Tiled and PostgreSQL services use exactly the helpers Redis, the IOC
and the RE Manager use.
"""

from __future__ import annotations

from adscan.services.processes import (
    ServiceError,
    ServiceInfo,
    check_loopback,
    live_pid,
    logs_dir,
    port_open,
    run_dir,
    spawn,
    stop_pid,
    tail,
    wait_until,
)

__all__ = [
    "ServiceError",
    "ServiceInfo",
    "check_loopback",
    "live_pid",
    "logs_dir",
    "port_open",
    "run_dir",
    "spawn",
    "stop_pid",
    "tail",
    "wait_until",
]
