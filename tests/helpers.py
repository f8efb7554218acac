"""Helpers shared by the tests (a normal module: tests import it, never ``conftest``).

The session's own values are fixed here when first imported (by ``conftest.py``, before any
test module): four free UDP ports for this session's IOCs, a tag for PV prefixes and a
temporary directory, so concurrent sessions on one machine never collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from adscan.ports import free_ports

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"

#: pytest-xdist worker id ("" without xdist): each worker is a session of its own, so ports
#: inherited from the controller (or from another worker) are not this session's.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
CA_PORTS = (
    [int(p) for p in os.environ["ADSCAN_TEST_CA_PORTS"].split(",")]
    if os.environ.get("ADSCAN_TEST_CA_PORTS")
    and os.environ.get("ADSCAN_TEST_CA_PORTS_WORKER", "") == WORKER
    else free_ports(4, udp=True)
)
TAG = f"t{os.getpid() % 100000}"
SESSION_DIR = Path(tempfile.mkdtemp(prefix=f"adscan-test-{TAG}-"))
QSERVER = str(Path(sys.executable).with_name("qserver"))


# --------------------------------------------------------------------------- configuration


#: set to 1 to refresh the screenshots in docs/images/ from a test run (off: the tree stays clean)
UPDATE_DOC_IMAGES = "ADSCAN_UPDATE_DOC_IMAGES"


def publish_doc_image(src: Path, name: str) -> Path | None:
    """Copy a screenshot a test drew into ``docs/images/<name>`` when
    ``ADSCAN_UPDATE_DOC_IMAGES=1``; otherwise leave the committed image alone (None)."""
    if os.environ.get(UPDATE_DOC_IMAGES) != "1":
        return None
    target = REPO / "docs" / "images" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, target)
    return target


def write_iconfig(
    directory: Path, *, tag: str = TAG, ca_port: int | None = None, simulate: bool = True, edit=None
) -> Path:
    """A private copy of startup/iconfig.yml for tests: fast motors, 2 ms exposures.

    ``edit(raw_iconfig_dict)`` may change it before it is written back.
    """
    from adscan.core.config import write_private_iconfig

    path = write_private_iconfig(
        directory,
        tag=tag,
        ca_port=CA_PORTS[0] if ca_port is None else ca_port,
        simulate=simulate,
        epics={"connection_timeout": 5},
        ioc={"motor_velocity": 20.0},
        detector={"acquire_time": 0.002, "acquire_period": 0.002},
    )
    if edit is not None:
        raw = yaml.safe_load(path.read_text())
        edit(raw)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def make_stack_config(name: str, ca_port: int, **epics) -> dict:
    """A private iconfig for a whole stack: own prefixes, ports, data dir; small frames."""
    from adscan.core.config import load_iconfig

    def small_and_fast(raw: dict) -> None:
        raw["ioc"]["frame_shape"] = [256, 256]
        raw["ioc"]["motor_velocity"] = 50.0
        raw["epics"].update(epics)

    path = write_iconfig(
        SESSION_DIR / name, tag=f"{TAG}{name[:2]}", ca_port=ca_port, edit=small_and_fast
    )
    return load_iconfig(path)


# --------------------------------------------------------------------------- processes


def start_ioc(
    *,
    port: int,
    motors_prefix: str,
    ad_prefix: str,
    data_dir: Path,
    rows: int | None = None,
    cols: int | None = None,
    velocity: float = 20.0,
    timeout: float = 90.0,
) -> subprocess.Popen:
    """Start ``python -m adscan.iocs`` (the one launcher) and return once it printed READY;
    options left None keep the configured defaults (startup/iconfig.yml).

    Unlike a service's IOC it dies with the test process (``PR_SET_PDEATHSIG``), so a killed
    test session leaves no IOC behind; call it from the main thread (the signal follows the
    spawning thread)."""
    from adscan.ca_repeater import die_with_parent
    from adscan.services import ioc_argv, ioc_env
    from adscan.services import start_ioc as launch

    data_dir.mkdir(parents=True, exist_ok=True)
    argv = ioc_argv(
        port=port,
        motors_prefix=motors_prefix,
        ad_prefix=ad_prefix,
        data_dir=data_dir,
        rows=rows,
        cols=cols,
        velocity=velocity,
    )
    log = data_dir / f"ioc-{port}.log"
    preexec = die_with_parent(signal.SIGTERM)
    return launch(argv, log, env=ioc_env(port), timeout=timeout, preexec_fn=preexec).proc


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; return the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


@contextlib.contextmanager
def private_service(directory: Path, edit=None):
    """A private RE Manager (own Redis, ZMQ ports, data directory) on the session's IOC.

    Its queue and history do not leak into other modules.  ``edit(raw_iconfig_dict)`` may
    change the written configuration first.  Yields the loaded iconfig; stops it at the end.
    The worker loads the same file (``services`` passes ``ADSCAN_ICONFIG`` to the manager).
    """
    from adscan import services
    from adscan.core.config import load_iconfig

    cfg = load_iconfig(write_iconfig(directory, edit=edit))
    try:
        services.up(cfg, ioc=False)
        yield cfg
    finally:
        services.down(cfg)


def reset_service(cfg: dict, timeout: float = 60.0) -> None:
    """Hand a shared RE Manager to the next module as a fresh one looks: idle, environment
    open, queue and history empty.  Anything else (a module left it running, paused, without
    environment, or dead) and it is restarted: one module's failure never leaks into the next."""
    from adscan import services
    from adscan.services import proxy

    try:
        assert services.redis_ping(cfg["queueserver"]["redis_addr"]), "Redis does not answer"
        if proxy.enabled(cfg):
            assert proxy.proxy_status(cfg).state == "up", "0MQ proxy down"
        api = services.re_manager_api(cfg, timeout=10)
        try:
            st = api.status()
            if st["manager_state"] != "idle" or not st["worker_environment_exists"]:
                raise RuntimeError(f"shared RE Manager not idle with environment open: {st}")
            api.queue_clear()
            api.history_clear()
            st = api.status()
            assert st["items_in_queue"] == 0 and st["items_in_history"] == 0, st
        finally:
            api.close()
    except Exception:  # noqa: BLE001 - any doubt: start it again
        services.down(cfg)
        services.up(cfg, ioc=False, env_timeout=timeout)


def kill(pid: int, sig=signal.SIGKILL) -> None:
    """Signal ``pid`` and wait until it is gone."""
    from adscan import services

    os.kill(pid, sig)
    wait_for(lambda: not services.pid_alive(pid), 10, what=f"pid {pid} gone")


# --------------------------------------------------------------------------- clients


def qserver(
    cfg: dict, *words: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the real ``qserver`` CLI against the RE Manager of ``cfg``."""
    env = dict(
        os.environ,
        QSERVER_ZMQ_CONTROL_ADDRESS=cfg["queueserver"]["zmq_control_addr"],
        QSERVER_ZMQ_INFO_ADDRESS=cfg["queueserver"]["zmq_info_addr"],
    )
    proc = subprocess.run(
        [QSERVER, *words], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, f"qserver {' '.join(words)}: {proc.stdout}\n{proc.stderr}"
    return proc


def wait_for(predicate, timeout: float, period: float = 0.1, what: str = ""):
    """The first true value of ``predicate()`` within ``timeout`` s (TimeoutError after)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(period)


def wait_idle(api, n_history: int, timeout: float = 60.0) -> list[dict]:
    """Wait for an idle manager with ``n_history`` history items; return the history."""
    wait_for(
        lambda: (
            (s := api.status())["manager_state"] == "idle" and s["items_in_history"] >= n_history
        ),
        timeout,
        what=f"{n_history} in history",
    )
    return api.history_get()["items"]


# --------------------------------------------------------------------------- data written


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spec_path(cfg: dict) -> Path:
    return Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]


def spec_scan_block(cfg: dict, uid: str) -> str:
    """The text of the SPEC scan whose ``#C uid = ...`` line names ``uid``."""
    text = spec_path(cfg).read_text()
    blocks = [b for b in text.split("\n#S ") if f"uid = {uid}" in b]
    assert len(blocks) == 1, f"{len(blocks)} SPEC scans for uid {uid}"
    return "#S " + blocks[0]


def spec_rows(block: str) -> list[list[float]]:
    return [
        [float(x) for x in line.split()]
        for line in block.splitlines()
        if line and not line.startswith("#")
    ]


def catalog_run(cfg: dict, uid: str):
    from adscan.data.catalog import open_catalog

    return open_catalog(cfg)[uid]
