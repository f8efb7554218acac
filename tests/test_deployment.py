"""The compose deployment, checked without a container engine.

Reads docker-compose.yml, deploy/iconfig.compose.yml, Dockerfile, .dockerignore and
.env.example as a container engine would (with compose's ``${VAR:-default}`` interpolation
done here) and checks what ``docker compose up`` depends on: pinned images, loopback-only
published ports, health checks and start order, every environment variable adscan reads, the
image-file path mapping between the IOC and bluesky, and that no secret is committed.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_ICONFIG = REPO / "deploy" / "iconfig.compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "deploy" / "entrypoint.py"
CONTAINER_REPO = PurePosixPath("/opt/adscan")  # where the Dockerfile puts the repository

#: Python sources that run inside the re-manager container (profile, services, entrypoint).
RUNTIME_SOURCES = ["adscan", "devices", "plans", "iocs", "profile_collection", "deploy"]


# ------------------------------------------------------------------------------ helpers

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation (``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``, ``$$``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        val = env.get(name)
        if op == ":-":
            return val if val else arg
        if op == "-":
            return arg if val is None else val
        if op in (":?", "?"):
            if not val if op == ":?" else val is None:
                raise KeyError(f"{name}: {arg}")
            return val
        return val or ""

    return _VAR.sub(sub, value)


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, val = line.partition("=")
            out[key.strip()] = val.strip()
    return out


#: What a user has after ``cp .env.example .env`` and filling in the key.
USER_ENV = {
    **env_file(REPO / ".env.example"),
    "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": "0123abcd" * 8,
    "TILED_API_KEY": "4567cdef" * 8,
    "ADSCAN_POSTGRES_PASSWORD": "89abcdef" * 4,
}


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict:
    return interpolate(raw_compose, USER_ENV)


def service_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("adscan_deploy_entrypoint", ENTRYPOINT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def effective_iconfig(compose) -> dict:
    """The iconfig the re-manager container ends up with (entrypoint overrides applied)."""
    env = service_env(compose["services"]["re-manager"])
    assert env["ADSCAN_ICONFIG"] == str(CONTAINER_REPO / "deploy" / "iconfig.compose.yml")
    env["ADSCAN_ICONFIG"] = str(COMPOSE_ICONFIG)  # the same file, in this checkout
    return load_entrypoint().effective_raw(env)


def mounts(svc: dict) -> dict[str, str]:
    """Container path -> volume name (named volumes only)."""
    out = {}
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            out[vol["target"]] = vol.get("source")
            continue
        source, target = vol.split(":")[:2]
        out[target] = source
    return out


def volume_of(svc: dict, path: str) -> tuple[str, PurePosixPath]:
    """(volume, path relative to the mount) for a path inside ``svc``; fails if not on one."""
    p = PurePosixPath(path)
    best = None
    for target, source in mounts(svc).items():
        t = PurePosixPath(target)
        if (p == t or t in p.parents) and (best is None or len(t.parts) > len(best[1].parts)):
            best = (source, t)
    assert best is not None, f"{path} is on no volume of this service: {mounts(svc)}"
    return best[0], p.relative_to(best[1])


def runtime_env_names() -> set[str]:
    """Every ADSCAN_*, QSERVER_*, EPICS_* name quoted in the code that runs in the container."""
    names: set[str] = set()
    pattern = re.compile(r"[\"']((?:ADSCAN|QSERVER|EPICS)_[A-Z0-9_]+)[\"']")
    for top in RUNTIME_SOURCES:
        for path in (REPO / top).rglob("*.py"):
            names.update(pattern.findall(path.read_text()))
    return names


# ------------------------------------------------------------------------------ compose file


def test_compose_parses_with_expected_services(raw_compose, compose):
    assert set(compose["services"]) == {
        "mongo",
        "redis",
        "ioc-gp",
        "ioc-ad",
        "re-manager",
        "httpserver",
        "postgres",
        "tiled",
        "tiled-mongo",
    }
    assert compose["name"] == "adscan"


def test_compose_requires_api_key_from_environment(raw_compose):
    env = dict(USER_ENV)
    env.pop("QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY")
    with pytest.raises(KeyError, match="QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"):
        interpolate(raw_compose, env)
    with pytest.raises(KeyError):  # the .env.example as shipped (empty key) is refused too
        interpolate(raw_compose, env_file(REPO / ".env.example"))
    http_env = raw_compose["services"]["httpserver"]["environment"]
    assert http_env["QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"].startswith(
        "${QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY:?"
    )
    assert "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY" not in (
        raw_compose["services"]["re-manager"].get("environment") or {}
    )


def test_every_image_pinned_by_tag(compose):
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image, f"{name}: no image (a built service needs image: NAME:TAG too)"
        ref = image.split("@", 1)[0]
        assert ":" in ref.rsplit("/", 1)[-1], f"{name}: untagged image {image}"
        tag = ref.rsplit(":", 1)[1]
        assert tag != "latest" and not tag.endswith("-dev"), f"{name}: floating tag {image}"
        assert re.search(r"\d", tag), f"{name}: tag without a version {image}"
        if "build" in svc and name != "tiled-mongo":  # its own image (databroker 2)
            assert image == f"adscan:{version.group(1)}", (name, image)
    assert compose["services"]["httpserver"]["image"] == compose["services"]["re-manager"]["image"]


def test_published_ports_loopback_only(raw_compose):
    secrets = {
        "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": "x",
        "TILED_API_KEY": "y",
        "ADSCAN_POSTGRES_PASSWORD": "z",
    }
    for env in ({}, USER_ENV, secrets):
        env = {**secrets, **env}
        compose = interpolate(raw_compose, env)
        published = 0
        for name, svc in compose["services"].items():
            assert svc.get("network_mode", "") != "host", f"{name}: host networking"
            for port in svc.get("ports") or []:
                published += 1
                if isinstance(port, dict):
                    host_ip = port.get("host_ip", "")
                else:
                    parts = str(port).split(":")
                    assert len(parts) == 3, f"{name}: {port!r} does not name a host address"
                    host_ip = parts[0]
                assert host_ip == "127.0.0.1", f"{name}: port {port!r} not on 127.0.0.1"
            for key in ("expose",):
                assert not svc.get(key), f"{name}: {key}"
        assert published == 2  # only the HTTP APIs: queue server and Tiled


def test_backends_are_on_internal_networks(compose):
    nets = compose["networks"]
    assert nets["backend"]["internal"] is True
    assert nets["epics"]["internal"] is True
    for name in ("mongo", "redis", "postgres", "tiled-mongo"):
        assert compose["services"][name]["networks"] == ["backend"], name
        assert not compose["services"][name].get("ports"), name
    for name in ("ioc-gp", "ioc-ad"):
        assert list(compose["services"][name]["networks"]) == ["epics"], name
    http = compose["services"]["httpserver"]
    assert http["network_mode"] == "service:re-manager"
    assert "networks" not in http and "ports" not in http


def test_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name, svc in services.items():
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{name}: no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, (name, dep, cond)
    assert set(services["re-manager"]["depends_on"]) == {
        "mongo",
        "redis",
        "tiled",
        "ioc-gp",
        "ioc-ad",
    }
    assert set(services["tiled"]["depends_on"]) == {"postgres"}
    assert set(services["httpserver"]["depends_on"]) == {"re-manager"}
    assert "mongosh" in services["mongo"]["healthcheck"]["test"]
    assert "ping" in " ".join(services["mongo"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["re-manager"]["healthcheck"]["test"][-1] == "healthcheck"


def test_redis_and_mongo_persist_to_named_volumes(compose):
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert mounts(redis) == {"/data": "redis-data"}
    assert mounts(compose["services"]["mongo"]) == {"/data/db": "mongo-data"}
    for vol in ("redis-data", "mongo-data", "adscan-data", "images"):
        assert vol in compose["volumes"], vol


def test_ioc_services_serve_the_iconfig_prefixes(compose, effective_iconfig):
    ioc = effective_iconfig["ioc"]
    assert ioc["simulate"] is False  # compose runs the IOCs; adscan must not start one
    gp = compose["services"]["ioc-gp"]
    ad = compose["services"]["ioc-ad"]
    assert service_env(gp)["PREFIX"] == ioc["motors_prefix"] == "gp:"
    assert service_env(ad)["PREFIX"] == ioc["ad_prefix"] == "kad:"
    assert "/root/bin/gp.sh start" in " ".join(gp["command"])
    assert "/root/bin/adsim.sh start" in " ".join(ad["command"])
    assert gp["image"] == ad["image"]


# ------------------------------------------------------------------------------ re-manager


def test_re_manager_environment_covers_every_variable_adscan_reads(compose):
    env = service_env(compose["services"]["re-manager"])
    names = runtime_env_names()
    entry = load_entrypoint()
    set_by_adscan = set(__import__("adscan.epics_env", fromlist=["x"]).LOOPBACK_ENV) | {
        "EPICS_CA_SERVER_PORT",
        "EPICS_CAS_SERVER_PORT",  # from iconfig epics.ca_server_port
        # the simulated AD IOC's pvAccess ports, derived from the same port (epics_env)
        "EPICS_PVA_BROADCAST_PORT",
        "EPICS_PVAS_BROADCAST_PORT",
        "EPICS_PVAS_SERVER_PORT",
        # the CA repeater and beacon port (CA port + 1: 5065 for 5064), same source
        "EPICS_CA_REPEATER_PORT",
        "EPICS_CAS_BEACON_PORT",
        "ADSCAN_ICONFIG_SOURCE",  # set by the entrypoint itself
        "ADSCAN_PROCESS_FAMILY",  # set by adscan for its children
    }
    removed_by_adscan = {
        "QSERVER_CONFIG",
        "QSERVER_ZMQ_CONTROL_ADDRESS_FOR_SERVER",
        "QSERVER_ZMQ_INFO_ADDRESS_FOR_SERVER",
    }
    optional = {
        "ADSCAN_WAIT_REDIS",
        "ADSCAN_WAIT_IOC",  # entrypoint time-outs, defaults fine
        # ZMQ CURVE encryption, off by default; ZMQ never leaves the container here
        # (httpserver shares its network namespace), so compose does not enable it.
        "QSERVER_ZMQ_PRIVATE_KEY",
        "QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER",
        "QSERVER_ZMQ_PUBLIC_KEY",
    }
    required = (names - set_by_adscan - removed_by_adscan - optional) | {
        # read by the CA clients and the qserver CLI in the container
        "EPICS_CA_ADDR_LIST",
        "EPICS_CA_AUTO_ADDR_LIST",
        "QSERVER_ZMQ_CONTROL_ADDRESS",
        "QSERVER_ZMQ_INFO_ADDRESS",
    }
    assert {"ADSCAN_ICONFIG", "ADSCAN_DATA_DIR", "ADSCAN_EPICS_CA_ADDR_LIST"} <= required
    assert set(entry.OVERRIDES) <= required
    missing = sorted(n for n in required if not env.get(n))
    assert not missing, f"re-manager environment lacks {missing}"
    unknown = sorted(n for n in env if n.startswith("ADSCAN_") and n not in names)
    assert not unknown, f"re-manager sets variables nothing reads: {unknown}"
    assert env["EPICS_CA_AUTO_ADDR_LIST"] == "NO"
    assert env["ADSCAN_ICONFIG"] == str(CONTAINER_REPO / "deploy" / "iconfig.compose.yml")


def test_ca_address_list_names_the_ioc_containers(compose):
    services = compose["services"]
    env = service_env(services["re-manager"])
    addrs = env["ADSCAN_EPICS_CA_ADDR_LIST"].split()
    assert env["EPICS_CA_ADDR_LIST"].split() == addrs
    subnet = ipaddress.ip_network(compose["networks"]["epics"]["ipam"]["config"][0]["subnet"])
    ioc_ips = [services[n]["networks"]["epics"]["ipv4_address"] for n in ("ioc-gp", "ioc-ad")]
    assert sorted(addrs) == sorted(ioc_ips)
    assert all(ipaddress.ip_address(ip) in subnet for ip in ioc_ips)
    assert "epics" in services["re-manager"]["networks"]
    from adscan import epics_env

    applied = epics_env.apply_loopback({"ADSCAN_EPICS_CA_ADDR_LIST": " ".join(addrs)}, ca_port=5064)
    assert applied["EPICS_CA_ADDR_LIST"] == " ".join(addrs)
    assert applied["EPICS_CA_AUTO_ADDR_LIST"] == "NO"


def test_backend_addresses_resolve_to_compose_services(compose, effective_iconfig):
    services = compose["services"]
    uri = effective_iconfig["catalog"]["mongo_uri"]
    m = re.match(r"mongodb://([^/:]+):(\d+)/(\w+)", uri)
    assert m, uri
    assert m.group(1) == "mongo" and "backend" in services["re-manager"]["networks"]
    assert m.group(2) == "27017" and "27017" in services["mongo"]["command"]
    host, _, port = effective_iconfig["queueserver"]["redis_addr"].partition(":")
    assert host == "redis" and port == "6379"


def test_image_paths_line_up_between_ioc_and_bluesky(compose, effective_iconfig):
    services = compose["services"]
    det = effective_iconfig["detector"]
    w_vol, w_rel = volume_of(services["ioc-ad"], det["write_path"])
    r_vol, r_rel = volume_of(services["re-manager"], det["read_path"])
    assert w_vol == r_vol == "images"
    assert w_rel == r_rel
    assert det["write_path"] != det["read_path"]  # the how-to's two views of one directory
    assert det["write_path"].endswith("/") and det["read_path"].endswith("/")
    ro = [v for v in services["re-manager"]["volumes"] if v.startswith("images:")]
    assert ro and ro[0].endswith(":ro")  # bluesky only reads the detector's files
    env = service_env(services["re-manager"])
    data_vol, rel = volume_of(services["re-manager"], env["ADSCAN_DATA_DIR"])
    assert data_vol == "adscan-data" and str(rel) == "."
    raw = yaml.safe_load(COMPOSE_ICONFIG.read_text())
    assert raw["instrument"]["data_dir"] == env["ADSCAN_DATA_DIR"]
    assert raw["detector"]["write_path"] == env["ADSCAN_WRITE_PATH"]
    assert raw["detector"]["read_path"] == env["ADSCAN_READ_PATH"]


def test_compose_iconfig_generates_a_valid_qserver_config(effective_iconfig, tmp_path, monkeypatch):
    """The compose iconfig loads and passes adscan's own RE Manager config checks."""
    from adscan import services
    from adscan.core.config import load_iconfig

    path = tmp_path / "iconfig.yml"
    path.write_text(yaml.safe_dump(effective_iconfig))
    monkeypatch.setenv("ADSCAN_DATA_DIR", str(tmp_path / "data"))
    cfg = load_iconfig(path)
    conf = services.effective_qserver_config(cfg)
    assert conf["network"]["redis_addr"] == "redis:6379"
    assert conf["network"]["zmq_control_addr"] == "tcp://127.0.0.1:60615"
    assert conf["startup"]["existing_plans_and_devices_path"].startswith(str(tmp_path / "data"))
    assert services.parse_redis_addr(conf["network"]["redis_addr"]) == ("redis", 6379, 0)


def test_entrypoint_overrides_and_effective_file(tmp_path, monkeypatch):
    entry = load_entrypoint()
    monkeypatch.setenv("ADSCAN_ICONFIG", str(COMPOSE_ICONFIG))
    monkeypatch.delenv("ADSCAN_ICONFIG_SOURCE", raising=False)
    monkeypatch.setenv("ADSCAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ADSCAN_MONGO_URI", "none")
    monkeypatch.setenv("ADSCAN_AD_PREFIX", "13SIM1:")
    path = entry.write_effective()
    assert path == tmp_path / "run" / "iconfig.effective.yml"
    assert os.environ["ADSCAN_ICONFIG"] == str(path)
    assert (path.parent / "devices.yml").exists()
    from adscan.core.config import load_devices, load_iconfig

    cfg = load_iconfig(path)
    assert cfg["catalog"]["mongo_uri"] is None and cfg["ioc"]["ad_prefix"] == "13SIM1:"
    assert cfg["instrument"]["data_dir"] == str(tmp_path)
    assert load_devices()["detectors"]
    # before the entrypoint wrote its file, the container is not healthy
    monkeypatch.setenv("ADSCAN_ICONFIG", str(COMPOSE_ICONFIG))
    monkeypatch.setenv("ADSCAN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert entry.healthcheck() == 1


# ------------------------------------------------------------------------------ Dockerfile


def dockerfile_lines() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def test_dockerfile_base_image_pinned_and_non_root():
    lines = dockerfile_lines()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(lines), re.M))
    froms = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert froms
    for ref in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
    assert any("useradd" in ln for ln in lines)
    entry = [ln for ln in lines if ln.startswith("ENTRYPOINT")]
    assert entry and "deploy/entrypoint.py" in entry[-1]
    install = " ".join(ln for ln in lines if ln.startswith("RUN") and "pip install" in ln)
    assert "-e /opt/adscan" in install  # startup/ and profile_collection/ beside the package
    assert any(ln.startswith("COPY . /opt/adscan") for ln in lines)
    assert any(ln.startswith("HEALTHCHECK") for ln in lines)
    assert "ADSCAN_ICONFIG=/opt/adscan/deploy/iconfig.compose.yml" in " ".join(lines)


def test_dockerfile_embeds_no_secret():
    lines = dockerfile_lines()
    for ln in lines:
        if ln.startswith(("ENV ", "ARG ", "LABEL ")):
            assert not re.search(r"(KEY|SECRET|PASSWORD|TOKEN)\w*\s*=", ln, re.I), ln
        assert ".env" not in ln.split()[1:] or ln.startswith("ENV "), ln
    ignore = (REPO / ".dockerignore").read_text().split()
    for pattern in (".env", ".git", ".venv", "*.pem", "*.key"):
        assert pattern in ignore, pattern
    assert "!.env.example" in ignore


# Secrets: tests/test_security.py scans every tracked file (one scanner for the repo).


def test_dot_env_not_tracked_and_ignored():
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".env", "**/.env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert tracked.strip() == "", f".env is tracked: {tracked}"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env must be listed in .gitignore"
    assert (REPO / ".env.example").exists()


def test_docs_describe_the_deployment():
    doc = (REPO / "docs" / "deployment.md").read_text()
    for word in (
        "docker compose up",
        "ADSCAN_EPICS_CA_ADDR_LIST",
        "write_path",
        "read_path",
        "mongodump",
        "appendonly",
        "/api/queue/item/add",
        "set_authorization_key",
        "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY",
        "catalog.mongo_uri",
        "prjemian/synapps:2.0.1",
    ):
        assert word in doc, word


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
