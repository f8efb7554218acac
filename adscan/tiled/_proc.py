"""Process helpers shared with :mod:`adscan.services` (pid files, detached spawn, stop).

One import point, so the Tiled and PostgreSQL services use exactly the helpers Redis, the IOC
and the RE Manager use, whichever layout ``adscan.services`` has.
"""

from __future__ import annotations

try:  # the services package (adscan/services/processes.py)
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
except ImportError:  # the single-module layout (adscan/services.py)
    from adscan.services import (  # type: ignore[no-redef]
        ServiceError,
        ServiceInfo,
        logs_dir,
        run_dir,
    )
    from adscan.services import _check_loopback as check_loopback  # type: ignore
    from adscan.services import _live_pid as live_pid  # type: ignore
    from adscan.services import _port_open as port_open  # type: ignore
    from adscan.services import _spawn as spawn  # type: ignore
    from adscan.services import _stop_pid as stop_pid  # type: ignore
    from adscan.services import _tail as tail  # type: ignore
    from adscan.services import _wait as wait_until  # type: ignore

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
