"""Test session set-up and the shared fixtures (helpers live in ``tests/helpers.py``).

Everything here runs before any test module imports pyepics, caproto or ophyd:
- EPICS CA/PVA traffic is confined to 127.0.0.1 (adscan.epics_env).
- Four free UDP ports are reserved for this session's IOCs; clients search all of them
  (``EPICS_CA_ADDR_LIST=127.0.0.1:P0 127.0.0.1:P1 ...``), so tests may run several IOC
  processes at once, each on its own port with its own PV prefix, and concurrent test
  sessions on one machine never answer each other.
- A loopback CA repeater (``adscan.ca_repeater``, a child of pytest) holds the
  session's repeater ports, so no libca of the session starts one on 0.0.0.0.
- ``ADSCAN_ICONFIG`` points at a copy of startup/iconfig.yml whose data directory,
  PV prefixes, Redis and ZMQ ports are this session's own.

Fixtures: ``iconfig`` and ``beamline`` (the session's IOC), ``service`` and ``rm`` (a private
RE Manager per module on that IOC, or one shared by SHARED_SERVICE_MODULES, reset for each; a
module may override ``service_edit``), ``stack`` (a
whole private stack per module, own IOC on ``CA_PORTS[STACK_CA_PORT]``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402 - the session's ports, tag and directory (sets loopback EPICS env)

from adscan import epics_env  # noqa: E402

epics_env.apply_loopback(ca_port=helpers.CA_PORTS[0])

# each simulated beamline: motors on P, area detector on P + 2 (adscan.epics_env)
os.environ["EPICS_CA_ADDR_LIST"] = " ".join(
    f"127.0.0.1:{p} 127.0.0.1:{epics_env.ad_ca_port(p)}" for p in helpers.CA_PORTS
)
os.environ["ADSCAN_TEST_CA_PORTS"] = ",".join(map(str, helpers.CA_PORTS))
os.environ["ADSCAN_TEST_CA_PORTS_WORKER"] = helpers.WORKER

from adscan import ca_repeater as repeater  # noqa: E402

# The session's CA repeater ports (P + 1 of each beamline) are held on loopback before any
# libca loads here or in a child, else libca runs a repeater of its own on 0.0.0.0.
REPEATER_PORTS = [epics_env.repeater_port_for(p) for p in helpers.CA_PORTS]
SESSION_REPEATER = repeater.spawn_child(REPEATER_PORTS)

ICONFIG = helpers.write_iconfig(helpers.SESSION_DIR / "config")
os.environ["ADSCAN_ICONFIG"] = str(ICONFIG)
os.environ.pop("ADSCAN_DATA_DIR", None)


def _zmq_context_del_without_term(self) -> None:
    """pyzmq 27.3's ``Context.__del__`` calls ``destroy()`` -> ``term()``.  When a client
    (an API object, a dispatcher) dies in a garbage cycle together with its context and
    sockets, the context's weak set of sockets is already empty, so no socket is closed and
    ``term()`` blocks forever, in whatever thread the collector happened to run.  Seen twice
    in full runs: inside the NeXus writer thread's h5py call (holding h5py's lock, so every
    later HDF5 read of the session hung, beyond pytest-timeout's reach) and in ophyd's exit
    join.  In the test process a collected context is left to the process exit instead."""


import zmq  # noqa: E402

zmq.Context.__del__ = _zmq_context_del_without_term


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Stop the session's repeater, then leave without the interpreter's exit handlers.

    Seen here: after the summary, ophyd's atexit clean-up joined its dispatcher thread while
    that thread, collecting garbage, sat forever in a pyzmq ``Context.__del__`` -> ``term()``
    (a client context whose socket was still open), so pytest never exited and CI would be
    killed.  Every fixture has been torn down and the summary printed by now; the exit status
    is pytest's own.
    """
    SESSION_REPEATER.terminate()
    with contextlib.suppress(Exception):
        SESSION_REPEATER.wait(5)
    status = getattr(config, "_adscan_exitstatus", None)
    if status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(status))


def pytest_sessionfinish(session, exitstatus):
    session.config._adscan_exitstatus = exitstatus
    if exitstatus == 0 and not os.environ.get("ADSCAN_KEEP_TEST_DATA"):
        shutil.rmtree(helpers.SESSION_DIR, ignore_errors=True)


def _module_name(request) -> str:
    return request.module.__name__.rpartition(".")[2].removeprefix("test_")


@pytest.fixture(scope="session")
def iconfig() -> dict:
    """This session's instrument configuration (paths expanded)."""
    from adscan.core.config import load_iconfig

    return load_iconfig(ICONFIG)


@pytest.fixture(scope="session")
def beamline(iconfig):
    """The session's simulated beamline IOC (motors + detector) at the iconfig prefixes."""
    proc = helpers.start_ioc(
        port=helpers.CA_PORTS[0],
        motors_prefix=iconfig["ioc"]["motors_prefix"],
        ad_prefix=iconfig["ioc"]["ad_prefix"],
        data_dir=Path(iconfig["instrument"]["data_dir"]),
        velocity=float(iconfig["ioc"]["motor_velocity"]),
    )
    yield proc
    helpers.stop_process(proc)


@pytest.fixture(scope="module")
def service_edit():
    """``edit(raw_iconfig)`` for the module's private service; modules override it."""
    return None


#: Modules that only look at what their own plans changed (snapshots before/after, uids,
#: relative history counts) share one RE Manager: each private start costs 10-15 s.  Modules
#: that read the manager's log or memory, or change its settings, keep a private one.
SHARED_SERVICE_MODULES = {"bad_input", "http", "live", "queue_monitor"}


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory, beamline):
    """The RE Manager the SHARED_SERVICE_MODULES use, one per session."""
    with helpers.private_service(tmp_path_factory.mktemp("shared-service")) as cfg:
        yield cfg


@pytest.fixture(scope="module")
def service(request, tmp_path_factory, beamline, service_edit):
    """A private RE Manager (own Redis, ZMQ ports, data dir) on the session's IOC, environment
    open; its queue and history are the module's own (a shared manager is handed over idle,
    environment open, queue and history empty)."""
    if service_edit is None and _module_name(request) in SHARED_SERVICE_MODULES:
        cfg = request.getfixturevalue("shared_service")
        helpers.reset_service(cfg)
        yield cfg
        return
    directory = tmp_path_factory.mktemp(_module_name(request))
    with helpers.private_service(directory, edit=service_edit) as cfg:
        yield cfg


@pytest.fixture(scope="module")
def rm(service):
    """``bluesky_queueserver_api`` client of the module's service (queue cleared)."""
    from adscan import services

    api = services.re_manager_api(service, timeout=10)
    api.queue_clear()
    yield api
    api.close()


@pytest.fixture(scope="module")
def stack(request):
    """A whole private stack: own simulated IOC (256x256 frames) on the spare session CA port
    ``CA_PORTS[STACK_CA_PORT]`` (module attribute, default 1; motor speed
    ``STACK_MOTOR_VELOCITY`` if the module sets it), Redis, RE Manager, data dir;
    tests may kill and restart its parts.  Yields (iconfig, API client)."""
    from adscan import services

    port = helpers.CA_PORTS[getattr(request.module, "STACK_CA_PORT", 1)]
    cfg = helpers.make_stack_config(_module_name(request), port)
    velocity = getattr(request.module, "STACK_MOTOR_VELOCITY", None)
    if velocity is not None:
        cfg["ioc"]["motor_velocity"] = float(velocity)
    try:  # a part that failed to start must not leave the started ones running
        services.up(cfg)
        api = services.re_manager_api(cfg, timeout=10)
        yield cfg, api
        with contextlib.suppress(Exception):
            api.close()
    finally:
        services.down(cfg)
