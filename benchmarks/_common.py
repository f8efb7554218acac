"""Shared helpers for adscan benchmarks: loopback EPICS, a private IOC, result tables."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from adscan import epics_env
from adscan.ports import free_port

RESULTS = Path(__file__).resolve().parent / "results"


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
