"""The process family of a service adscan starts: found by a marker in its environment.

``start-re-manager`` is a watchdog that starts the RE Manager, which starts the RE Worker.
A pid file names only the watchdog: after ``kill -9`` of it the manager and the worker keep
running (ppid 1), still hold the ZMQ ports, and nothing recorded them.  So every process adscan
starts gets ``ADSCAN_PROCESS_FAMILY=<service>:<data_dir>`` in its environment; children inherit
it (fork or spawn), and :func:`members` finds the whole family by reading ``/proc/<pid>/environ``
of the user's processes (psutil).  :func:`stop` stops every member, SIGTERM then SIGKILL, and
returns those still running, so a caller never reports success while one is left.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

MARKER_VAR = "ADSCAN_PROCESS_FAMILY"


def marker(cfg: dict, service: str) -> str:
    """The family marker of ``service`` (e.g. ``"re-manager"``) for this data directory."""
    return f"{service}:{Path(cfg['instrument']['data_dir']).expanduser().resolve()}"


def tag(env: dict, family: str) -> dict:
    """``env`` with the family marker set (pass it to ``subprocess.Popen(env=...)``)."""
    env[MARKER_VAR] = family
    return env


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def members(family: str) -> list[psutil.Process]:
    """Running processes (zombies excluded) whose environment carries ``family``."""
    me = os.getpid()
    out = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(MARKER_VAR) != family:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                _reap(proc.pid)
                continue
            out.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return out


def describe(procs: list[psutil.Process]) -> str:
    """``pid name (ppid N)`` for each process, for status lines and error messages."""
    parts = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            parts.append(f"{p.pid} {p.name()} (ppid {p.ppid()})")
    return ", ".join(parts)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
            else:
                _reap(p.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def stop(family: str, timeout: float = 10.0) -> list[psutil.Process]:
    """Stop every member of ``family``: SIGTERM, SIGKILL after ``timeout``; return survivors."""
    procs = members(family)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    deadline = time.monotonic() + timeout
    while (procs := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    deadline = time.monotonic() + 5.0
    while (procs := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    late = members(family)  # a member started meanwhile (e.g. a watchdog restarting a child)
    if late and not procs:
        return stop(family, timeout=min(timeout, 2.0)) if timeout > 0.5 else late
    return procs
