"""The simulated beamline IOC: the ONE launcher of ``python -m adscan.iocs``, and its checks.

:func:`start_ioc` is used by ``adscan up`` (:func:`ensure_ioc`), the tests and the benchmarks:
the IOC's output goes to a log file (never a pipe, so it keeps printing after its parent
exits) and the launcher returns once the IOC wrote its ``READY`` line there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from adscan import ca_repeater as repeater
from adscan import epics_env
from adscan.services import procfamily
from adscan.services.processes import (
    ServiceError,
    ServiceInfo,
    child_env,
    live_pid,
    logs_dir,
    pid_path,
    scoped_environ,
    spawn,
    stop_pid,
    tail,
)

#: Seconds to wait for the simulated IOC's READY line.
IOC_START_TIMEOUT = 60.0


@dataclass
class IocProcess:
    """A started IOC: the process, its log, and seconds from spawn to READY."""

    proc: subprocess.Popen
    log: Path
    seconds: float

    @property
    def pid(self) -> int:
        return self.proc.pid


def ioc_log(cfg: dict) -> Path:
    """The IOC's log file (``ioc.log``, default ``{data_dir}/logs/ioc.log``)."""
    return Path(cfg["ioc"].get("log") or logs_dir(cfg) / "ioc.log")


def ioc_pvs(cfg: dict) -> list[str]:
    """The PVs that say the IOC answers: the first motor's readback, the detector's Acquire."""
    ioc = cfg["ioc"]
    return [f"{ioc['motors_prefix']}m1.RBV", f"{ioc['ad_prefix']}cam1:Acquire"]


def ioc_pid(cfg: dict) -> int | None:
    """The pid of the IOC adscan started for ``cfg`` (by pid file and command line), or None."""
    return live_pid(
        pid_path(cfg, "ioc"), ("adscan.iocs", f"--data-dir {cfg['instrument']['data_dir']}")
    )


def ioc_argv(
    *,
    port: int,
    motors_prefix: str,
    ad_prefix: str,
    data_dir: str | Path,
    motor_count: int | None = None,
    velocity: float | None = None,
    rows: int | None = None,
    cols: int | None = None,
    data_type: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of ``python -m adscan.iocs`` (options left None keep the IOC's own)."""
    argv = [
        sys.executable,
        "-u",
        "-m",
        "adscan.iocs",
        "--prefix-motors",
        str(motors_prefix),
        "--prefix-ad",
        str(ad_prefix),
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    for option, value in (
        ("--motor-count", motor_count),
        ("--velocity", velocity),
        ("--rows", rows),
        ("--cols", cols),
        ("--data-type", data_type),
    ):
        if value is not None:
            argv += [option, str(value)]
    return [*argv, *extra]


def ioc_argv_for(cfg: dict, extra: Sequence[str] = ()) -> list[str]:
    """:func:`ioc_argv` from the ``ioc:`` and ``epics:`` sections of an instrument configuration."""
    ioc = cfg["ioc"]
    rows, cols = ioc["frame_shape"]
    return ioc_argv(
        port=int(cfg["epics"]["ca_server_port"]),
        motors_prefix=ioc["motors_prefix"],
        ad_prefix=ioc["ad_prefix"],
        data_dir=cfg["instrument"]["data_dir"],
        motor_count=ioc["motor_count"],
        velocity=ioc["motor_velocity"],
        rows=rows,
        cols=cols,
        data_type=ioc["data_type"],
        extra=extra,
    )


def ioc_env(port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child environment for an IOC serving (and searching) CA on ``port`` only: the motor
    IOC on ``port``, the area-detector IOC on :func:`adscan.epics_env.ad_ca_port`."""
    env = dict(os.environ if base is None else base)
    epics_env.apply_loopback(env, ca_port=port)
    env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{port} 127.0.0.1:{epics_env.ad_ca_port(port)}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_ioc(
    argv: list[str],
    log: Path,
    *,
    env: Mapping[str, str],
    pid_file: Path | None = None,
    timeout: float = IOC_START_TIMEOUT,
    preexec_fn=None,
) -> IocProcess:
    """Start the IOC ``argv`` (see :func:`ioc_argv`) detached, output appended to ``log``,
    and return once it wrote READY; on failure it is stopped and the error quotes its log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.perf_counter()
    proc = spawn(argv, log, pid_file, env=dict(env), preexec_fn=preexec_fn)
    try:
        wait_ready_line(proc, log, offset, timeout)
    except ServiceError:
        stop_pid(proc.pid, timeout=3.0)
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        raise
    return IocProcess(proc, log, time.perf_counter() - t0)


def wait_ready_line(proc: subprocess.Popen, log: Path, offset: int, timeout: float) -> None:
    """Wait until the IOC writes a line starting with READY into its log (after ``offset``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(log, "rb") as f:
                f.seek(offset)
                if any(line.startswith(b"READY") for line in f.read().splitlines()):
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise ServiceError(
                f"simulated IOC exited with code {proc.returncode} before READY; see {log}:\n"
                + tail(log)
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"simulated IOC not READY within {timeout:.0f} s; see {log}:\n{tail(log)}"
            )
        time.sleep(0.1)


def ioc_answers(cfg: dict, timeout: float = 2.0) -> bool:
    """True if the IOC's key PVs (first motor readback, detector Acquire) connect.

    The CA client runs in this process with the configured port; the caller's environment
    is put back afterwards.
    """
    with scoped_environ(child_env(cfg)):
        from caproto.threading.client import Context

        ctx = Context()
        try:
            pvs = ctx.get_pvs(*ioc_pvs(cfg), timeout=timeout)
            deadline = time.monotonic() + timeout
            for pv in pvs:
                try:
                    pv.wait_for_connection(timeout=max(0.05, deadline - time.monotonic()))
                except TimeoutError:
                    return False
            return True
        except Exception:  # noqa: BLE001 - any CA failure means "does not answer"
            return False
        finally:
            # Context.disconnect() takes about 1 s: do it in the background.
            threading.Thread(target=_quiet_disconnect, args=(ctx,), daemon=True).start()


def _quiet_disconnect(ctx) -> None:
    with contextlib.suppress(Exception):
        ctx.disconnect()


def ioc_address(cfg: dict) -> str:
    """How ``adscan status`` names the IOC: CA port and prefixes."""
    ioc = cfg["ioc"]
    return (
        f"CA 127.0.0.1:{cfg['epics']['ca_server_port']} {ioc['motors_prefix']} {ioc['ad_prefix']}"
    )


def ensure_ca_repeater(cfg: dict, env: dict[str, str]) -> int:
    """A loopback CA repeater for the repeater port of ``env``, before the simulated IOC and
    the RE Worker start (their libca would otherwise run one on 0.0.0.0); its pid.

    Detached, one per data directory (family ``repeater:<data_dir>``; ``adscan down`` stops
    it), so it outlives IOC restarts and the CA clients registered with it keep getting
    beacons.  While another holds the port (a site ``caRepeater`` on 5065 with real IOCs, a
    test session's) it stands by, and takes the port over if that one goes.
    None (0) for a site whose IOCs are on other hosts (``ADSCAN_EPICS_CA_ADDR_LIST``): their
    beacons reach the host's own address, which a loopback repeater never receives, so the
    site's ``caRepeater`` (or libca's own) serves there.
    """
    if not epics_env.is_loopback_list(env.get("EPICS_CA_ADDR_LIST", "")):
        return 0
    try:
        return repeater.ensure_detached(
            epics_env.repeater_port(env),
            logs_dir(cfg) / "ca-repeater.log",
            env,
            procfamily.marker(cfg, "repeater"),
        )
    except RuntimeError as ex:
        raise ServiceError(str(ex)) from None


def repeater_status(cfg: dict) -> ServiceInfo | None:
    """The loopback CA repeater's row of ``adscan status`` (None for off-host IOCs).

    ``up``: adscan's repeater holds the port; ``standby``: it runs while another holds the
    port (a site ``caRepeater``, a test session's); ``external``: another holds it and adscan's
    is not running; ``down``: nothing holds it, so the next libca client would run a repeater
    of its own on 0.0.0.0.
    """
    env = child_env(cfg)
    if not epics_env.is_loopback_list(env.get("EPICS_CA_ADDR_LIST", "")):
        return None
    port = epics_env.repeater_port(env)
    ours = procfamily.members(procfamily.marker(cfg, "repeater"))
    holder = None
    for proc in ours:
        with contextlib.suppress(Exception):  # gone meanwhile, or not ours to inspect
            if any(c.laddr and c.laddr.port == port for c in proc.net_connections("udp")):
                holder = proc
    held = holder is not None or not repeater.port_free(port)
    if holder is not None:
        state, detail = "up", ""
    elif ours and held:
        state, detail = "standby", "another process holds the port; adscan's takes over if it goes"
    elif held:
        state, detail = "external", "another process holds the port"
    else:
        state, detail = "down", "nothing holds the repeater port"
    shown = holder or (ours[0] if ours else None)
    return ServiceInfo(
        "ca-repeater",
        state,
        f"udp 127.0.0.1:{port}",
        shown.pid if shown else None,
        str(logs_dir(cfg) / "ca-repeater.log") if ours else "",
        detail,
    )


def ensure_ioc(cfg: dict, timeout: float = IOC_START_TIMEOUT) -> ServiceInfo:
    """Start the simulated IOC (``ioc.simulate``) or check that the real IOC PVs answer."""
    ioc = cfg["ioc"]
    address = ioc_address(cfg)
    log = ioc_log(cfg)
    pid_file = pid_path(cfg, "ioc")
    # A live IOC on loopback connects in well under a second.
    check_timeout = min(5.0, float(cfg["epics"]["connection_timeout"]))
    pid = ioc_pid(cfg)
    if not ioc["simulate"]:
        ok = ioc_answers(cfg, timeout=check_timeout)
        detail = "" if ok else "real IOC PVs do not answer: " + ", ".join(ioc_pvs(cfg))
        return ServiceInfo("ioc", "external" if ok else "down", address, None, "", detail)
    if pid and ioc_answers(cfg, timeout=min(2.0, check_timeout)):
        return ServiceInfo("ioc", "up", address, pid, str(log))
    if pid is None and ioc_answers(cfg, timeout=min(1.0, check_timeout)):
        return ServiceInfo(
            "ioc", "external", address, None, "", "PVs answer (not started by adscan)"
        )
    if pid:  # ours, still starting or stuck: restart it
        stop_pid(pid)
        pid_file.unlink(missing_ok=True)
    env = child_env(cfg, PYTHONUNBUFFERED="1")
    ensure_ca_repeater(cfg, env)  # the launcher's own repeater then stands by
    started = start_ioc(
        ioc_argv_for(cfg),
        log,
        env=env,
        pid_file=pid_file,
        timeout=timeout,
    )
    return ServiceInfo("ioc", "up", address, started.pid, str(log), started=True)
