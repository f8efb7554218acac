"""Test session set-up: loopback EPICS, unique ports and prefixes, a private data directory.

Everything here runs before any test module imports pyepics, caproto or ophyd:
- EPICS CA/PVA traffic is confined to 127.0.0.1 (adscan.epics_env).
- Four free UDP ports are reserved for this session's IOCs; clients search all of them
  (``EPICS_CA_ADDR_LIST=127.0.0.1:P0 127.0.0.1:P1 ...``), so tests may run several IOC
  processes at once, each on its own port with its own PV prefix, and concurrent test
  sessions on one machine never answer each other.
- ``ADSCAN_ICONFIG`` points at a copy of startup/iconfig.yml whose data directory,
  PV prefixes, Redis and ZMQ ports are this session's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


from adscan.ports import free_ports  # noqa: E402 - (also sets loopback EPICS env)

CA_PORTS = [int(p) for p in os.environ["ADSCAN_TEST_CA_PORTS"].split(",")] if os.environ.get(
    "ADSCAN_TEST_CA_PORTS") else free_ports(4, udp=True)
TAG = f"t{os.getpid() % 100000}"
SESSION_DIR = Path(tempfile.mkdtemp(prefix=f"adscan-test-{TAG}-"))

from adscan import epics_env  # noqa: E402

epics_env.apply_loopback(ca_port=CA_PORTS[0])
# each simulated beamline: motors on P, area detector on P + 2 (adscan.epics_env)
os.environ["EPICS_CA_ADDR_LIST"] = " ".join(
    f"127.0.0.1:{p} 127.0.0.1:{epics_env.ad_ca_port(p)}" for p in CA_PORTS)
os.environ["ADSCAN_TEST_CA_PORTS"] = ",".join(map(str, CA_PORTS))


def write_iconfig(directory: Path, *, tag: str, ca_port: int, simulate: bool = True) -> Path:
    """A private copy of startup/iconfig.yml for tests: fast motors, 2 ms exposures."""
    from adscan.config import write_private_iconfig

    return write_private_iconfig(
        directory, tag=tag, ca_port=ca_port, simulate=simulate,
        epics={"connection_timeout": 5}, ioc={"motor_velocity": 20.0},
        detector={"acquire_time": 0.002, "acquire_period": 0.002})


ICONFIG = write_iconfig(SESSION_DIR / "config", tag=TAG, ca_port=CA_PORTS[0])
os.environ["ADSCAN_ICONFIG"] = str(ICONFIG)
os.environ.pop("ADSCAN_DATA_DIR", None)


def start_ioc(
    *,
    port: int,
    motors_prefix: str,
    ad_prefix: str,
    data_dir: Path,
    rows: int = 1024,
    cols: int = 1024,
    velocity: float = 20.0,
    timeout: float = 90.0,
) -> subprocess.Popen:
    """Start ``python -m adscan.iocs`` and return once it printed its READY line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / f"ioc-{port}.log", "a")  # noqa: SIM115 - owned by the process
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    epics_env.apply_loopback(env, ca_port=port)
    env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{port} 127.0.0.1:{epics_env.ad_ca_port(port)}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "adscan.iocs", "--prefix-motors", motors_prefix,
         "--prefix-ad", ad_prefix, "--data-dir", str(data_dir), "--port", str(port),
         "--rows", str(rows), "--cols", str(cols), "--velocity", str(velocity)],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY"):
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"IOC on port {port} did not become ready; see {log.name}")


QSERVER = str(Path(sys.executable).with_name("qserver"))


def qserver(cfg: dict, *words: str, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real ``qserver`` CLI against the RE Manager of ``cfg``."""
    env = dict(os.environ, QSERVER_ZMQ_CONTROL_ADDRESS=cfg["queueserver"]["zmq_control_addr"],
               QSERVER_ZMQ_INFO_ADDRESS=cfg["queueserver"]["zmq_info_addr"])
    proc = subprocess.run([QSERVER, *words], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"qserver {' '.join(words)}: {proc.stdout}\n{proc.stderr}"
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; return the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


@pytest.fixture(scope="session")
def iconfig() -> dict:
    """This session's instrument configuration (paths expanded)."""
    from adscan.config import load_iconfig

    return load_iconfig(ICONFIG)


@pytest.fixture(scope="session")
def beamline(iconfig):
    """The session's simulated beamline IOC (motors + detector) at the iconfig prefixes."""
    proc = start_ioc(
        port=CA_PORTS[0],
        motors_prefix=iconfig["ioc"]["motors_prefix"],
        ad_prefix=iconfig["ioc"]["ad_prefix"],
        data_dir=Path(iconfig["instrument"]["data_dir"]),
        velocity=float(iconfig["ioc"]["motor_velocity"]),
    )
    yield proc
    stop_process(proc)


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and not os.environ.get("ADSCAN_KEEP_TEST_DATA"):
        shutil.rmtree(SESSION_DIR, ignore_errors=True)


@contextlib.contextmanager
def private_service(directory: Path, edit=None):
    """A private RE Manager (own Redis, ZMQ ports, data directory) on the session's IOC.

    Its queue and history do not leak into other modules.  ``edit(raw_iconfig_dict)`` may
    change the written configuration first.  Yields the loaded iconfig; stops it at the end.
    """
    from adscan import services
    from adscan.config import load_iconfig

    path = write_iconfig(directory, tag=TAG, ca_port=CA_PORTS[0])
    if edit is not None:
        raw = yaml.safe_load(path.read_text())
        edit(raw)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_iconfig(path)
    session_iconfig = os.environ["ADSCAN_ICONFIG"]
    os.environ["ADSCAN_ICONFIG"] = str(path)  # the worker (profile) reads it at start-up
    try:
        services.up(cfg, ioc=False)
        os.environ["ADSCAN_ICONFIG"] = session_iconfig
        yield cfg
    finally:
        os.environ["ADSCAN_ICONFIG"] = session_iconfig
        services.down(cfg)
