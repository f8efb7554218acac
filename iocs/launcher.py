"""Start the motor IOC and the AD IOC as two child processes; READY when every PV answers.

softioc embeds one EPICS IOC per process, and the motor record is not a base record type,
so the motors stay on caproto (``iocs/motor.py``) in their own process on their own CA port
- the layout of a production beamline (one IOC per device family).  The launcher:

1. starts a loopback CA repeater on the beamline's repeater port (P + 1,
   ``adscan.ca_repeater``) before anything loads libca, so the AD IOC's dbCa client
   (and every client of this beamline) finds the port held and never runs a repeater of its
   own on 0.0.0.0; then ``python -m adscan.iocs.server --role motors ...`` (CA port P) and
   ``python -m adscan.iocs.ad_ioc ...`` (CA port ``--ad-port``, pvAccess ``--pva-port``);
2. waits for each child's ``READY-...`` line, then connects a CA client to every PV of both
   (motor fields and every AD record of the table) and prints one ``READY ...`` line;
3. on SIGTERM/SIGINT stops both children (the AD IOC closes its HDF5 files) and exits 0;
   if a child dies, stops the other and exits non-zero.  Children get SIGTERM if the
   launcher itself dies (``PR_SET_PDEATHSIG``; the motor IOC SIGKILL: nothing to save); a
   child whose launcher died before that was set ends at once, and the AD IOC and the
   repeater also end when their parent pid changes (``--parent-pid``), so none outlives it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from adscan import ca_repeater as repeater
from adscan import epics_env


def _spawn(
    argv: list[str], env: dict | None = None, death_signal: int = signal.SIGTERM
) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        preexec_fn=repeater.die_with_parent(death_signal),
        env=env,
    )


def _wait_ports_free(ports: list[int], timeout: float) -> None:
    """Wait until nothing listens on these loopback TCP ports (an IOC of a launcher just
    killed may still be closing its files; a new IOC would otherwise fall back to another
    TCP port and share the UDP search port with it)."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"port {port} stays in use") from None
            time.sleep(0.1)


def _wait_line(proc: subprocess.Popen, tag: str, timeout: float) -> str:
    """Read the child's stdout until its ``tag`` line (other lines go to our stderr)."""
    result: list[str] = []

    def reader():
        for line in proc.stdout:
            if not result and line.startswith(tag):
                result.append(line.strip())
            else:
                sys.stderr.write(line)
        # stdout closed: the child is gone

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not result and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if not result:
        raise RuntimeError(f"{tag} not printed (exit code {proc.poll()})")
    return result[0]


def _stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> list[int | None]:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait(5))
    return codes


def launch(args, wait_until_answering, motor_fields) -> int:
    from adscan.iocs.ad_table import all_pv_names
    from adscan.iocs.server import motor_names

    port = epics_env.ca_port()
    ad_port = args.ad_port or epics_env.ad_ca_port(port)
    pva_port = args.pva_port or epics_env.pva_port(port)
    t0 = time.monotonic()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _wait_ports_free([port, ad_port, pva_port + 1], 20.0)
    # first, and READY before the AD IOC (whose dbCa client loads libca) starts; the motor
    # IOC (caproto, no libca) starts meanwhile
    rep = repeater.spawn_child([epics_env.repeater_port()], wait=False)
    py = sys.executable
    motors = _spawn(
        [
            py,
            "-m",
            "adscan.iocs.server",
            "--role",
            "motors",
            "--prefix-motors",
            args.prefix_motors,
            "--motor-count",
            str(args.motor_count),
            *(["--motor-names", args.motor_names] if args.motor_names else []),
            "--bits",
            str(args.bits),
            "--velocity",
            str(args.velocity),
            "--port",
            str(port),
            "--data-dir",
            str(args.data_dir),
        ],
        death_signal=signal.SIGKILL,
    )
    repeater.wait_ready(rep)
    names = [f"{args.prefix_motors}{n}" for n in motor_names(args)]
    env = dict(os.environ)  # the AD IOC finds the motors by their explicit port
    words = env.get("EPICS_CA_ADDR_LIST", "").split()
    if epics_env.is_loopback_list(" ".join(words)) and f"127.0.0.1:{port}" not in words:
        env["EPICS_CA_ADDR_LIST"] = " ".join([*words, f"127.0.0.1:{port}"])
    ad = _spawn(
        [
            py,
            "-m",
            "adscan.iocs.ad_ioc",
            "--prefix",
            args.prefix_ad,
            "--data-dir",
            str(args.data_dir),
            "--port",
            str(ad_port),
            "--pva-port",
            str(pva_port),
            "--rows",
            str(args.rows),
            "--cols",
            str(args.cols),
            "--data-type",
            args.data_type,
            "--motors",
            " ".join(names),
            "--parent-pid",
            str(os.getpid()),
        ],
        env,
    )
    procs = [motors, ad]
    try:
        line = _wait_line(motors, "READY-MOTORS", args.ready_timeout)
        words = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
        names = words.get("names", ",".join(names)).split(",")
        _wait_line(ad, "READY-AD", args.ready_timeout)
        check = [f"{n}{f}" for n in names for f in motor_fields]
        check += all_pv_names(args.prefix_ad)
        seconds = wait_until_answering(check, args.ready_timeout)
    except Exception as ex:  # noqa: BLE001 - reported, then exit non-zero
        print(f"adscan ioc: IOCs did not become ready: {ex}", file=sys.stderr, flush=True)
        _stop([*procs, rep])
        return 1
    print(
        f"READY adscan-ioc pvs={len(check)} motors={args.prefix_motors}m1..m{len(names)} "
        f"detector={args.prefix_ad} port={port} ad_port={ad_port} pva_port={pva_port} "
        f"data_dir={args.data_dir} startup_s={time.monotonic() - t0:.2f} "
        f"check_s={seconds:.2f}",
        flush=True,
    )
    while not stop.wait(0.2):
        if any(p.poll() is not None for p in procs):
            print("adscan ioc: a child IOC exited; stopping", file=sys.stderr, flush=True)
            _stop([*procs, rep])
            return 1
    codes = _stop(procs)
    _stop([rep])
    return 0 if all(c == 0 for c in codes) else 1
