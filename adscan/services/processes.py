"""Process plumbing shared by the services: pid files, detached spawning, stopping, waiting.

Every service process runs detached (own session, output to a log file) and leaves a pid
file in ``{data_dir}/run/``; a pid file is trusted only while its process still runs the
expected command line (a recycled pid is not ours).  Child environments are built as dicts
(:func:`child_env`): nothing here changes the caller's ``os.environ``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from adscan import epics_env

#: Seconds to wait for a process to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0

LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


class ServiceError(RuntimeError):
    """A service could not be started, reached or stopped (the message names the part and log)."""


@dataclass
class ServiceInfo:
    """One line of ``adscan status``."""

    name: str
    state: str  # "up", "down", "starting", "external" (answers, not started by adscan), "path"
    address: str = ""
    pid: int | None = None
    log: str = ""
    detail: str = ""
    started: bool = False  # True: this call started the process

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- paths and settings


def run_dir(cfg: dict) -> Path:
    """Where the pid files and the generated queue-server configuration live."""
    return Path(cfg["instrument"]["data_dir"]) / "run"


def logs_dir(cfg: dict) -> Path:
    return Path(cfg["instrument"]["data_dir"]) / "logs"


def pid_path(cfg: dict, name: str) -> Path:
    """The pid file of service ``name`` (``redis``, ``ioc``, ``re-manager``)."""
    return run_dir(cfg) / f"{name}.pid"


def queueserver_cfg(cfg: dict) -> dict:
    """The ``queueserver:`` section of the instrument configuration."""
    return cfg["queueserver"]


def zmq_host_port(addr: str) -> tuple[str, int]:
    """``tcp://host:port`` -> (host, port)."""
    rest = addr.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host, int(port)


def check_loopback(name: str, host: str) -> None:
    if host not in LOOPBACK_HOSTS:
        raise ServiceError(
            f"{name} must bind 127.0.0.1 only (network rule), got host {host!r}; fix iconfig.yml"
        )


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections at ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def listener(port: int) -> str:
    """Who listens on TCP ``port`` (pid and command line), for a "port in use" error; a
    process of another user shows as "another user's process" (its pid is hidden)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            if c.pid is None:
                return "another user's process"
            try:
                cmd = " ".join(psutil.Process(c.pid).cmdline())[:200]
            except psutil.Error:
                cmd = "?"
            return f"pid {c.pid} ({cmd})"
    return "an unknown process"


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def venv_bin(name: str) -> str:
    """An executable of this Python environment (the venv's bin dir), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


# --------------------------------------------------------------------------- pid files


def read_pid(path: Path) -> int | None:
    """The pid written in ``path``, or None."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, marker: str | tuple[str, ...] | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and its command line contains every ``marker``."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            reap(pid)
            return False
        if marker is None:
            return True
        cmdline = " ".join(proc.cmdline())
        markers = (marker,) if isinstance(marker, str) else marker
        return all(m in cmdline for m in markers)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def reap(pid: int) -> None:
    """Collect the exit status of our own child (tests run services as children of pytest)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def live_pid(path: Path, marker: str | tuple[str, ...]) -> int | None:
    """The pid recorded in ``path`` if that process is still ours; a stale file is removed."""
    pid = read_pid(path)
    if pid and pid_alive(pid, marker):
        return pid
    if path.exists():
        path.unlink(missing_ok=True)
    return None


def spawn(
    argv: list[str],
    log: Path,
    pid_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    preexec_fn=None,
) -> subprocess.Popen:
    """Start ``argv`` detached (new session, stdin closed), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} adscan: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=dict(env) if env is not None else os.environ.copy(),
            close_fds=True,
            preexec_fn=preexec_fn,
        )
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{proc.pid}\n")
    return proc


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT, group: bool = True) -> str:
    """SIGTERM ``pid`` (and its process group / children), SIGKILL after ``timeout``."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return "already gone"
    sig_sent = "SIGTERM"
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    gone, alive = _wait_procs(procs, timeout)
    if alive:
        sig_sent = "SIGKILL"
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        _wait_procs(alive, 5.0)
    reap(pid)
    return f"stopped ({sig_sent})"


def _wait_procs(
    procs: list[psutil.Process], timeout: float
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        still = []
        for p in alive:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    reap(p.pid)
                    continue
                still.append(p)
            except psutil.NoSuchProcess:
                continue
        alive = still
        if alive:
            for p in alive:
                reap(p.pid)
            time.sleep(0.05)
    return [p for p in procs if p not in alive], alive


def wait_until(predicate: Callable[[], Any], timeout: float, period: float = 0.05) -> bool:
    """Poll ``predicate`` every ``period`` s until true (True) or ``timeout`` s passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period)


def child_env(cfg: dict, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process: ``base`` (default ``os.environ``) copied, with the
    loopback EPICS settings and the configured CA port, plus ``extra``.

    An address list of explicit ``host:port`` words (e.g. a test session's ports) that does not
    name the configured port gets ``127.0.0.1:<port>`` added, so the IOC is always searched.
    """
    env = dict(os.environ if base is None else base)
    port = int(cfg["epics"]["ca_server_port"])
    epics_env.apply_loopback(env, ca_port=port)
    words = env.get("EPICS_CA_ADDR_LIST", "").split()
    if words and all(":" in w for w in words) and f"127.0.0.1:{port}" not in words:
        env["EPICS_CA_ADDR_LIST"] = " ".join([*words, f"127.0.0.1:{port}"])
    env.update(extra)
    return env


@contextlib.contextmanager
def scoped_environ(env: Mapping[str, str]):
    """Run a block with the variables of ``env`` in ``os.environ`` (caproto's in-process
    client reads its settings there), then put back exactly what was there before."""
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    saved = {k: os.environ.get(k) for k in changed}
    try:
        os.environ.update(changed)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
