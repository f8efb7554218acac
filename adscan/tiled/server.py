"""adscan's Tiled server: a real Tiled server process on 127.0.0.1 (:mod:`adscan.tiled.serve`).

Embedded default (``tiled.database: sqlite``): the catalog in SQLite and the runs' scalar
tables in DuckDB, both under ``tiled.directory`` (``{data_dir}/tiled``).  Production option
(``tiled.database: postgresql``): a private PostgreSQL cluster (:mod:`adscan.tiled.postgres`)
holds both, in separate databases.  The images stay in the detector's HDF5 files: Tiled only
registers them (``-r`` the detector's ``read_path``) and decodes LZ4 server-side
(:mod:`adscan.tiled.slab`).

Access needs the single-user API key, generated at the first start into ``api_key`` (mode
0600, inside the data directory, never committed).  It is handed to Tiled by this module's
launcher (``python -m adscan.tiled.server``), so it shows neither in ``ps`` nor in the log.

``ensure(cfg)`` is idempotent like the other services: a server that answers ``/healthz`` is
reused, a stale pid file is removed, a new one is waited for (bounded) and gets the
``CatalogOfBlueskyRuns`` container adscan writes into.  ``catalog.tiled_uri`` names an
external server instead (adscan then starts nothing; the key comes from
``catalog.tiled_api_key_file`` or ``$TILED_API_KEY``).
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from adscan.services.processes import (
    ServiceError,
    ServiceInfo,
    check_loopback,
    live_pid,
    logs_dir,
    port_open,
    run_dir,
    spawn,
    stop_pid,
    tail,
    wait_until,
)
from adscan.tiled import postgres

DEFAULT_PORT = 60680
DEFAULT_POSTGRES_PORT = 60632
START_TIMEOUT = 90.0  # /healthz answered after ~14 s on a loaded 2-core machine
CONTAINER_SPEC = ("CatalogOfBlueskyRuns", "3.0")


class TiledUnavailable(ServiceError):
    """The Tiled data service does not answer (the message names it and its address)."""


class TiledAuthError(ServiceError):
    """The Tiled server refused the API key."""


@dataclass
class TiledSettings:
    """The ``tiled:`` and ``catalog.tiled_*`` settings, defaults filled in."""

    directory: Path
    port: int
    database: str  # "sqlite" | "postgresql"
    container: str
    log: Path
    api_key_file: Path
    readable: list[Path] = field(default_factory=list)
    external_uri: str | None = None  # catalog.tiled_uri: someone else's server
    postgres: postgres.PostgresSettings | None = None
    start_timeout: float = START_TIMEOUT
    pid_file: Path | None = None

    @property
    def url(self) -> str:
        return (self.external_uri or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def embedded(self) -> bool:
        return not self.external_uri


def settings(cfg: dict) -> TiledSettings:
    """Settings from an iconfig dictionary (every key optional)."""
    data_dir = Path(cfg["instrument"]["data_dir"])
    t = dict(cfg.get("tiled") or {})
    c = dict(cfg.get("catalog") or {})
    directory = Path(t.get("directory") or data_dir / "tiled")
    database = str(t.get("database") or "sqlite").lower()
    if database not in ("sqlite", "postgresql"):
        raise ServiceError(f"tiled.database must be sqlite or postgresql, not {database!r}")
    external = c.get("tiled_uri") or None
    key_file = c.get("tiled_api_key_file") if external else t.get("api_key_file")
    readable = [Path(p) for p in t.get("readable") or []]
    read_path = (cfg.get("detector") or {}).get("read_path")
    if read_path and Path(read_path) not in readable:
        readable.insert(0, Path(read_path))
    pg = None
    if database == "postgresql":
        pg = postgres.PostgresSettings(
            Path(t.get("postgres_dir") or directory / "postgres"),
            int(t.get("postgres_port") or DEFAULT_POSTGRES_PORT),
        )
    return TiledSettings(
        directory=directory,
        port=int(t.get("port") or DEFAULT_PORT),
        database=database,
        container=str(t.get("container") or c.get("name") or "adscan"),
        log=Path(t.get("log") or logs_dir(cfg) / "tiled.log"),
        api_key_file=Path(key_file) if key_file else directory / "api_key",
        readable=readable,
        external_uri=external,
        postgres=pg,
        start_timeout=float(t.get("start_timeout") or START_TIMEOUT),
        pid_file=run_dir(cfg) / "tiled.pid",
    )


# --------------------------------------------------------------------------- the API key


def api_key(s: TiledSettings, *, create: bool = False) -> str:
    """The API key: read from its file (``create``: generate it, mode 0600, if missing).

    An external server's key may also come from ``$TILED_API_KEY`` (Tiled's own variable).
    """
    path = s.api_key_file
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it just now
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
    try:
        mode = path.stat().st_mode
        key = path.read_text().strip()
    except OSError as exc:
        if not s.embedded and os.environ.get("TILED_API_KEY"):
            return os.environ["TILED_API_KEY"]
        raise ServiceError(
            f"Tiled API key file {path} unreadable ({exc}); "
            + (
                "`adscan up` creates it"
                if s.embedded
                else "set catalog.tiled_api_key_file or TILED_API_KEY"
            )
        ) from exc
    if mode & 0o077:
        raise ServiceError(
            f"Tiled API key file {path} is readable by others (mode {mode & 0o777:o}): chmod 600 it"
        )
    if not key.isalnum():
        raise ServiceError(f"Tiled API key in {path} must be alphanumeric (Tiled's rule)")
    return key


# --------------------------------------------------------------------------- health


def healthy(url: str, timeout: float = 1.0) -> bool:
    """True if ``<url>/healthz`` answers 200 (no key needed)."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def require(s: TiledSettings, timeout: float = 2.0) -> None:
    """Raise :class:`TiledUnavailable`, naming the service, unless it answers."""
    if not healthy(s.url, timeout):
        hint = (
            f"start it with `adscan up` (log {s.log})"
            if s.embedded
            else "check the server named by catalog.tiled_uri"
        )
        raise TiledUnavailable(
            f"the Tiled data service does not answer at {s.url} (/healthz): {hint}"
        )


# --------------------------------------------------------------------------- process


def _marker(s: TiledSettings) -> tuple[str, ...]:
    return ("adscan.tiled.server", str(s.directory))


def server_pid(s: TiledSettings) -> int | None:
    return live_pid(s.pid_file, _marker(s)) if s.pid_file else None


def _tiled_args(s: TiledSettings) -> list[str]:
    data = s.directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    if s.database == "postgresql":
        assert s.postgres is not None
        catalog = s.postgres.uri("catalog", driver="postgresql+asyncpg")
        tabular = s.postgres.uri("tabular")
    else:
        catalog = str(s.directory / "catalog.db")
        tabular = f"duckdb:///{s.directory / 'storage.duckdb'}"
    args = [catalog, "--init", "-w", str(data), "-w", tabular]
    for path in s.readable:
        args += ["-r", str(path)]
    return [*args, "--host", "127.0.0.1", "--port", str(s.port)]


def _server_env(s: TiledSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILED_")}
    env["HDF5_USE_FILE_LOCKING"] = "FALSE"  # read HDF5 files the IOC still writes
    env["PYTHONUNBUFFERED"] = "1"
    if s.postgres is not None:
        env.update(s.postgres.env())
    return env


def ensure_container(client, name: str):
    """The ``CatalogOfBlueskyRuns`` child container (created if missing).

    At the bare root of ``tiled serve catalog`` ``client[-1]`` and scan-id search do not work;
    inside this container they do.
    """
    from tiled.structures.core import Spec

    try:
        return client[name]
    except KeyError:
        return client.create_container(name, specs=[Spec(*CONTAINER_SPEC)])


def connect(s: TiledSettings, *, key: str | None = None, path: tuple[str, ...] = ()):
    """A Tiled client on the server root, or on the node at ``path`` below it.

    The node is fetched in one request (each request costs the server 10-30 ms of catalog
    look-up, deeper nodes more).  On loopback the client is built on the API URL directly:
    ``tiled.client.from_uri``'s first request only looks for an HTTPS redirect.
    A refused key raises :class:`TiledAuthError` naming the server and where the key came from;
    a missing node, ``KeyError``.
    """
    from tiled.client import from_uri
    from tiled.client.constructors import from_context
    from tiled.client.context import Context
    from tiled.client.utils import ClientError

    where = "the key given" if key is not None else f"the key in {s.api_key_file}"
    # On loopback compressing responses only costs CPU on both ends (2 cores here).
    local = urllib.parse.urlsplit(s.url).hostname in ("127.0.0.1", "localhost")
    headers = {"accept-encoding": "identity"} if local else None
    secret = key if key is not None else api_key(s)
    try:
        if local:
            context = Context(f"{s.url}/api/v1", headers=headers, api_key=secret)
            return from_context(context, node_path_parts=list(path))
        node = "/".join(urllib.parse.quote(part, safe="") for part in path)
        return from_uri(f"{s.url}/api/v1/metadata/{node}", api_key=secret, headers=headers)
    except ClientError as exc:
        code = getattr(getattr(exc, "response", None), "status_code", None)
        if code in (401, 403):
            raise TiledAuthError(
                f"the Tiled data service at {s.url} refused {where} "
                f"({code}: {exc.args[0] if exc.args else exc})"
            ) from exc
        if code == 404 and path:
            raise KeyError(f"no node {'/'.join(path)!r} at {s.url}") from exc
        raise


def ensure(cfg: dict, timeout: float | None = None) -> list[ServiceInfo]:
    """Start (idempotent) PostgreSQL if configured, then the Tiled server; ServiceInfo each."""
    s = settings(cfg)
    timeout = s.start_timeout if timeout is None else timeout
    if not s.embedded:
        require(s)
        return [ServiceInfo("tiled", "external", s.url, detail="catalog.tiled_uri")]
    infos = []
    if s.postgres is not None:
        infos.append(postgres.ensure(s.postgres))
    pid = server_pid(s)
    detail = f"{s.database}, {s.directory}"
    if healthy(s.url):
        state = "up" if pid else "external"
        ensure_container(connect(s), s.container)
        return [*infos, ServiceInfo("tiled", state, s.url, pid, str(s.log), detail)]
    if pid:  # ours, not answering yet (still importing?): wait, then give up loudly
        if wait_until(lambda: healthy(s.url), timeout, period=0.25):
            ensure_container(connect(s), s.container)
            return [*infos, ServiceInfo("tiled", "up", s.url, pid, str(s.log), detail)]
        raise ServiceError(
            f"Tiled (pid {pid}) does not answer at {s.url}; see {s.log}:\n{tail(s.log)}"
        )
    check_loopback("tiled", "127.0.0.1")
    if port_open("127.0.0.1", s.port):
        raise ServiceError(
            f"port {s.port} (tiled.port) is in use by something that is not adscan's Tiled server"
        )
    api_key(s, create=True)
    s.log.parent.mkdir(parents=True, exist_ok=True)
    if not s.log.exists():
        os.close(os.open(s.log, os.O_WRONLY | os.O_CREAT, 0o600))
    argv = [
        sys.executable,
        "-m",
        "adscan.tiled.server",
        "--api-key-file",
        str(s.api_key_file),
        "--directory",
        str(s.directory),
        "--",
        *_tiled_args(s),
    ]
    proc = spawn(argv, s.log, s.pid_file, env=_server_env(s))

    def answered() -> bool:
        if proc.poll() is not None:
            raise ServiceError(
                f"Tiled exited with code {proc.returncode}; see {s.log}:\n{tail(s.log)}"
            )
        return healthy(s.url, timeout=0.5)

    if not wait_until(answered, timeout, period=0.25):
        stop_pid(proc.pid, timeout=5.0)
        s.pid_file.unlink(missing_ok=True)
        raise ServiceError(
            f"Tiled did not answer at {s.url} within {timeout:.0f} s; see {s.log}:\n{tail(s.log)}"
        )
    ensure_container(connect(s), s.container)
    return [*infos, ServiceInfo("tiled", "up", s.url, proc.pid, str(s.log), detail, started=True)]


def status(cfg: dict) -> list[ServiceInfo]:
    """The Tiled server (and its PostgreSQL cluster) state; never starts anything."""
    s = settings(cfg)
    out = []
    if s.embedded and s.postgres is not None:
        out.append(postgres.status(s.postgres))
    pid = server_pid(s)
    ok = healthy(s.url)
    state = ("up" if pid or not s.embedded else "external") if ok else "down"
    detail = (
        f"{s.database}, {s.directory}, container {s.container!r}"
        if s.embedded
        else "catalog.tiled_uri"
    )
    if not ok and pid:
        detail += "; process alive but not answering"
    out.append(ServiceInfo("tiled", state, s.url, pid, str(s.log) if s.embedded else "", detail))
    return out


def stop(cfg: dict, timeout: float = 10.0) -> list[ServiceInfo]:
    """Stop the Tiled server adscan started (by pid file), then its PostgreSQL cluster."""
    s = settings(cfg)
    pid = server_pid(s)
    how = stop_pid(pid, timeout) if pid else "not started by adscan"
    if s.pid_file:
        s.pid_file.unlink(missing_ok=True)
    out = [ServiceInfo("tiled", "down", s.url, pid, str(s.log), how)]
    if s.embedded and s.postgres is not None:
        out.append(postgres.stop(s.postgres))
    return out


# --------------------------------------------------------------------------- launcher


def main(argv: list[str] | None = None) -> int:
    """``python -m adscan.tiled.server --api-key-file F --directory D -- <tiled args>``.

    Serves the catalog as ``tiled serve catalog <tiled args> --api-key <key read from F>``
    would, in this process (:mod:`adscan.tiled.serve`, with adscan's HDF5 adapter), so the key
    never appears on a command line.  ``--directory`` only marks the process.
    """
    import argparse

    from adscan.tiled import serve

    parser = argparse.ArgumentParser(prog="python -m adscan.tiled.server")
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--directory", required=True)
    parser.add_argument("tiled_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.tiled_args[1:] if args.tiled_args[:1] == ["--"] else args.tiled_args
    serve.serve(rest, Path(args.api_key_file).read_text().strip())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
