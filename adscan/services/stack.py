"""The whole service as one: ``up`` (Redis, IOC, RE Manager, worker), ``status``, ``down``.

``status`` never starts anything; ``down`` stops only what a pid file says adscan started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from adscan.core.catalog_settings import tiled_enabled
from adscan.services import procfamily
from adscan.services.ioc import (
    ensure_ioc,
    ioc_address,
    ioc_answers,
    ioc_log,
    ioc_pid,
    repeater_status,
)
from adscan.services.processes import (
    STOP_TIMEOUT,
    ServiceInfo,
    pid_path,
    queueserver_cfg,
    stop_pid,
)
from adscan.services.proxy import ensure_proxy, proxy_status, stop_proxy
from adscan.services.re_manager import (
    ENVIRONMENT_OPEN_TIMEOUT,
    close_environment,
    ensure_re_manager,
    open_environment,
    re_manager_log,
    re_manager_pid,
    re_manager_status,
    request_manager_stop,
)
from adscan.services.redis import ensure_redis, redis_log, redis_pid, redis_ping


def _tiled():
    """adscan.tiled.server, imported when used (it imports this package's helpers)."""
    from adscan.tiled import server

    return server


def up(
    cfg: dict,
    *,
    ioc: bool = True,
    environment: bool = True,
    env_timeout: float = ENVIRONMENT_OPEN_TIMEOUT,
) -> list[ServiceInfo]:
    """Redis, the IOC, the 0MQ proxy, then the RE Manager and its worker environment."""
    infos = [ensure_redis(cfg)]
    if tiled_enabled(cfg):
        infos += _tiled().ensure(cfg)
    if ioc:
        infos.append(ensure_ioc(cfg))
    infos.append(ensure_proxy(cfg))  # before the worker: its Publisher connects to it
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
    if tiled_enabled(cfg):
        rows.append(("catalog", f"tiled {_tiled().settings(cfg).url}"))
    if cat.get("mongo_uri"):
        rows.append(("catalog", cat["mongo_uri"]))
    elif cat.get("directory"):
        rows.append(("catalog", cat["directory"]))
    spec = cfg.get("spec", {})
    if spec.get("directory"):
        rows.append(("spec_file", str(Path(spec["directory"]) / spec.get("file", ""))))
    return [
        ServiceInfo(
            name,
            "path",
            str(where),
            detail="exists" if Path(str(where)).exists() else "not yet created",
        )
        for name, where in rows
    ]


def status(cfg: dict, *, check_ioc: bool = True) -> list[ServiceInfo]:
    """The state of every service (never starts anything) and where the data goes."""
    qs = queueserver_cfg(cfg)
    out: list[ServiceInfo] = []
    pid = redis_pid(cfg)
    ok = redis_ping(qs["redis_addr"])
    out.append(
        ServiceInfo(
            "redis",
            ("up" if pid else "external") if ok else "down",
            qs["redis_addr"],
            pid,
            str(redis_log(cfg)) if pid else "",
            "" if ok or not pid else "process alive but not answering",
        )
    )
    if check_ioc:
        pid = ioc_pid(cfg)
        ok = ioc_answers(cfg, timeout=1.0)
        out.append(
            ServiceInfo(
                "ioc",
                ("up" if pid else "external") if ok else "down",
                ioc_address(cfg),
                pid,
                str(ioc_log(cfg)) if pid else "",
                ("simulate: true" if cfg["ioc"]["simulate"] else "real IOC")
                + ("" if ok or not pid else "; process alive but PVs do not answer"),
            )
        )
    rep = repeater_status(cfg)
    if rep is not None:
        out.append(rep)
    pid = re_manager_pid(cfg)
    orphans = [] if pid else procfamily.members(procfamily.marker(cfg, "re-manager"))
    st = re_manager_status(cfg)
    if orphans:  # started by adscan, watchdog gone: `adscan up` or `down` stops them
        state, detail = "orphaned", f"watchdog gone, left running: {procfamily.describe(orphans)}"
    elif st is None:
        state, detail = "down", ("process alive but not answering" if pid else "")
    else:
        state = "up" if pid else "external"
        detail = (
            f"manager_state={st.get('manager_state')} "
            f"environment={'open' if st.get('worker_environment_exists') else 'closed'} "
            f"queue={st.get('items_in_queue')} history={st.get('items_in_history')}"
        )
    out.append(
        ServiceInfo(
            "re-manager",
            state,
            qs["zmq_control_addr"],
            pid or (orphans[0].pid if orphans else None),
            str(re_manager_log(cfg)),
            detail,
        )
    )
    out.append(
        ServiceInfo(
            "re-manager-info",
            state,
            qs["zmq_info_addr"],
            pid,
            detail="console output (zmq_publish_console)",
        )
    )
    out.append(proxy_status(cfg))
    if tiled_enabled(cfg):
        out += _tiled().status(cfg)
    return out + data_locations(cfg)


def down(cfg: dict, timeout: float = STOP_TIMEOUT) -> list[ServiceInfo]:
    """Stop what adscan started (by pid file): RE Manager, IOC, 0MQ proxy, Redis, in order."""
    out: list[ServiceInfo] = []
    pid_file = pid_path(cfg, "re-manager")
    pid = re_manager_pid(cfg)
    if pid:
        closed = False
        with contextlib.suppress(Exception):
            closed = close_environment(cfg)
        how = "stopped (manager_stop)" if request_manager_stop(cfg, pid) else ""
        how = how or stop_pid(pid, timeout)
        out.append(
            ServiceInfo(
                "re-manager",
                "down",
                queueserver_cfg(cfg)["zmq_control_addr"],
                pid,
                str(re_manager_log(cfg)),
                ("environment closed; " if closed else "") + how,
            )
        )
    else:
        out.append(
            ServiceInfo(
                "re-manager",
                "down",
                queueserver_cfg(cfg)["zmq_control_addr"],
                detail="not started by adscan",
            )
        )
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
    # the CA repeater ensure_re_manager started for the worker (none with the simulated IOC)
    survivors = procfamily.stop(procfamily.marker(cfg, "repeater"), timeout)
    if survivors:
        out[-1].state = "running"
        out[-1].detail += f"; CA repeater STILL RUNNING: {procfamily.describe(survivors)}"
    pid_file.unlink(missing_ok=True)

    if tiled_enabled(cfg) or _tiled().server_pid(_tiled().settings(cfg)):
        out += _tiled().stop(cfg, timeout)

    pid_file = pid_path(cfg, "ioc")
    pid = ioc_pid(cfg)
    ioc = cfg.get("ioc", {})
    out.append(
        ServiceInfo(
            "ioc",
            "down",
            f"{ioc.get('motors_prefix', '')} {ioc.get('ad_prefix', '')}".strip(),
            pid,
            str(ioc_log(cfg)),
            stop_pid(pid, timeout) if pid else "not started by adscan",
        )
    )
    pid_file.unlink(missing_ok=True)

    out.append(stop_proxy(cfg, timeout))

    pid_file = pid_path(cfg, "redis")
    pid = redis_pid(cfg)
    out.append(
        ServiceInfo(
            "redis",
            "down",
            queueserver_cfg(cfg)["redis_addr"],
            pid,
            str(redis_log(cfg)),
            stop_pid(pid, timeout, group=False) if pid else "not started by adscan (left running)",
        )
    )
    pid_file.unlink(missing_ok=True)
    return out


def format_table(infos: Iterable[ServiceInfo]) -> str:
    rows = [(i.name, i.state, i.address, str(i.pid or ""), i.log, i.detail) for i in infos]
    head = ("NAME", "STATE", "ADDRESS", "PID", "LOG", "DETAIL")
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(5)]
    lines = []
    for r in [head, *rows]:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True))
            + ("  " + r[5] if r[5] else "")
        )
    return "\n".join(line.rstrip() for line in lines)
