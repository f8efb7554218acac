"""Close the runs a lost worker left open (issue 12.4): stop document + SPEC ``exit_status``.

``environment_destroy``, a killed worker or a killed RE Manager end the worker process in the
middle of a run: no stop document is ever emitted, so the catalog run stays open and the SPEC
scan has no ``exit_status`` line.  :class:`OpenRunRecorder` (subscribed to ``RE``) keeps one
small JSON file per open run in ``{data_dir}/run/open-runs/`` (written at ``start``, removed at
``stop``).  At the next environment open, :func:`close_left_open` (called by the start-up
module before the writers subscribe) finds the files whose writer process is gone and closes
each run: a stop document with ``exit_status: abort`` and a reason in the catalog (Tiled node,
msgpack file or MongoDB ``run_stop``), ``#C ... exit_status = incomplete`` at the end of its
SPEC scan.

bluesky-queueserver 0.0.25 records ``run_uids: []`` for such an item and offers no way to amend
a history item; the closing reason names the run's uid and scan_id instead.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

REASON = (
    "the worker ended before the run did (environment destroyed or process killed); "
    "closed at the next environment open"
)


def open_runs_dir(cfg: dict) -> Path:
    return Path(cfg["instrument"]["data_dir"]) / "run" / "open-runs"


def _process_tag(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).create_time()
    return None


class OpenRunRecorder:
    """RunEngine callback: a file per open run, removed when its stop document comes."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._pid = os.getpid()
        self._created = _process_tag(self._pid)

    def __call__(self, name: str, doc: dict) -> None:
        try:
            if name == "start":
                record = {
                    "uid": doc["uid"],
                    "scan_id": doc.get("scan_id"),
                    "time": doc.get("time"),
                    "pid": self._pid,
                    "created": self._created,
                }
                tmp = self.directory / f".{doc['uid']}.tmp"
                tmp.write_text(json.dumps(record))
                tmp.replace(self.directory / f"{doc['uid']}.json")
            elif name == "stop":
                (self.directory / f"{doc['run_start']}.json").unlink(missing_ok=True)
        except Exception:  # noqa: BLE001 - a by-product: never break the RunEngine
            logger.exception("open-run recorder failed on %s", name)


def _writer_alive(record: dict) -> bool:
    pid = record.get("pid")
    if not pid or not psutil.pid_exists(pid):
        return False
    created = _process_tag(pid)
    return created is not None and record.get("created") in (None, created)


def _stop_doc(record: dict, reason: str) -> dict:
    return {
        "uid": str(uuid.uuid4()),
        "run_start": record["uid"],
        "time": time.time(),
        "exit_status": "abort",
        "reason": reason,
        "num_events": {},
    }


def _close_in_msgpack(directory: Path, stop: dict) -> bool:
    import msgpack

    path = directory / f"{stop['run_start']}.msgpack"
    if not path.exists():
        return False
    with open(path, "rb") as f:
        for name, _doc in msgpack.Unpacker(f, raw=False, strict_map_key=False):
            if name == "stop":
                return False
    with open(path, "ab") as f:
        f.write(msgpack.packb(("stop", stop)))
    return True


def _close_in_mongo(uri: str, stop: dict) -> bool:
    import pymongo

    from adscan.core.catalog_settings import mongo_uri_with_timeout

    client = pymongo.MongoClient(mongo_uri_with_timeout(uri))
    try:
        db = client.get_database()
        if db.run_start.find_one({"uid": stop["run_start"]}) is None:
            return False
        if db.run_stop.find_one({"run_start": stop["run_start"]}) is not None:
            return False
        db.run_stop.insert_one(dict(stop))
        return True
    finally:
        client.close()


def _close_in_tiled(cfg: dict, stop: dict) -> bool:
    """Write the stop document into the run's Tiled node, as TiledWriter does at a stop."""
    from adscan.tiled.reader import open_catalog

    catalog = open_catalog(cfg)
    uid = stop["run_start"]
    if uid not in catalog:
        return False
    node = catalog[uid]
    if node.metadata.get("stop"):
        return False  # closed already
    node.update_metadata(metadata={"stop": stop}, drop_revision=True)
    return True


def _close_in_spec(path: Path, record: dict, reason: str) -> bool:
    """Append ``exit_status = incomplete`` if the file's last scan is this run and is open."""
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    last_s = max((i for i, ln in enumerate(lines) if ln.startswith("#S ")), default=None)
    if last_s is None:
        return False
    block = lines[last_s:]
    if not any(ln.endswith(f"uid = {record['uid']}") for ln in block):
        return False
    if any("exit_status = " in ln for ln in block):
        return False
    from apstools.callbacks.spec_file_writer import SPEC_TIME_FORMAT

    from adscan.callbacks.textsafe import one_line

    date = datetime.datetime.now().strftime(SPEC_TIME_FORMAT)
    out = [
        f"#C {date}.  reason = {one_line(reason)}",
        f"#C {date}.  exit_status = incomplete (no stop document)",
    ]
    with open(path, "a", encoding="utf-8") as f:
        f.write(("" if text.endswith("\n") else "\n") + "\n".join(out) + "\n")
    return True


def close_left_open(cfg: dict, reason: str = REASON) -> list[dict[str, Any]]:
    """Close every run whose writer process is gone; returns what was done, per run."""
    from adscan.callbacks.specfile import spec_file_path
    from adscan.core.catalog_settings import catalog_directory, tiled_enabled

    directory = open_runs_dir(cfg)
    done: list[dict[str, Any]] = []
    if not directory.is_dir():
        return done
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if _writer_alive(record):
            continue  # e.g. an IPython session and the worker share the data directory
        why = f"{reason} (run {record['uid']}, scan_id {record.get('scan_id')})"
        stop = _stop_doc(record, why)
        result = {"uid": record["uid"], "catalog": False, "spec": False}
        try:
            uri = (cfg.get("catalog") or {}).get("mongo_uri")
            if tiled_enabled(cfg):
                result["catalog"] = _close_in_tiled(cfg, stop)
                if uri:  # dual write: MongoDB holds the run too
                    result["catalog"] = _close_in_mongo(uri, stop) and result["catalog"]
            elif uri:
                result["catalog"] = _close_in_mongo(uri, stop)
            else:
                result["catalog"] = _close_in_msgpack(catalog_directory(cfg), stop)
            result["spec"] = _close_in_spec(spec_file_path(cfg), record, why)
        except Exception:  # noqa: BLE001 - keep the file to retry at the next open
            logger.exception("could not close run %s left open", record["uid"])
            continue
        path.unlink(missing_ok=True)
        logger.warning("closed run %s left open by a lost worker: %s", record["uid"], result)
        print(
            f"adscan: closed run {record['uid']} (scan_id {record.get('scan_id')}) left open "
            f"by a lost worker: catalog={result['catalog']} spec={result['spec']}"
        )
        done.append(result)
    return done
