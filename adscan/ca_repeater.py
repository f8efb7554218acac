"""A Channel Access repeater bound to loopback, started before any libca process.

Every EPICS libca client (pyepics under ophyd in the RE Worker, the AD IOC's dbCa links,
tests, the CLI) calls ``caStartRepeaterIfNotInstalled`` when its CA context starts: it tries
``bind(0.0.0.0:EPICS_CA_REPEATER_PORT)`` and, when that succeeds (no repeater running), runs
a repeater - a ``caRepeater`` from PATH or, as epicscorelibs' libca does, a ``CAC-repeater``
thread in the client process itself - bound to INADDR_ANY.  A repeater already holding the
port on 127.0.0.1 makes that wildcard bind fail with EADDRINUSE (Linux: a wildcard bind
conflicts with a specific one of the same port when neither sets SO_REUSEADDR), so libca
starts nothing and registers with ours instead.

The repeater is caproto's (:func:`caproto.sync.repeater._run_repeater`) on 127.0.0.1:R.
Servers send their beacons to ``EPICS_CAS_BEACON_ADDR_LIST=127.255.255.255``, which a socket
bound to 127.0.0.1 does not receive on Linux; a second socket bound to 127.255.255.255:R
(loopback too) receives them and hands each datagram to the repeater, so clients still get
beacon anomalies (fast reconnect after an IOC restart).

``python -m adscan.ca_repeater --port R [--port R2 ...] [--parent-pid PID]`` serves
each port not already held, prints ``READY-REPEATER held=R,... busy=...`` and runs until
SIGTERM.  With ``--parent-pid`` (ends when that process is gone) or ``--standby`` it takes
over a busy port as soon as its holder leaves; otherwise it ends at once if every port is busy.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger("adscan.repeater")

HOST = "127.0.0.1"
BROADCAST = "127.255.255.255"


def port_free(port: int) -> bool:
    """True when nothing holds UDP ``port`` on 127.0.0.1 (or the wildcard address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as ex:
            if ex.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _forward_beacons(bcast: socket.socket, port: int) -> None:
    """Hand every datagram broadcast to 127.255.255.255:port to the repeater's own socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.bind((HOST, 0))
        while True:
            data = bcast.recv(65536)
            out.sendto(data, (HOST, port))


class _ConfirmingSocket:
    """The repeater's socket, confirming empty-datagram registrations.

    libca (EPICS 3.14 and later, epicscorelibs') registers with an empty datagram.  The C
    ``caRepeater`` confirms it, but caproto's repeater adds the client without sending
    REPEATER_CONFIRM.  libca then re-sends the registration every second and, after 50 tries,
    prints "CA client library is unable to contact CA repeater" (the benchmarks' in-process
    client, every RE Worker).  This wrapper sends the confirmation caproto leaves out.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recvfrom(self, size: int):
        data, addr = self._sock.recvfrom(size)
        if not data:
            import caproto

            with contextlib.suppress(OSError):
                self._sock.sendto(bytes(caproto.RepeaterConfirmResponse(addr[0])), addr)
        return data, addr

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _serve_port(sock: socket.socket, port: int) -> None:
    from caproto.sync.repeater import _run_repeater

    try:
        _run_repeater(_ConfirmingSocket(sock), (HOST, port))
    except Exception:  # noqa: BLE001 - logged; the process keeps its other ports
        logger.exception("repeater on port %d stopped", port)


def serve(ports: list[int]) -> tuple[list[int], list[int]]:
    """Start a repeater thread for each port not yet held; return (held, busy) ports."""
    held, busy = [], []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((HOST, port))
        except OSError as ex:
            sock.close()
            if ex.errno != errno.EADDRINUSE:
                raise
            busy.append(port)
            continue
        bcast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            bcast.bind((BROADCAST, port))
        except OSError:
            bcast.close()
            logger.warning("beacons to %s:%d not received (port busy)", BROADCAST, port)
        else:
            threading.Thread(target=_forward_beacons, args=(bcast, port), daemon=True).start()
        threading.Thread(target=_serve_port, args=(sock, port), daemon=True).start()
        held.append(port)
    return held, busy


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None):
    """A ``preexec_fn``: ``sig`` to the child when its parent dies (``PR_SET_PDEATHSIG``),
    and the child ends at once if the parent is already gone (died between fork and prctl,
    or - the signal follows the parent *thread* - the spawning thread already ended)."""
    import ctypes

    parent = os.getpid() if parent is None else parent

    def preexec() -> None:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def spawn_child(
    ports: list[int], env: Mapping[str, str] | None = None, wait: bool = True
) -> subprocess.Popen:
    """A repeater child of this process (dies with it) for ``ports``; with ``wait`` it returns
    once the child printed READY-REPEATER (else call :func:`wait_ready`).  Ports another
    process already holds are left to it (and taken over if it leaves)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "adscan.ca_repeater", "--parent-pid", str(os.getpid())]
        + [a for p in ports for a in ("--port", str(p))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
        preexec_fn=die_with_parent(),
    )
    return wait_ready(proc) if wait else proc


def wait_ready(proc: subprocess.Popen) -> subprocess.Popen:
    """Wait for a :func:`spawn_child` repeater's READY-REPEATER line (its ports are held)."""
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line.startswith("READY-REPEATER"):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"CA repeater did not start (exit code {proc.poll()})")
    return proc


def ensure_detached(
    port: int, log: Path, env: Mapping[str, str], family: str, timeout: float = 10.0
) -> int:
    """A detached loopback repeater for ``port`` in process family ``family``; its pid.

    Like ``caRepeater`` it outlives the caller (own session).  It stands by while another
    process holds the port (the IOC launcher's repeater, a site ``caRepeater``) and takes
    the port over within 0.2 s when that one leaves, so a CA client started later (a new RE
    Worker after an IOC restart) never finds the port free.  One per family: reused if alive.
    """
    from adscan.services import procfamily

    alive = procfamily.members(family)
    if alive:
        return alive[0].pid
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "adscan.ca_repeater", "--standby", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=procfamily.tag(dict(env), family),
            close_fds=True,
            cwd="/",
        )
    deadline = time.monotonic() + timeout
    while port_free(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"CA repeater on port {port} did not start; see {log}")
        time.sleep(0.05)
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m adscan.ca_repeater", description=__doc__)
    p.add_argument("--port", type=int, action="append", default=[], help="repeater UDP port")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this pid is gone")
    p.add_argument(
        "--standby", action="store_true", help="wait for busy ports to come free (until SIGTERM)"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if not args.port:
        from adscan import epics_env

        args.port = [epics_env.repeater_port()]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    held, busy = serve(args.port)
    print(
        f"READY-REPEATER held={','.join(map(str, held))} busy={','.join(map(str, busy))}",
        flush=True,
    )
    while not stop.wait(0.2):
        if args.parent_pid is None and not args.standby:
            if not held:
                break  # another repeater holds every port: nothing to do
            continue
        if args.parent_pid is not None and os.getppid() != args.parent_pid:
            break
        if busy:  # take over a port whose holder (e.g. a stopping IOC's repeater) left
            taken, busy = serve(busy)
            held += taken
    return 0


if __name__ == "__main__":
    sys.exit(main())
