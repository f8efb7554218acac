"""A private adscan service for benchmarks: queue server + in-process RunEngine, same profile.

``Bench.start()`` writes two copies of ``startup/iconfig.yml`` (as ``tests/conftest.py`` does:
private CA port, PV prefixes, ZMQ/Redis ports and data directory; the motor velocity and the
detector settings stay the configured ones), brings up Redis, the simulated IOC and the RE
Manager with :func:`adscan.services.up`, then builds an in-process RunEngine from
``adscan.instrument`` (the queue-server start-up module, loaded as the worker loads it) on the
same IOC but its own data directory (its own catalog, SPEC file and metadata file).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_ca_port, shielded, use_port  # noqa: E402

from adscan.core.config import write_private_iconfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def write_iconfig(directory: Path, *, tag: str, ca_port: int, data_dir: Path) -> Path:
    """A copy of startup/iconfig.yml with private ports, prefixes and data directory."""
    return write_private_iconfig(directory, tag=tag, ca_port=ca_port, data_dir=data_dir)


def move_time(distance: float, velocity: float, accel_time: float) -> float:
    """Seconds for a trapezoidal move (the simulated motor record's profile)."""
    d = abs(distance)
    if d == 0 or velocity <= 0:
        return 0.0
    if accel_time <= 0:
        return d / velocity
    if velocity * accel_time >= d:  # triangle
        return 2.0 * math.sqrt(d * accel_time / velocity)
    return accel_time + d / velocity


class Bench:
    """Service (queue) and in-process RunEngine on one private simulated IOC."""

    def __init__(self, root: Path | None = None, log=print):
        self.root = Path(root or tempfile.mkdtemp(prefix="adscan-bench-"))
        self.log = log
        self.tag = f"b{os.getpid() % 100000}"
        self.port = free_ca_port()
        self.q_path = write_iconfig(
            self.root / "queue",
            tag=self.tag,
            ca_port=self.port,
            data_dir=self.root / "queue" / "data",
        )
        self.i_path = write_iconfig(
            self.root / "inproc",
            tag=self.tag,
            ca_port=self.port,
            data_dir=self.root / "inproc" / "data",
        )
        self.cfg = None
        self.rm = None
        self.ns: dict = {}

    # -- lifetime
    def start(self, inproc: bool = True, queue: bool = True) -> Bench:
        use_port(self.port)
        from adscan import services
        from adscan.core.config import load_iconfig

        os.environ["ADSCAN_ICONFIG"] = str(self.q_path)  # the worker inherits this
        os.environ.pop("ADSCAN_DATA_DIR", None)
        self.cfg = load_iconfig(self.q_path)
        for d in ("images", "spec", "catalog"):
            (Path(self.cfg["instrument"]["data_dir"]) / d).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        services.up(self.cfg, environment=queue)
        self.log(
            f"  service up in {time.perf_counter() - t0:.1f} s "
            f"(IOC port {self.port}, data {self.root})"
        )
        if queue:
            self.rm = services.re_manager_api(self.cfg, timeout=10, polling=0.02)
        if inproc:
            self.start_inproc()
        return self

    def start_inproc(self) -> None:
        """Import the worker's start-up module in this process (its own data directory)."""
        from adscan.core.config import load_iconfig

        os.environ["ADSCAN_ICONFIG"] = str(self.i_path)
        icfg = load_iconfig(self.i_path)
        for d in ("images", "spec", "catalog"):
            (Path(icfg["instrument"]["data_dir"]) / d).mkdir(parents=True, exist_ok=True)
        os.environ["_QSERVER_RE_WORKER_ACTIVE"] = "1"  # exactly what the worker builds
        t0 = time.perf_counter()
        import adscan.instrument as inst

        inst.PROGRESS.stream = io.StringIO()  # worker prints it to its console; keep quiet
        self.ns = vars(inst)
        self.icfg = icfg
        self.log(f"  in-process profile loaded in {time.perf_counter() - t0:.1f} s")

    def stop(self) -> None:
        """Stop everything ``start`` started; a signal meanwhile waits until it is done."""
        with shielded():
            self._stop()

    def _stop(self) -> None:
        from adscan import services

        if self.rm is not None:
            with contextlib.suppress(Exception):
                self.rm.close()
        md = self.ns.get("RE").md if self.ns.get("RE") is not None else None
        if hasattr(md, "flush"):
            md.flush()  # before its directory goes (StoredDict also flushes at exit)
            md._file = os.devnull
        if self.cfg is not None:
            for info in services.down(self.cfg):
                if info.state == "running":
                    self.log(f"  service NOT stopped: {info}")
            self.log("  service stopped")
        if not os.environ.get("ADSCAN_KEEP_BENCH_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)

    # -- queue helpers
    def wait_idle(self, n_history: int, timeout: float = 3600.0, period: float = 0.02) -> float:
        """Wait until the manager is idle with ``n_history`` items; return time.time() then."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            st = self.rm.status(reload=True)
            if st["manager_state"] == "idle" and st["items_in_history"] >= n_history:
                return time.time()
            if (
                st["manager_state"] == "idle"
                and not st["items_in_queue"]
                and st["items_in_history"] < n_history
            ):
                raise RuntimeError(
                    f"queue idle with {st['items_in_history']} items (expected {n_history})"
                )
            time.sleep(period)
        raise TimeoutError("queue did not finish")

    def run_queue(self, name: str, args: list, kwargs: dict) -> dict:
        """One plan through the queue: submit, start, wait; times and the run's documents."""
        from bluesky_queueserver_api import BPlan

        n0 = self.rm.status()["items_in_history"]
        t_add = time.time()
        res = self.rm.item_add(BPlan(name, *args, **kwargs))
        if not res["success"]:
            raise RuntimeError(f"queue refused {name}: {res['msg']}")
        t_start = time.time()
        self.rm.queue_start()
        t_idle = self.wait_idle(n0 + 1)
        item = self.rm.history_get()["items"][-1]
        result = item["result"]
        if result["exit_status"] != "completed":
            raise RuntimeError(
                f"{name} {result['exit_status']}: {result['msg']}\n{result.get('traceback', '')}"
            )
        uid = result["run_uids"][-1]
        start, stop = self.run_docs(self.cfg, uid)
        return {
            "t_add": t_add,
            "t_queue_start": t_start,
            "t_idle": t_idle,
            "start": start["time"],
            "stop": stop["time"],
            "uid": uid,
            "num_events": sum((stop.get("num_events") or {}).values()),
            "item_time_start": result.get("time_start"),
            "item_time_stop": result.get("time_stop"),
        }

    @staticmethod
    def run_docs(cfg: dict, uid: str) -> tuple[dict, dict]:
        """Start and stop documents of run ``uid``, straight from the msgpack file."""
        import msgpack

        path = Path(cfg["catalog"]["directory"]) / f"{uid}.msgpack"
        start = stop = None
        for _ in range(100):
            with open(path, "rb") as f:
                for name, doc in msgpack.Unpacker(f, raw=False, strict_map_key=False):
                    if name == "start":
                        start = doc
                    elif name == "stop":
                        stop = doc
            if start and stop:
                return start, stop
            time.sleep(0.05)
        raise RuntimeError(f"run {uid}: no stop document in {path}")

    # -- in-process helpers
    def run_inproc(self, plan) -> dict:
        """One plan on the in-process RunEngine; wall time and its start/stop times."""
        RE = self.ns["RE"]
        times: dict = {}

        def cb(name, doc):
            if name in ("start", "stop"):
                times[name] = doc["time"]
                if name == "stop":
                    times["num_events"] = sum((doc.get("num_events") or {}).values())

        t0 = time.time()
        uids = RE(plan, cb)
        t1 = time.time()
        if not uids:
            raise RuntimeError("in-process run produced no run")
        return {
            "t_call": t0,
            "t_return": t1,
            "start": times["start"],
            "stop": times["stop"],
            "uid": uids[-1],
            "num_events": times.get("num_events"),
        }

    def device(self, name: str):
        return self.ns[name]
