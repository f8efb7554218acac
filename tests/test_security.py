"""Security: encrypted ZMQ, a restricted user group, no committed secret, loopback-only sockets.

One private RE Manager (own Redis/ZMQ ports and data directory, the session's simulated IOC)
runs with ZMQ CURVE encryption: the key pair is generated here, the private key lives in a
chmod-600 file named by ``queueserver.zmq_private_key_file`` (see startup/qserver.yml), never in
the repository, the generated qserver.yml or the log.  The HTTP server's API key is tested in
tests/test_http.py.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from bluesky_queueserver_api import BFunc, BPlan
from bluesky_queueserver_api.zmq import REManagerAPI
from helpers import CA_PORTS, REPO

from adscan import services

pytestmark = pytest.mark.timeout(300)

QSERVER = str(Path(sys.executable).with_name("qserver"))


@pytest.fixture(scope="module")
def keys():
    from bluesky_queueserver.manager.comms import generate_zmq_keys

    public, private = generate_zmq_keys()
    return {"public": public, "private": private}


@pytest.fixture(scope="module")
def service_edit(tmp_path_factory, keys):
    """This module's service is encrypted (key file, owner-only) with the committed
    user-group permissions."""
    key_file = tmp_path_factory.mktemp("keys") / "zmq-private.key"
    key_file.write_text(f"{keys['private']}\n")
    key_file.chmod(0o600)

    def encrypt(raw: dict) -> None:
        raw["queueserver"]["zmq_private_key_file"] = str(key_file)

    return encrypt


def plain_client(cfg: dict, public_key: str | None = None) -> REManagerAPI:
    qs = cfg["queueserver"]
    return REManagerAPI(
        zmq_control_addr=qs["zmq_control_addr"],
        zmq_info_addr=qs["zmq_info_addr"],
        zmq_public_key=public_key,
        timeout_recv=1.5,
        status_polling_period=0.1,
    )


# --------------------------------------------------------------------------- ZMQ encryption


def test_encrypted_client_works(rm, service, keys):
    assert services.zmq_public_key(service) == keys["public"]
    st = rm.status()
    assert st["worker_environment_exists"] is True and st["manager_state"] == "idle"


@pytest.mark.parametrize("which", ["no key", "wrong key"])
def test_client_without_the_key_gets_no_answer(service, which):
    from bluesky_queueserver.manager.comms import generate_zmq_keys

    key = None if which == "no key" else generate_zmq_keys()[0]
    api = plain_client(service, key)
    try:
        with pytest.raises(api.RequestTimeoutError):
            api.status()
    finally:
        api.close()
    assert services.re_manager_status(service) is not None, "the manager must keep answering"


def test_qserver_cli_needs_the_public_key(service, keys):
    qs = service["queueserver"]
    env = dict(
        os.environ,
        QSERVER_ZMQ_CONTROL_ADDRESS=qs["zmq_control_addr"],
        QSERVER_ZMQ_INFO_ADDRESS=qs["zmq_info_addr"],
    )
    env.pop("QSERVER_ZMQ_PUBLIC_KEY", None)
    ok = subprocess.run(
        [QSERVER, "status"],
        env=dict(env, QSERVER_ZMQ_PUBLIC_KEY=keys["public"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "manager_state" in ok.stdout, ok.stdout + ok.stderr
    bad = subprocess.run([QSERVER, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "timeout" in (bad.stdout + bad.stderr).lower(), bad.stdout + bad.stderr


def test_private_key_is_not_written_anywhere(service, keys):
    run = services.run_dir(service)
    generated = (run / "qserver.yml").read_text()
    assert keys["private"] not in generated
    assert "zmq_private_key" not in yaml.safe_load(generated)["network"]
    for f in Path(service["instrument"]["data_dir"]).rglob("*"):
        if f.is_file() and f.stat().st_size < 50_000_000:
            assert keys["private"].encode() not in f.read_bytes(), f


def test_key_file_must_be_owner_only(tmp_path, keys, iconfig):
    import copy

    key_file = tmp_path / "k"
    key_file.write_text(keys["private"])
    key_file.chmod(0o644)
    cfg = copy.deepcopy(iconfig)
    cfg["queueserver"]["zmq_private_key_file"] = str(key_file)
    with pytest.raises(services.ServiceError, match="chmod 600"):
        services.zmq_private_key(cfg)
    key_file.chmod(0o600)
    assert services.zmq_private_key(cfg) == keys["private"]
    key_file.write_text("not a key")
    with pytest.raises(services.ServiceError, match="private key"):
        services.zmq_private_key(cfg)
    # qserver-zmq-keys output is accepted as it is
    out = subprocess.run(
        [str(Path(sys.executable).with_name("qserver-zmq-keys"))],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    key_file.write_text(out)
    private = services.zmq_private_key(cfg)
    assert private and private in out and len(private) == 40


# --------------------------------------------------------------------------- user groups

SCAN_ONLY_PLANS = {"adscan_count", "adscan_scan", "adscan_scan2", "adscan_grid_scan"}


def test_scan_only_group_lists_exactly_the_adscan_plans_and_devices(rm):
    plans = set(rm.plans_allowed(user_group="scan_only")["plans_allowed"])
    assert plans == SCAN_ONLY_PLANS
    devices = set(rm.devices_allowed(user_group="scan_only")["devices_allowed"])
    configured = yaml.safe_load((REPO / "startup" / "devices.yml").read_text())
    assert devices == set(configured["motors"]) | set(configured["detectors"])
    # the default group is wider: the restriction is the group's, not the profile's
    primary = set(rm.plans_allowed()["plans_allowed"])
    assert primary == plans | {"adscan_read_stats"}  # issue 12.5: no stock plan in the queue


def test_scan_only_accepts_an_adscan_plan(rm):
    before = rm.queue_get()["items"]
    result = rm.item_add(BPlan("adscan_scan", "m1", -1, 1, 3, frames=1), user_group="scan_only")
    assert result["success"], result["msg"]
    assert result["item"]["user_group"] == "scan_only"
    rm.item_remove(uid=result["item"]["item_uid"])
    assert rm.queue_get()["items"] == before


@pytest.mark.parametrize(
    "item,word",
    [
        (BPlan("count", ["simdet"], num=1), "not in the list of allowed plans"),
        (BPlan("scan", ["simdet"], "m1", -1, 1, 3), "not in the list of allowed plans"),
        (BPlan("adscan_read_stats", "simdet"), "not in the list of allowed plans"),
        (BPlan("adscan_scan", "m9", -1, 1, 3), "m9"),
        (BPlan("adscan_scan", "m1.user_readback", -1, 1, 3), "m1.user_readback"),
    ],
    ids=["count", "scan", "diagnostics", "unknown-device", "subdevice"],
)
def test_scan_only_refuses(rm, item, word):
    before = rm.queue_get()["items"]
    with pytest.raises(rm.RequestFailedError) as info:
        rm.item_add(item, user_group="scan_only")
    assert word in info.value.response["msg"], info.value.response["msg"]
    assert rm.queue_get()["items"] == before


def test_primary_executes_only_the_functions_meant_for_users(rm):
    """The default group may run ``adscan_progress`` but no other callable of the profile."""
    for name in ("print", "open_catalog", "make_catalog_writer"):
        with pytest.raises(rm.RequestFailedError) as info:
            rm.function_execute(BFunc(name, "x"))
        assert (
            "not allowed" in info.value.response["msg"]
            or "not in the list" in info.value.response["msg"]
        ), info.value.response["msg"]
    result = rm.function_execute(BFunc("adscan_progress"), run_in_background=True)
    assert result["success"], result["msg"]


def test_scan_only_cannot_execute_functions_and_unknown_groups_are_refused(rm):
    with pytest.raises(rm.RequestFailedError) as info:
        rm.function_execute(BFunc("print", "x"), user_group="scan_only")
    assert (
        "not allowed" in info.value.response["msg"]
        or "not in the list" in info.value.response["msg"]
    ), info.value.response["msg"]
    with pytest.raises(rm.RequestFailedError) as info:
        rm.item_add(BPlan("adscan_count"), user_group="admins")
    assert "admins" in info.value.response["msg"]


# --------------------------------------------------------------------------- committed secrets

SECRET_PATTERNS = [
    ("PEM private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[0-9A-Za-z+/]")),
    ("ZMQ secret key file", re.compile(r"secret-key\s*=\s*\"")),
    (
        "literal secret assignment",
        re.compile(
            r"(?i)\b[A-Z0-9_]*(PRIVATE_KEY|API_KEY|SECRET|PASSWORD|TOKEN)[A-Z0-9_]*[\"']?\s*[:=]\s*"
            r"[\"']?(?!\$)([^\s\"'$]{16,})"
        ),
    ),
    (
        "z85 private key",
        re.compile(
            r"(?i)private[ _]key[\s\"':=]{1,6}[0-9A-Za-z.\-:+=^!/*?&<>()"
            r"\[\]{}@%$#]{40}(?![0-9A-Za-z])"
        ),
    ),
]
SECRET_NAME = re.compile(r"(?i)(PRIVATE_KEY|API_KEY|SECRET|PASSWORD|PASSWD|TOKEN)")
ENV_TEMPLATES = {".env.example", ".env.sample", ".env.template"}


def find_secrets(name: str, text: str) -> list[str]:
    hits = []
    base = Path(name).name
    if base == ".env" or (base.startswith(".env") and base not in ENV_TEMPLATES):
        hits.append(f"{name}: environment file tracked")
    if base in ENV_TEMPLATES:
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if (
                sep
                and not line.lstrip().startswith("#")
                and value.strip()
                and SECRET_NAME.search(key)
            ):
                hits.append(f"{name}: template sets {key.strip()}")
    for label, pattern in SECRET_PATTERNS:
        for m in pattern.finditer(text):
            value = m.group(m.lastindex or 0)
            # a literal secret has letters and digits; code and shell words usually do not
            if label != "literal secret assignment" or (
                re.search(r"\d", value) and re.search(r"[A-Za-z]", value)
            ):
                hits.append(f"{name}: {label}: {m.group(0)[:60]}")
    return hits


def test_secret_scanner_finds_secrets():
    from bluesky_queueserver.manager.comms import generate_zmq_keys

    _, private = generate_zmq_keys()
    assert find_secrets("a.py", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r")
    assert find_secrets("b.yml", f"zmq_private_key: {private}")
    assert find_secrets("c.sh", "export QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY=3f9c0d2e8a7b6c5d")
    assert find_secrets(".env", "")
    assert find_secrets("deploy/.env.example", "MONGO_PASSWORD=hunter2")
    assert not find_secrets(".env.example", "ADSCAN_HTTP_PORT=60610\n")
    assert not find_secrets("e.py", "private_key = zmq_private_key(cfg)")
    assert not find_secrets(".env.example", "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY=\n")
    assert not find_secrets("d.yml", 'KEY: "${QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY:?set it}"')


def test_no_secret_is_committed():
    files = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        )
        .stdout.decode()
        .split("\0")
    )
    files = [f for f in files if f]
    assert len(files) > 20
    hits = []
    for name in files:
        path = REPO / name
        if name == "tests/test_security.py" or not path.is_file():
            continue
        data = path.read_bytes()[:2_000_000]
        if b"\0" in data[:8000]:
            continue
        hits += find_secrets(name, data.decode(errors="replace"))
    assert not hits, "\n".join(hits)


# --------------------------------------------------------------------------- loopback only


def _bound_addresses(pid: int) -> list[dict]:
    """Every listening TCP and every unconnected UDP socket of ``pid`` and its children."""
    import socket

    root = psutil.Process(pid)
    out = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            maps = Path(f"/proc/{proc.pid}/maps")
            libca = maps.exists() and "libca.so" in maps.read_text()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.type == socket.SOCK_STREAM and c.status == psutil.CONN_LISTEN:
                kind = "tcp-listen"
            elif c.type == socket.SOCK_DGRAM and not c.raddr:
                kind = "udp"
            else:
                continue
            out.append(
                {
                    "pid": proc.pid,
                    "root": proc.pid == pid,
                    "kind": kind,
                    "ip": c.laddr.ip,
                    "port": c.laddr.port,
                    "libca": libca,
                }
            )
    return out


def test_services_bind_loopback_only(service, beamline):
    """Every server socket (TCP listen, UDP on a service port) of Redis, the RE Manager (and its
    worker) and the simulated IOC is bound to 127.0.0.1.

    One documented exception, not configurable: EPICS libca (pyepics, used by ophyd in the
    worker) binds its CA *client* search socket to INADDR_ANY on an ephemeral port.  It serves
    nothing; the searches it sends go to 127.0.0.1 only (EPICS_CA_AUTO_ADDR_LIST=NO).  Allowed
    only in a non-root process of the RE Manager that loads libca, at most two sockets, never
    on a configured service port.
    """
    from adscan import epics_env
    from adscan.services import parse_redis_addr, zmq_host_port

    qs = service["queueserver"]
    service_ports = {
        *CA_PORTS,
        parse_redis_addr(qs["redis_addr"])[1],
        zmq_host_port(qs["zmq_control_addr"])[1],
        zmq_host_port(qs["zmq_info_addr"])[1],
        *(epics_env.repeater_port_for(p) for p in CA_PORTS),
        5064,
        5065,
        5075,
        5076,
    }
    pids = {
        "redis": services.redis_pid(service),
        "re-manager": services.re_manager_pid(service),
        "ioc": beamline.pid,
    }
    assert all(pids.values()), pids
    sockets = {name: _bound_addresses(pid) for name, pid in pids.items()}
    for name in ("redis", "re-manager", "ioc"):
        assert any(b["kind"] == "tcp-listen" for b in sockets[name]), (name, sockets)
    assert any(b["kind"] == "udp" and b["port"] == CA_PORTS[0] for b in sockets["ioc"])
    # The AD IOC (softioc) embeds EPICS libraries whose sockets Python cannot bind: send-only
    # UDP sockets on ephemeral INADDR_ANY ports (rsrv's beacon sender, the dbCa link
    # client's search socket, pvxs' beacon sender: at most 3) and pvxs' pvAccess search
    # listener, which binds INADDR_ANY on the PVA UDP port although
    # EPICS_PVAS_INTF_ADDR_LIST=127.0.0.1 (its TCP server listens on 127.0.0.1 only).
    ad_pids = {
        p.pid
        for p in psutil.Process(beamline.pid).children(recursive=True)
        if "adscan.iocs.ad_ioc" in " ".join(p.cmdline())
    }
    pva_udp = epics_env.pva_port(CA_PORTS[0])
    wide, ca_client, ad_send, ad_pva = [], [], [], []
    for name, found in sockets.items():
        for b in found:
            if ipaddress.ip_address(b["ip"]).is_loopback:
                continue
            if (
                name == "re-manager"
                and b["kind"] == "udp"
                and b["libca"]
                and not b["root"]
                and b["port"] not in service_ports
            ):
                ca_client.append(b)
            elif name == "ioc" and b["kind"] == "udp" and b["pid"] in ad_pids and b["libca"]:
                (ad_pva if b["port"] == pva_udp else ad_send).append(b)
            else:
                wide.append((name, b))
    assert not wide, f"sockets bound beyond loopback: {wide}"
    assert len(ca_client) <= 2, ca_client
    assert all(b["port"] not in service_ports for b in ad_send) and len(ad_send) <= 3, ad_send
    assert len(ad_pva) <= 1, ad_pva


def _udp_holders(port: int) -> list[dict]:
    """Every UDP socket of any process on this host bound to ``port`` (psutil, all pids)."""
    out = []
    for c in psutil.net_connections(kind="udp"):
        if c.laddr and c.laddr.port == port:
            try:
                cmd = " ".join(psutil.Process(c.pid).cmdline()) if c.pid else "?"
            except psutil.Error:
                cmd = "?"
            out.append({"pid": c.pid, "ip": c.laddr.ip, "cmd": cmd})
    return out


def _session_processes(service) -> list[psutil.Process]:
    """This test session's processes: pytest's descendants and the service's families
    (detached ones whose parent is gone included)."""
    from adscan.services import procfamily

    procs = {p.pid: p for p in psutil.Process(os.getpid()).children(recursive=True)}
    for role in ("re-manager", "repeater"):
        procs.update({p.pid: p for p in procfamily.members(procfamily.marker(service, role))})
    return list(procs.values())


def test_ca_repeater_port_is_held_on_loopback_by_ours(service, beamline):
    """The CA repeater port of every beamline of this session is held on 127.0.0.1 by our
    repeater (adscan/ca_repeater.py, started before any libca), and no process on this
    host binds it on another address.  Had libca found the port free, it would have run a
    repeater of its own on 0.0.0.0 (what a fresh CI machine showed on 5065).  The RE
    Manager and its worker use this session's port, not 5065, and no process of the session
    binds 5065 (or any repeater port) beyond loopback."""
    from adscan import epics_env

    session = epics_env.repeater_port_for(CA_PORTS[0])
    assert epics_env.repeater_port() == session
    worker_env = services.child_env(service)
    assert epics_env.repeater_port(worker_env) == session
    assert worker_env["EPICS_CAS_BEACON_PORT"] == str(session)
    for port in (epics_env.repeater_port_for(p) for p in CA_PORTS):
        holders = _udp_holders(port)
        wide = [h for h in holders if not ipaddress.ip_address(h["ip"]).is_loopback]
        assert not wide, f"repeater port {port} bound beyond loopback: {wide}"
        ours = [h for h in holders if h["ip"] == "127.0.0.1" and "adscan.ca_repeater" in h["cmd"]]
        assert ours, f"repeater port {port} not held by our loopback repeater: {holders}"
    # every process of the session, whatever its repeater port: 5065 and the repeater ports
    # never on a wildcard or host address
    ports = {5065, *(epics_env.repeater_port_for(p) for p in CA_PORTS)}
    procs = _session_processes(service)
    assert len(procs) >= 4, procs  # the IOC launcher's children, Redis, the RE Manager family
    bad = []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="udp")
        except psutil.Error:
            continue
        for c in conns:
            if c.laddr.port in ports and not ipaddress.ip_address(c.laddr.ip).is_loopback:
                bad.append((proc.pid, " ".join(proc.cmdline()[:4]), c.laddr))
    assert not bad, f"session processes binding a CA repeater port beyond loopback: {bad}"
