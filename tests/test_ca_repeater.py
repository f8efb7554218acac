"""The loopback CA repeater (adscan/ca_repeater.py): why no libca binds 0.0.0.0.

libca's ``caStartRepeaterIfNotInstalled`` binds ``0.0.0.0:EPICS_CA_REPEATER_PORT`` to test
for a repeater and, when that works, runs one itself (epicscorelibs' libca: a ``CAC-repeater``
thread in the client) on 0.0.0.0.  These tests show, on a private port block each:

* the kernel premise: a wildcard bind fails while our socket holds 127.0.0.1 on that port;
* a pyepics client (both libca builds: pyepics' own and epicscorelibs') starts a repeater
  of its own without ours (a 0.0.0.0 thread, or ``caRepeater`` from PATH), and not with it;
* our repeater forwards a beacon broadcast to 127.255.255.255 to a registered client;
* the IOC launcher starts the repeater first, both of its IOCs beacon to it, and all its
  children (repeater, motor IOC, AD IOC) end when it is SIGKILLed.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from adscan import ca_repeater as repeater
from adscan import epics_env
from adscan.ports import free_port

pytestmark = pytest.mark.timeout(120)

CLIENT = """
import sys
{setup}
import epics
epics.ca.create_channel("adscan:no:such:pv", connect=False, auto_cb=False)  # UDP client up
epics.ca.poll(0.2, 0.3)
print("up", flush=True)
sys.stdin.read()
"""


def _udp_binds(pid: int) -> list[tuple[str, int]]:
    return [(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("udp")]


def _threads(pid: int) -> set[str]:
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.add(Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip())
        except OSError:
            continue
    return out


def test_wildcard_bind_fails_while_loopback_is_held():
    port = free_port(udp=True) + 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wild:
            with pytest.raises(OSError) as info:
                wild.bind(("0.0.0.0", port))
            assert info.value.errno == errno.EADDRINUSE
        assert not repeater.port_free(port)
    assert repeater.port_free(port)


@pytest.mark.parametrize(
    "libca",
    ["pyepics", "epicscorelibs"],
    ids=["pyepics-libca", "epicscorelibs-libca"],
)
def test_libca_client_binds_no_wildcard_repeater_port(libca):
    setup = "import epicscorelibs.path.pyepics" if libca == "epicscorelibs" else ""
    port = free_port(udp=True)
    rport = epics_env.repeater_port_for(port)
    env = epics_env.apply_loopback(dict(os.environ), ca_port=port)
    env.pop("PYEPICS_LIBCA", None)
    assert env["EPICS_CA_REPEATER_PORT"] == str(rport)

    def client_binds() -> tuple[list[tuple[str, int]], set[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT.format(setup=setup)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while (line := proc.stdout.readline()) and line.strip() != "up":
                pass  # pyepics prints "cannot connect to ..."
            assert line.strip() == "up", proc.poll()
            time.sleep(0.3)  # libca starts its repeater when its UDP client starts
            binds, threads = _udp_binds(proc.pid), _threads(proc.pid)
        finally:
            proc.kill()  # libca's exit-time teardown takes seconds; nothing to keep
            _, err = proc.communicate(timeout=20)
        return binds, threads, err

    # without a repeater libca starts one of its own: epicscorelibs' as a thread on 0.0.0.0
    # (what failed on a fresh CI), pyepics' by running caRepeater from PATH (none here)
    binds, threads, err = client_binds()
    if libca == "epicscorelibs":
        assert ("0.0.0.0", rport) in binds and "CAC-repeater" in threads, (binds, threads)
    else:
        assert ("0.0.0.0", rport) in binds or "caRepeater" in err, (binds, err)
    # with ours holding the port on loopback it does neither
    rep = repeater.spawn_child([rport], env)
    try:
        assert ("127.0.0.1", rport) in _udp_binds(rep.pid)
        binds, threads, err = client_binds()
        assert not [b for b in binds if b[1] == rport], binds
        assert "CAC-repeater" not in threads, threads
        assert "caRepeater" not in err, err
        assert rep.poll() is None
    finally:
        rep.terminate()
        assert rep.wait(5) == 0


def test_repeater_confirms_libca_empty_registration():
    """libca registers with an empty datagram; without a confirmation it retries for ever and
    prints "unable to contact CA repeater after 50 tries" (caproto's repeater sent none)."""
    rport = epics_env.repeater_port_for(free_port(udp=True))
    rep = repeater.spawn_child([rport])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
            client.sendto(b"", ("127.0.0.1", rport))
            command, *_ = struct.unpack(">4H2I", client.recv(1024)[:16])
            assert command == 17  # REPEATER_CONFIRM
    finally:
        rep.terminate()
        rep.wait(5)


def test_repeater_forwards_broadcast_beacons_to_registered_clients():
    import caproto

    rport = epics_env.repeater_port_for(free_port(udp=True))
    rep = repeater.spawn_child([rport])
    try:
        binds = _udp_binds(rep.pid)
        assert ("127.0.0.1", rport) in binds and ("127.255.255.255", rport) in binds, binds
        assert all(ip.startswith("127.") for ip, _ in binds), binds
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
            client.sendto(bytes(caproto.RepeaterRegisterRequest("127.0.0.1")), ("127.0.0.1", rport))
            command, *_ = struct.unpack(">4H2I", client.recv(1024)[:16])
            assert command == 17  # REPEATER_CONFIRM
            beacon = caproto.Beacon(13, 5064, 42, "127.0.0.1")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                server.sendto(bytes(beacon), ("127.255.255.255", rport))
            header = struct.unpack(">4H2I", client.recv(1024)[:16])
            assert (header[0], header[3], header[4]) == (13, 5064, 42), header  # RSRV_IS_UP
    finally:
        rep.terminate()
        rep.wait(5)


def test_launcher_children_end_when_it_is_killed(tmp_path):
    """SIGKILL of the IOC launcher: its repeater, motor IOC and AD IOC all end (none is
    left as an orphan holding ports)."""
    from adscan.services import ioc_argv, ioc_env

    port = free_port(udp=True)
    argv = ioc_argv(
        port=port,
        motors_prefix="rpt:",
        ad_prefix="rptad:",
        data_dir=tmp_path,
        rows=16,
        cols=16,
        velocity=20.0,
    )
    import caproto

    proc = subprocess.Popen(
        argv, env=ioc_env(port), stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    rport = epics_env.repeater_port_for(port)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(0.1)
    try:
        deadline = time.monotonic() + 30
        while True:  # register with the launcher's repeater (its first child) early
            client.sendto(bytes(caproto.RepeaterRegisterRequest("127.0.0.1")), ("127.0.0.1", rport))
            try:
                if struct.unpack(">H", client.recv(1024)[:2])[0] == 17:  # REPEATER_CONFIRM
                    break
            except (TimeoutError, ConnectionRefusedError):
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "no repeater"
        deadline = time.monotonic() + 90
        line = ""
        while not line.startswith("READY") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "launcher exited before READY"
        assert line.startswith("READY"), line
        kids = psutil.Process(proc.pid).children(recursive=True)
        roles = [" ".join(k.cmdline()) for k in kids]
        assert any("adscan.ca_repeater" in r for r in roles), roles
        rep = next(k for k in kids if "adscan.ca_repeater" in " ".join(k.cmdline()))
        assert ("127.0.0.1", rport) in _udp_binds(rep.pid)
        # both servers (motors on P, the AD IOC's rsrv on P + 2) beacon to the beamline's
        # repeater port, which forwards what reaches 127.255.255.255
        servers: set[int] = set()
        deadline = time.monotonic() + 20
        while servers != {port, epics_env.ad_ca_port(port)} and time.monotonic() < deadline:
            try:
                data = client.recv(4096)
            except TimeoutError:
                continue
            for off in range(0, len(data) - 15, 16):
                command, _, _, server_port, _, _ = struct.unpack(">4H2I", data[off : off + 16])
                if command == 13:  # RSRV_IS_UP
                    servers.add(server_port)
        assert servers == {port, epics_env.ad_ca_port(port)}, servers
    finally:
        client.close()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 15

    def alive() -> list[psutil.Process]:
        out = []
        for k in kids:
            try:
                if k.is_running() and k.status() != psutil.STATUS_ZOMBIE:
                    out.append(k)
            except psutil.NoSuchProcess:
                continue
        return out

    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(), [(k.pid, k.cmdline()[:4]) for k in alive()]


def test_test_session_ioc_ends_when_the_session_is_killed(tmp_path):
    """A test process started an IOC (``helpers.start_ioc``) and was SIGKILLed: the
    launcher and its children end too (a killed CI run leaves no IOC holding ports)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import helpers; from pathlib import Path\n"
        "p = helpers.start_ioc(port=int(sys.argv[2]), motors_prefix='dwp:', "
        "ad_prefix='dwpad:', data_dir=Path(sys.argv[3]), rows=16, cols=16)\n"
        "print(p.pid, flush=True); sys.stdin.read()\n"
    )
    tests_dir = str(Path(__file__).resolve().parent)
    argv = [sys.executable, "-c", code, tests_dir, str(free_port(udp=True)), str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSCAN_TEST_CA_PORTS")}
    session = subprocess.Popen(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        launcher = psutil.Process(int(session.stdout.readline()))
        family = [launcher, *launcher.children(recursive=True)]
        assert len(family) >= 4, [k.cmdline()[:4] for k in family]  # + repeater, 2 IOCs
    finally:
        session.kill()
        session.wait(10)
    gone, alive = psutil.wait_procs(family, timeout=20)
    assert not alive, [(k.pid, k.cmdline()[:4]) for k in alive]
