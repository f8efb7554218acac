"""The 0MQ document proxy that ``adscan up`` starts: ``bluesky-0MQ-proxy`` on 127.0.0.1.

bluesky-queueserver 0.0.25 has no built-in data proxy (``--zmq-data-proxy-addr`` was
removed), so the profile subscribes a Publisher to ``live.proxy_in`` and this module runs
bluesky's own proxy between ``live.proxy_in`` and ``live.proxy_out``.  It is always started
with ``--in-address``/``--out-address``: the positional form ``bluesky-0MQ-proxy IN OUT``
binds 0.0.0.0, which the network rule forbids.
"""

from __future__ import annotations

from pathlib import Path

from adscan.services import processes as proc_
from adscan.services.processes import ServiceError, ServiceInfo

NAME = "zmq-proxy"
START_TIMEOUT = 15.0


def _live(cfg: dict) -> dict:
    return cfg.get("live") or {}


def enabled(cfg: dict) -> bool:
    """``live.proxy`` in iconfig.yml (default on when the section names the ports)."""
    live = _live(cfg)
    return bool(live.get("proxy", True)) and bool(live.get("proxy_in"))


def addresses(cfg: dict) -> tuple[str, str]:
    """(in, out) as ``tcp://127.0.0.1:P``; refuses anything but loopback."""
    live = _live(cfg)
    out = []
    for key in ("proxy_in", "proxy_out"):
        value = str(live.get(key) or "")
        host, port = proc_.zmq_host_port(value)
        proc_.check_loopback(f"live.{key}", host)
        out.append(f"tcp://127.0.0.1:{port}")
    return out[0], out[1]


def proxy_log(cfg: dict) -> Path:
    return Path(_live(cfg).get("log") or proc_.logs_dir(cfg) / "zmq-proxy.log")


def _pid_file(cfg: dict) -> Path:
    return proc_.run_dir(cfg) / f"{NAME}.pid"


def proxy_pid(cfg: dict) -> int | None:
    """Our proxy's pid (its command line names the configured in-address), else None."""
    address_in, _ = addresses(cfg)
    return proc_.live_pid(_pid_file(cfg), ("bluesky-0MQ-proxy", f"--in-address {address_in}"))


def _ports(cfg: dict) -> list[tuple[str, int]]:
    return [
        (key, proc_.zmq_host_port(addr)[1])
        for key, addr in zip(("live.proxy_in", "live.proxy_out"), addresses(cfg), strict=True)
    ]


def _listening(cfg: dict) -> bool:
    return all(proc_.port_open("127.0.0.1", port) for _key, port in _ports(cfg))


def _info(
    cfg: dict, state: str, pid: int | None = None, detail: str = "", started: bool = False
) -> ServiceInfo:
    address_in, address_out = addresses(cfg) if enabled(cfg) else ("", "")
    return ServiceInfo(
        NAME,
        state,
        f"in {address_in} out {address_out}" if address_in else "",
        pid,
        str(proxy_log(cfg)) if pid else "",
        detail,
        started,
    )


def ensure_proxy(cfg: dict, timeout: float = START_TIMEOUT) -> ServiceInfo:
    """Start the proxy unless ours already runs; a port held by another process is an error."""
    if not enabled(cfg):
        return ServiceInfo(NAME, "disabled", detail="live.proxy: false")
    address_in, address_out = addresses(cfg)
    pid = proxy_pid(cfg)
    if pid:
        if proc_.wait_until(lambda: _listening(cfg), timeout):
            return _info(cfg, "up", pid)
        raise ServiceError(
            f"0MQ proxy (pid {pid}) does not listen on {address_in} / "
            f"{address_out}; see {proxy_log(cfg)}"
        )
    for key, port in _ports(cfg):
        if proc_.port_open("127.0.0.1", port):
            raise ServiceError(
                f"0MQ proxy: port {port} ({key}) is already in use by another "
                "process; stop it or choose another port in iconfig.yml"
            )
    argv = [
        proc_.venv_bin("bluesky-0MQ-proxy"),
        "--in-address",
        address_in,
        "--out-address",
        address_out,
    ]
    child = proc_.spawn(argv, proxy_log(cfg), _pid_file(cfg))

    def ready() -> bool:
        if child.poll() is not None:
            raise ServiceError(
                f"0MQ proxy exited with code {child.returncode}; see "
                f"{proxy_log(cfg)}:\n{proc_.tail(proxy_log(cfg))}"
            )
        return _listening(cfg)

    if not proc_.wait_until(ready, timeout, period=0.1):
        proc_.stop_pid(child.pid, timeout=3.0)
        _pid_file(cfg).unlink(missing_ok=True)
        raise ServiceError(f"0MQ proxy did not listen within {timeout:.0f} s; see {proxy_log(cfg)}")
    return _info(cfg, "up", child.pid, started=True)


def proxy_status(cfg: dict) -> ServiceInfo:
    """One ``adscan status`` line (never starts anything)."""
    if not enabled(cfg):
        return ServiceInfo(NAME, "disabled", detail="live.proxy: false")
    pid = proxy_pid(cfg)
    listening = _listening(cfg)
    if pid:
        return _info(
            cfg,
            "up" if listening else "down",
            pid,
            "" if listening else "process alive but not listening",
        )
    return _info(
        cfg,
        "external" if listening else "down",
        None,
        "ports answer, not started by adscan" if listening else "",
    )


def stop_proxy(cfg: dict, timeout: float = proc_.STOP_TIMEOUT) -> ServiceInfo:
    """Stop the proxy if adscan started it (pid file)."""
    if not enabled(cfg):
        return ServiceInfo(NAME, "disabled", detail="live.proxy: false")
    pid = proxy_pid(cfg)
    how = proc_.stop_pid(pid, timeout) if pid else "not started by adscan"
    _pid_file(cfg).unlink(missing_ok=True)
    return _info(cfg, "down", pid, how)
