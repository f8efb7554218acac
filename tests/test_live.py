"""Live documents, progress with the queue item uid, and the NeXus file per run.

Real processes on loopback: the session's simulated IOC, Redis, the RE Manager, and the
``bluesky-0MQ-proxy`` that ``services.up`` starts.  A ``RemoteDispatcher`` client and
``adscan watch`` (a subprocess) follow plans queued through the RE Manager; what they
receive is compared with the catalog and the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - LZ4 filter for h5py
import numpy as np
import psutil
import pytest
from bluesky_queueserver_api import BPlan

from adscan import services
from adscan.services import proxy

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parent.parent


class Collector:
    """A RemoteDispatcher in a thread, collecting (name, doc) from the proxy."""

    def __init__(self, address: str):
        from bluesky.callbacks.zmq import RemoteDispatcher

        self.docs: list[tuple[str, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.disp = RemoteDispatcher(address.split("://", 1)[1], loop=self.loop)
        self.disp.subscribe(lambda name, doc: self.docs.append((name, doc)))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        time.sleep(0.5)  # SUB connected before the first document

    def _run(self):
        with contextlib.suppress(asyncio.CancelledError):
            self.disp.start()

    def close(self):
        self.loop.call_soon_threadsafe(self.disp._task.cancel)  # stop from its own loop
        self.thread.join(10)

    def runs(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for name, doc in self.docs:
            if name == "start":
                out[doc["uid"]] = {
                    "start": doc,
                    "descriptors": {},
                    "events": 0,
                    "primary": 0,
                    "stop": None,
                }
        desc_run = {}
        for name, doc in self.docs:
            if name == "descriptor" and doc["run_start"] in out:
                out[doc["run_start"]]["descriptors"][doc["name"]] = doc["uid"]
                desc_run[doc["uid"]] = doc["run_start"]
            elif name == "event" and doc["descriptor"] in desc_run:
                run = out[desc_run[doc["descriptor"]]]
                run["events"] += 1
                run["primary"] += doc["descriptor"] == run["descriptors"].get("primary")
            elif name == "stop" and doc["run_start"] in out:
                out[doc["run_start"]]["stop"] = doc
        return out


class Output:
    """A subprocess's merged output, read in a thread (to wait for a line while it runs)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines = proc, []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no {text!r} in {''.join(self.lines)}"
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.1)

    def text(self, timeout: float = 30.0) -> str:
        self.proc.wait(timeout)
        self.thread.join(10)
        return "".join(self.lines)


WATCH_READY = "adscan watch: no run in progress; waiting for one on"


def run_items(rm, plans, timeout=300.0) -> list[dict]:
    n0 = rm.status()["items_in_history"]
    for plan in plans:
        result = rm.item_add(plan)
        assert result["success"], result["msg"]
    rm.queue_start()
    rm.wait_for_idle(timeout=timeout)
    items = rm.history_get()["items"][n0:]
    for item in items:
        assert item["result"]["exit_status"] == "completed", item["result"]
    return items


def test_proxy_up_in_status_on_loopback(service):
    info = proxy.proxy_status(service)
    assert info.state == "up" and info.pid
    p_in, p_out = proxy.addresses(service)
    assert info.address == f"in {p_in} out {p_out}"
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(info.pid).net_connections()
        if c.status == psutil.CONN_LISTEN
    }
    ports = {int(p_in.rsplit(":", 1)[1]), int(p_out.rsplit(":", 1)[1])}
    assert listening == {("127.0.0.1", port) for port in ports}, listening
    cmdline = psutil.Process(info.pid).cmdline()
    assert "--in-address" in cmdline and "--out-address" in cmdline
    assert "zmq-proxy" in services.format_table(services.status(service, check_ioc=False))


def test_proxy_port_in_use_is_named(service, tmp_path):
    import socket

    cfg = {
        **service,
        "live": dict(service["live"]),
        "instrument": {**service["instrument"], "data_dir": str(tmp_path)},
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg["live"]["proxy_in"] = f"127.0.0.1:{port}"
        with pytest.raises(services.ServiceError, match=f"port {port} \\(live.proxy_in\\)"):
            proxy.ensure_proxy(cfg)


@pytest.fixture(scope="module")
def live_runs(service, rm):
    """A scan and a snake grid scan through the queue, watched by a client and `adscan watch`."""
    collector = Collector(proxy.addresses(service)[1])
    png = Path(service["instrument"]["data_dir"]) / "watch-grid.png"
    env = dict(os.environ, ADSCAN_ICONFIG=service["_path"], MPLBACKEND="Agg")
    watch = subprocess.Popen(
        [sys.executable, "-m", "adscan.cli", "watch", "--out", str(png), "--timeout", "240"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    watch_out = Output(watch)
    watch_out.wait_for(WATCH_READY)  # printed once its SUB socket is connected
    time.sleep(0.5)  # 0MQ subscription handshake
    plans = [
        BPlan("adscan_scan", "m1", -1, 1, 6, frames=2),
        BPlan("adscan_grid_scan", "m1", -1, 1, 5, "m2", -0.5, 0.5, 4, snake=True, frames=2),
    ]
    n0 = rm.status()["items_in_history"]
    for plan in plans:
        assert rm.item_add(plan)["success"]
    rm.queue_start()
    png_during_grid = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = rm.status()
        runs = collector.runs()
        grid = [r for r in runs.values() if r["start"].get("plan_pattern") == "outer_product"]
        if (
            grid
            and grid[0]["stop"] is None
            and grid[0]["primary"] >= 12
            and png.exists()
            and png_during_grid is None
        ):
            png_during_grid = png.with_name("watch-grid-during.png")
            shutil.copy(png, png_during_grid)  # as the watcher drew it while the grid ran
        if st["manager_state"] == "idle" and st["items_in_history"] >= n0 + 2:
            break
        time.sleep(0.2)
    # Under load the watcher lags behind the proxy: let it print both stop documents (it would
    # be cut off mid-run otherwise), then its final refresh.
    deadline = time.monotonic() + 60
    while "".join(watch_out.lines).count(": success, ") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # last documents and the watcher's final refresh
    watch.terminate()
    out = watch_out.text()
    collector.close()
    items = rm.history_get()["items"][n0:]
    for item in items:
        assert item["result"]["exit_status"] == "completed", item["result"]
    return {
        "items": items,
        "collector": collector,
        "watch_out": out,
        "png": png,
        "png_during_grid": png_during_grid,
    }


def _plain(doc: dict) -> dict:
    return json.loads(json.dumps(doc))


def test_remote_dispatcher_gets_what_the_catalog_holds(live_runs, service):
    from adscan.data.catalog import open_catalog

    cat = open_catalog(service)
    got = live_runs["collector"].runs()
    for item in live_runs["items"]:
        (uid,) = item["result"]["run_uids"]
        assert uid in got, (uid, list(got))
        live = got[uid]
        run = cat[uid]
        docs = list(run.documents(fill="no"))
        start = next(d for n, d in docs if n == "start")
        assert _plain(live["start"]) == _plain(start)  # pickle keeps tuples, the catalog lists
        assert live["start"]["item_uid"] == item["item_uid"]  # queueserver #374
        descriptors = {d["name"]: d["uid"] for n, d in docs if n == "descriptor"}
        assert live["descriptors"] == descriptors
        events = sum(1 for n, d in docs if n == "event")
        events += sum(len(d["seq_num"]) for n, d in docs if n == "event_page")
        assert live["events"] == events and events > 0
        assert live["stop"]["uid"] == next(d for n, d in docs if n == "stop")["uid"]
        assert len(run.primary.read()["time"]) == start["num_points"]


def test_watch_prints_table_and_progress(live_runs):
    out = live_runs["watch_out"]
    print(out)
    assert "adscan watch: no run in progress; waiting for one on tcp://127.0.0.1:" in out
    for item in live_runs["items"]:
        (uid,) = item["result"]["run_uids"]
        assert f"run uid {uid}  queue item {item['item_uid']}" in out
    assert "[##############################] 20/20  100%" in out
    assert "[#####" in out and "~" in out and "s left" in out
    assert "simdet_stats1_total" in out and "m1" in out  # LiveTable header
    assert out.count(": success, ") == 2  # the stop documents


def test_watch_png_written_during_grid(live_runs):
    import matplotlib.image as mpimg
    from helpers import publish_doc_image

    assert live_runs["png_during_grid"] is not None, "no PNG while the grid scan ran"
    for png in (live_runs["png"], live_runs["png_during_grid"]):
        image = mpimg.imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.01
    publish_doc_image(live_runs["png_during_grid"], "watch-grid.png")  # the README's


def _progress(rm) -> dict:
    """What the demo's progress bar asks: adscan_progress() run by the worker."""
    from adscan.demo import adscan_progress

    return adscan_progress(rm, timeout=30)


def test_progress_mid_scan_names_item_run_and_time_left(service, rm):
    collector = Collector(proxy.addresses(service)[1])
    try:
        assert rm.item_add(BPlan("adscan_scan", "m1", -1, 1, 40, frames=3))["success"]
        rm.queue_start()
        deadline = time.monotonic() + 120
        value = None

        def events(uid):
            return collector.runs().get(uid, {}).get("primary", 0)

        while time.monotonic() < deadline:
            uids = [d["uid"] for n, d in collector.docs if n == "start"]
            before = events(uids[-1]) if uids else 0
            value = _progress(rm)
            after = events(value.get("uid"))
            if value.get("state") == "running" and 5 <= value["points_done"] <= 30:
                break
            time.sleep(0.3)
        st = rm.status()
        assert value["state"] == "running", value
        assert value["item_uid"] == st["running_item_uid"]
        assert value["points_total"] == 40
        assert value["run_uids"] == [value["uid"]]
        done = value["points_done"]
        assert value["remaining_s"] == pytest.approx(
            value["elapsed_s"] / done * (40 - done), rel=0.05
        )
        assert value["remaining_s"] > 0
        # the documents agree: the events seen before and after the call bracket it
        assert before - 1 <= done <= after + 1, (before, done, after)
        rm.wait_for_idle(timeout=120)
        item = rm.history_get()["items"][-1]
        assert item["result"]["run_uids"] == [value["uid"]]
        final = _progress(rm)
        assert final["state"] == "finished" and final["points_done"] == 40
        assert final["remaining_s"] == 0.0
    finally:
        collector.close()


# ------------------------------------------------------------------------------ NeXus


def nexus_file(service, uid: str, timeout: float = 30.0) -> Path:
    directory = Path(service["nexus"]["directory"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in directory.glob(f"*-{uid[:7]}.nxs")]
        if found:
            with contextlib.suppress(OSError), h5py.File(found[0], "r"):
                return found[0]
        time.sleep(0.3)
    raise AssertionError(f"no NeXus file for {uid} in {directory}")


def _item(live_runs, pattern):
    return next(i for i in live_runs["items"] if i["name"] == pattern)


def test_nexus_grid_file_structure(live_runs, service):
    item = _item(live_runs, "adscan_grid_scan")
    (uid,) = item["result"]["run_uids"]
    path = nexus_file(service, uid)
    assert path.parent == Path(service["spec"]["directory"])  # beside the SPEC file
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] == "entry"
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry" and entry.attrs["default"] == "data"
        assert entry["entry_identifier"][()].decode() == uid
        assert int(entry["scan_id"][()]) == int(item["result"]["scan_ids"][0])
        assert "adscan_grid_scan" in entry["plan"][()].decode()
        assert entry["item_uid"][()].decode() == item["item_uid"]
        data = entry["data"]
        assert data.attrs["NX_class"] == "NXdata"
        assert data.attrs["signal"] == "simdet_stats1_total"
        assert list(data.attrs["axes"]) == ["m1", "m2"]
        assert data["simdet_stats1_total"].shape == (5, 4)
        assert data["m1"].shape == (5,) and data["m2"].shape == (4,)
        assert int(data.attrs["m1_indices"]) == 0 and int(data.attrs["m2_indices"]) == 1
        np.testing.assert_allclose(data["m1"][()], np.linspace(-1, 1, 5), atol=1e-3)
        np.testing.assert_allclose(data["m2"][()], np.linspace(-0.5, 0.5, 4), atol=1e-3)
        # snake: each point's total lands on its (row, column), checked against the stream
        totals = entry["instrument/bluesky/streams/primary/simdet_stats1_total/value"][()]
        rc = data["point_index"][()]
        assert rc[4].tolist() == [1, 3]  # first point of the second (reversed) row
        np.testing.assert_array_equal(data["simdet_stats1_total"][()][rc[:, 0], rc[:, 1]], totals)
        link = data.get("images", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and not os.path.isabs(link.filename)
        inst = entry["instrument"]
        assert inst.attrs["NX_class"] == "NXinstrument"
        for m in ("m1", "m2"):
            assert inst[m].attrs["NX_class"] == "NXpositioner"
            assert inst[m]["value"].shape == inst[m]["target_value"].shape == (20,)
        assert inst["simdet"].attrs["NX_class"] == "NXdetector"
        assert isinstance(inst["simdet"].get("data", getlink=True), h5py.ExternalLink)
        # images are linked, not copied: the NeXus file is small
        assert path.stat().st_size < 2_000_000


SILX_READ = """
import json, sys
import hdf5plugin  # LZ4 frames (silx view loads it too)
import numpy as np
import silx.io

with silx.io.open(sys.argv[1]) as f:
    default = f["/" + f.attrs["default"]]
    data = default[default.attrs["default"]]
    images = data["images"]
    frame_start = data["frame_start"][()]
    np.save("frame7.npy", images[7])
    np.save("point3.npy", images[frame_start[3] + 1])
    print(json.dumps({"signal": data.attrs["signal"], "axes": list(data.attrs["axes"]),
                      "m1": data["m1"][()].tolist(), "shape": list(images.shape),
                      "frame_start": frame_start.tolist(),
                      "fpp": int(data["frames_per_point"][()])}))
"""


def test_nexus_images_through_link_with_silx(live_runs, service, tmp_path):
    """silx (a fresh process, elsewhere) reads the frames through the relative link."""
    from adscan.data.catalog import image_files, open_catalog

    item = _item(live_runs, "adscan_scan")
    (uid,) = item["result"]["run_uids"]
    path = nexus_file(service, uid)
    proc = subprocess.run(
        [sys.executable, "-c", SILX_READ, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["signal"] == "simdet_stats1_total" and got["axes"] == ["m1"]  # default plot
    assert got["fpp"] == 2 and got["frame_start"] == [0, 2, 4, 6, 8, 10]
    assert got["shape"] == [12, 1024, 1024]
    run = open_catalog(service)[uid]
    (ad_file,) = image_files(run)
    frame7 = np.load(tmp_path / "frame7.npy")
    with h5py.File(ad_file, "r", locking=False) as src:  # the source file itself
        np.testing.assert_array_equal(frame7, src["/entry/data/data"][7])
    assert frame7.std() > 0
    ds = run.primary.read()  # the catalog's (points, frames, rows, cols) view agrees
    np.testing.assert_allclose(got["m1"], ds["m1"].values)
    np.testing.assert_array_equal(np.load(tmp_path / "point3.npy"), ds["simdet_image"].values[3, 1])


def _replay(run, writer, edit_resource=None):
    """The run's documents as the RunEngine emitted them (pages unpacked) into ``writer``."""
    import event_model

    for name, doc in run.documents(fill="no"):
        if name == "resource" and edit_resource:
            doc = edit_resource(dict(doc))
        if name == "event_page":
            for event in event_model.unpack_event_page(doc):
                writer.receiver("event", event)
        elif name == "datum_page":
            for datum in event_model.unpack_datum_page(doc):
                writer.receiver("datum", datum)
        else:
            writer.receiver(name, doc)
    writer.wait(60)


def test_nexus_failures_are_logged_with_uid_and_leave_no_file(live_runs, service, tmp_path, caplog):
    from adscan.callbacks.nexus import AdscanNXWriter
    from adscan.data.catalog import open_catalog

    item = _item(live_runs, "adscan_scan")
    (uid,) = item["result"]["run_uids"]
    run = open_catalog(service)[uid]
    spec = Path(service["spec"]["directory"]) / service["spec"]["file"]
    spec_before = spec.read_bytes()

    # the area detector file is missing
    writer = AdscanNXWriter()
    writer.file_path = tmp_path
    writer.image_file_timeout = 0.5
    _replay(run, writer, lambda doc: {**doc, "resource_path": "gone/missing.h5"})
    assert [u for u, _ in writer.failures] == [uid]
    assert "missing" in writer.failures[0][1]
    assert list(tmp_path.glob("*.nxs")) == []
    assert any(uid in r.getMessage() and "NOT written" in r.getMessage() for r in caplog.records)

    # the disk is full (every write fails with ENOSPC)
    writer = AdscanNXWriter()
    writer.make_file_name = lambda: Path("/dev/full")
    _replay(run, writer)
    assert [u for u, _ in writer.failures] == [uid], writer.failures

    # a good replay writes a file: the failures above were the faults, not the writer
    writer = AdscanNXWriter()
    writer.file_path = tmp_path
    _replay(run, writer)
    assert writer.failures == [] and len(writer.written) == 1
    assert spec.read_bytes() == spec_before  # the SPEC file was never touched


def _doc_snippet(marker: str) -> str:
    text = (REPO / "docs" / "live-and-nexus.md").read_text()
    blocks = text.split("```python\n")[1:]
    return next(b.split("```", 1)[0] for b in blocks if marker in b)


def test_docs_bec_snippet_watch_once_plot_and_qserver_progress(service, rm, tmp_path):
    """The doc's BestEffortCallback client, `adscan watch --once --plot`, and the qserver CLI."""
    import re

    from helpers import qserver

    out_addr = proxy.addresses(service)[1].split("://", 1)[1]
    script = tmp_path / "bec_client.py"
    script.write_text(_doc_snippet("BestEffortCallback").replace("127.0.0.1:60568", out_addr))
    env = dict(os.environ, ADSCAN_ICONFIG=service["_path"], MPLBACKEND="Agg")
    bec = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    watch = subprocess.Popen(
        [sys.executable, "-m", "adscan.cli", "watch", "--once", "--plot"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        watch_out = Output(watch)
        watch_out.wait_for(WATCH_READY)  # its SUB socket is connected
        time.sleep(2.0)  # the BEC client, started at the same time, too
        (item,) = run_items(rm, [BPlan("adscan_count", num=3, frames=1)])
        (uid,) = item["result"]["run_uids"]
        out = watch_out.text(timeout=60)  # --once: exits by itself after the run
        assert watch.returncode == 0, out
        assert f"run uid {uid}  queue item {item['item_uid']}" in out
        assert "[##############################] 3/3  100%" in out
        time.sleep(1.0)
    finally:
        for proc in (bec, watch):
            if proc.poll() is None:
                proc.terminate()
    bec_out, _ = bec.communicate(timeout=30)
    with h5py.File(nexus_file(service, uid), "r") as f:  # count: total v. point number
        data = f["entry/data"]
        assert data.attrs["signal"] == "simdet_stats1_total"
        assert list(data.attrs["axes"]) == ["point"] and data["point"][()].tolist() == [1, 2, 3]
        assert data["simdet_stats1_total"].shape == (3,)
    scan_id = item["result"]["scan_ids"][0]
    assert f"Transient Scan ID: {scan_id}" in bec_out, bec_out
    assert "simdet_stats1_total" in bec_out

    task = qserver(service, "function", "execute", '{"name": "adscan_progress"}', "background")
    task_uid = re.search(r"'task_uid': '([0-9a-f-]{36})'", task.stdout).group(1)
    time.sleep(1.0)
    result = qserver(service, "task", "result", task_uid).stdout
    assert "'points_done': 3" in result and f"'uid': '{uid}'" in result, result


def test_demo_progress_bar_draws_adscan_progress(capsys):
    from adscan.demo import ProgressBar

    bar = ProgressBar(width=20)
    bar.active = True
    bar.feed(
        {
            "state": "running",
            "scan_id": 7,
            "plan": "adscan_scan",
            "points_done": 5,
            "points_total": 20,
            "remaining_s": 6.2,
        }
    )
    bar.feed({"state": "finished", "points_done": 20, "points_total": 20})  # not drawn
    out = capsys.readouterr().out
    assert out == "\r  scan 7 adscan_scan        [#####...............] 5/20  ~6 s left "


def test_nexus_failure_in_the_worker_leaves_run_and_spec_file(beamline, tmp_path):
    """The worker's NeXus writer fails (its directory cannot be made): nothing else notices."""
    from helpers import private_service
    from spec2nexus.spec import SpecDataFile

    from adscan.data.catalog import open_catalog

    blocker = tmp_path / "blocker"  # a file where the NeXus directory's parent should be
    blocker.write_text("not a directory\n")

    def edit(raw):
        raw["nexus"]["directory"] = str(blocker / "nexus")

    with private_service(tmp_path / "svc", edit=edit) as cfg:
        rm = services.re_manager_api(cfg, timeout=10)
        try:
            (item,) = run_items(rm, [BPlan("adscan_scan", "m1", -1, 1, 3, frames=1)])
        finally:
            rm.close()
        (uid,) = item["result"]["run_uids"]
        assert len(open_catalog(cfg)[uid].primary.read()["time"]) == 3
        spec = SpecDataFile(str(Path(cfg["spec"]["directory"]) / cfg["spec"]["file"]))
        (scan,) = [spec.getScan(n) for n in spec.getScanNumbers()]
        assert len(scan.data["m1"]) == 3
        log = Path(cfg["queueserver"]["log"])
        deadline = time.monotonic() + 20
        while f"NeXus: file for run {uid}" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        line = next(x for x in log.read_text().splitlines() if f"NeXus: file for run {uid}" in x)
        assert "NOT written" in line and "blocker" in line, line
        assert blocker.read_text() == "not a directory\n"
