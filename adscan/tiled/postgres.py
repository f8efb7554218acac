"""A private PostgreSQL cluster on 127.0.0.1 for the Tiled server (catalog + tabular data).

Debian's ``postgresql`` binaries (``initdb``, ``pg_ctl``, ``createdb``), found on ``PATH`` or
in ``/usr/lib/postgresql/<version>/bin``.  The cluster lives in one directory, listens on
127.0.0.1 only (no Unix socket), and uses password authentication
(scram-sha-256): the password is generated at ``initdb`` time and kept in a file of mode 0600
beside the cluster, so other local users cannot connect.

``initdb`` refuses to run as root.  A normal user runs the cluster as themselves; under euid 0
(CI) every server command runs as the unprivileged ``postgres`` user (``runuser -u postgres``),
which then owns the cluster directory and must be able to reach it (every parent directory
searchable by others).  Tiled wants its catalog and its tabular data in separate databases:
``catalog`` and ``tabular`` are created.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from adscan.services.processes import ServiceError, ServiceInfo, port_open, tail

DATABASES = ("catalog", "tabular")
START_TIMEOUT = 60.0
UNPRIVILEGED_USER = "postgres"  # Debian's package creates it


@dataclass
class PostgresSettings:
    """Where the cluster lives and how to reach it."""

    directory: Path  # the cluster (PGDATA)
    port: int
    user: str = "tiled"  # the database role Tiled connects as
    password_file: Path | None = None  # default: <directory>.password

    @property
    def pw_file(self) -> Path:
        return self.password_file or self.directory.with_name(self.directory.name + ".password")

    @property
    def log(self) -> Path:
        return self.directory.with_name(self.directory.name + ".log")

    def uri(self, database: str, driver: str = "postgresql") -> str:
        """Connection URI without user and password: they come from :meth:`env`.

        (Tiled's tabular storage turns ``user@`` without a password into the password
        ``None``; libpq, asyncpg and adbc all read ``PGUSER``/``PGPASSWORD``.)
        """
        return f"{driver}://127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """Environment for clients (libpq, asyncpg, adbc): role, password, loopback TCP."""
        return {
            "PGUSER": self.user,
            "PGPASSWORD": password(self),
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
        }


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL server program: ``PATH``, else Debian's newest versioned dir."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    raise ServiceError(
        f"PostgreSQL program {name!r} not found (PATH, /usr/lib/postgresql/*/bin): install "
        "Debian's `postgresql` package (apt-get install postgresql), or use the embedded "
        "SQLite database (tiled.database: sqlite)"
    )


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` as the unprivileged user when we are root (``initdb`` refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", UNPRIVILEGED_USER, "--", *argv]


def _server_uid_gid() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as exc:
        raise ServiceError(
            f"running as root: PostgreSQL must run as an unprivileged user, and user "
            f"{UNPRIVILEGED_USER!r} does not exist (install Debian's postgresql package)"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def _run(
    argv: list[str], what: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env
    )
    if proc.returncode != 0:
        raise ServiceError(
            f"PostgreSQL {what} failed ({' '.join(argv[:6])} ...): "
            f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return proc


def password(s: PostgresSettings) -> str:
    """The role's password (from the 0600 file written at ``initdb``)."""
    try:
        return s.pw_file.read_text().strip()
    except OSError as exc:
        raise ServiceError(f"PostgreSQL password file {s.pw_file} unreadable: {exc}") from exc


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def initialized(s: PostgresSettings) -> bool:
    return (s.directory / "PG_VERSION").exists()


def init_cluster(s: PostgresSettings) -> None:
    """``initdb`` a new cluster (password auth, this role as superuser)."""
    owner = _server_uid_gid()
    s.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if any(s.directory.iterdir()):
        raise ServiceError(f"{s.directory} is not empty and holds no PostgreSQL cluster")
    if not s.pw_file.exists():
        _write_secret(s.pw_file, secrets.token_hex(24))
    # initdb reads the password from a file the server user can read; removed right after.
    fd, tmp = tempfile.mkstemp(prefix="adscan-pg-pw-")
    try:
        os.write(fd, (password(s) + "\n").encode())
        os.close(fd)
        if owner:
            os.chown(s.directory, *owner)
            os.chown(tmp, *owner)
            check = subprocess.run(_as_server_user(["test", "-w", str(s.directory)]))
            if check.returncode != 0:
                raise ServiceError(
                    f"running as root, PostgreSQL runs as user {UNPRIVILEGED_USER!r}, who cannot "
                    f"reach {s.directory} (a parent directory is not searchable by others): "
                    "set tiled.postgres_dir to a directory it can reach"
                )
        _run(
            _as_server_user(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(s.directory),
                    "-U",
                    s.user,
                    "--auth=scram-sha-256",
                    f"--pwfile={tmp}",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            "initdb",
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def running(s: PostgresSettings) -> bool:
    """The cluster's postmaster runs (``pg_ctl status``) and its port accepts connections."""
    if not initialized(s):
        return False
    proc = subprocess.run(
        _as_server_user([pg_bin("pg_ctl"), "status", "-D", str(s.directory)]),
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0 and port_open("127.0.0.1", s.port)


def pid(s: PostgresSettings) -> int | None:
    try:
        return int((s.directory / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def start(s: PostgresSettings, timeout: float = START_TIMEOUT) -> None:
    """``pg_ctl start`` listening on 127.0.0.1:port only."""
    if port_open("127.0.0.1", s.port):
        raise ServiceError(
            f"port {s.port} is in use by something that is not this cluster "
            f"({s.directory}); set tiled.postgres_port"
        )
    owner = _server_uid_gid()
    s.log.parent.mkdir(parents=True, exist_ok=True)
    s.log.touch()
    if owner:
        os.chown(s.log, *owner)
    # TCP on loopback only; no Unix socket at all (clients use PGHOST=127.0.0.1)
    options = f"-c listen_addresses=127.0.0.1 -p {s.port} -c unix_socket_directories=''"
    argv = [
        pg_bin("pg_ctl"),
        "start",
        "-w",
        "-t",
        str(int(timeout)),
        "-D",
        str(s.directory),
        "-l",
        str(s.log),
        "-o",
        options,
    ]
    try:
        _run(_as_server_user(argv), "start", timeout=timeout + 10)
    except ServiceError as exc:
        raise ServiceError(f"{exc}\nlog {s.log}:\n{tail(s.log)}") from exc


def create_databases(s: PostgresSettings) -> None:
    """``createdb`` the catalog and tabular databases if they do not exist yet."""
    env = dict(os.environ, **s.env())
    listing = _run(
        [
            pg_bin("psql"),
            "-U",
            s.user,
            "-d",
            "postgres",
            "-At",
            "-c",
            "select datname from pg_database",
        ],
        "psql",
        env=env,
    ).stdout.split()
    for db in DATABASES:
        if db not in listing:
            _run([pg_bin("createdb"), "-U", s.user, db], f"createdb {db}", env=env)


def ensure(s: PostgresSettings, timeout: float = START_TIMEOUT) -> ServiceInfo:
    """Idempotent: init the cluster if new, start it if stopped, create the databases."""
    t0 = time.monotonic()
    started = False
    if not initialized(s):
        init_cluster(s)
    if not running(s):
        start(s, timeout)
        started = True
    create_databases(s)
    return ServiceInfo(
        "postgres",
        "up",
        f"127.0.0.1:{s.port}",
        pid(s),
        str(s.log),
        f"cluster {s.directory} ({time.monotonic() - t0:.1f} s)",
        started=started,
    )


def stop(s: PostgresSettings, timeout: float = 30.0) -> ServiceInfo:
    """``pg_ctl stop -m fast`` if this cluster runs."""
    address = f"127.0.0.1:{s.port}"
    if not running(s):
        return ServiceInfo("postgres", "down", address, None, str(s.log), "not running")
    the_pid = pid(s)
    _run(
        _as_server_user(
            [
                pg_bin("pg_ctl"),
                "stop",
                "-w",
                "-m",
                "fast",
                "-t",
                str(int(timeout)),
                "-D",
                str(s.directory),
            ]
        ),
        "stop",
        timeout=timeout + 10,
    )
    return ServiceInfo("postgres", "down", address, the_pid, str(s.log), "stopped (pg_ctl)")


def status(s: PostgresSettings) -> ServiceInfo:
    address = f"127.0.0.1:{s.port}"
    if not initialized(s):
        return ServiceInfo("postgres", "down", address, detail=f"no cluster at {s.directory}")
    ok = running(s)
    return ServiceInfo(
        "postgres",
        "up" if ok else "down",
        address,
        pid(s) if ok else None,
        str(s.log),
        f"cluster {s.directory}",
    )
