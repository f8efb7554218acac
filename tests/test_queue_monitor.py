"""The queue-monitor GUI (bluesky-widgets) against this session's real RE Manager.

The GUI runs OFFSCREEN (``QT_QPA_PLATFORM=offscreen``) in a subprocess: this file run as a
script (``python tests/test_queue_monitor.py --out result.json --png shot.png -- <queue-monitor
CLI args>``) calls the real ``queue-monitor`` entry point (``bluesky_widgets.apps.queue_monitor.
main.main``) with the CLI options for this session's ZMQ addresses, then drives the window as a
user would: presses *Connect*, waits until the window shows the environment open and the queued
plan, grabs the main window to a PNG, presses *Disconnect*, closes the window and quits Qt.  A
watchdog ends the subprocess if anything hangs, and pytest bounds it with a timeout as well, so a
Qt crash or hang cannot take pytest down.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

QUEUE_MONITOR_DEADLINE = 30.0  # s, inside the subprocess: connect, see status and queue
SUBPROCESS_TIMEOUT = 50.0  # s, pytest side
PLAN = {"name": "adscan_count", "kwargs": {"num": 1, "frames": 1}}


# --------------------------------------------------------------------------------------------
# The GUI side (subprocess).  Imports Qt only here, never in the pytest process.


def _probe(
    out: Path, png: Path, argv: list[str], expect_plan: str, expect_console: str | None = None
) -> int:
    """``expect_console``: a regex; then the shot is taken once a plan runs and it is shown."""
    import re
    import threading

    result: dict = {"ok": False, "steps": [], "error": None}
    t0 = time.monotonic()

    def step(name: str) -> None:
        result["steps"].append([name, round(time.monotonic() - t0, 3)])

    def write() -> None:
        result["elapsed"] = round(time.monotonic() - t0, 3)
        out.write_text(json.dumps(result, default=str))

    def watchdog() -> None:  # the last resort: a hung Qt thread or event loop
        result["error"] = result["error"] or "watchdog: queue-monitor did not finish in time"
        write()
        os._exit(3)

    timer = threading.Timer(QUEUE_MONITOR_DEADLINE + 10.0, watchdog)
    timer.daemon = True
    timer.start()

    # PyQt5 aborts the process on an exception raised in a slot when sys.excepthook is the
    # default one; record such exceptions instead (the test reports them).
    result["qt_exceptions"] = []

    def excepthook(kind, value, tb) -> None:
        import traceback

        result["qt_exceptions"].append("".join(traceback.format_exception(kind, value, tb)))

    sys.excepthook = excepthook

    import bluesky_widgets.apps.queue_monitor.main as qm
    from bluesky_widgets.qt.run_engine_client import (
        QtReConsoleMonitor,
        QtReManagerConnection,
        QtRePlanQueue,
        QtReRunningPlan,
    )
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QLabel

    state: dict = {}
    original_viewer = qm.Viewer

    def finish(error: str | None = None) -> None:
        if state.get("finishing"):
            return
        state["finishing"] = True
        if error:
            result["error"] = error
        viewer = state["viewer"]
        conn: QtReManagerConnection = state["connection"]
        conn._pb_re_manager_disconnect.click()  # stop the periodic status thread
        step("disconnect-pressed")

        def close_when_idle(tries: int = 0) -> None:
            if conn.updates_activated and tries < 50:  # status thread still in its 1 s sleep
                QTimer.singleShot(100, lambda: close_when_idle(tries + 1))
                return
            result["updates_stopped"] = not conn.updates_activated
            # The console-output thread runs until told to stop; without this Qt's exit
            # (wait_for_workers_to_quit) would wait for it for ever.
            viewer._widget.model.run_engine.stop_console_output_monitoring()
            viewer.close()  # the last window: Qt quits its event loop, as when the user closes it
            step("window-closed")

        close_when_idle()

    def poll() -> None:
        if state.get("finishing"):
            return
        viewer = state["viewer"]
        model = viewer._widget.model.run_engine
        conn: QtReManagerConnection = state["connection"]
        status = model.re_manager_status
        queue_names = [item.get("name") for item in model._plan_queue_items]
        table = state["queue_widget"]._table
        rows = [
            [
                (table.item(r, c).text() if table.item(r, c) else "")
                for c in range(table.columnCount())
            ]
            for r in range(table.rowCount())
        ]
        labels = [w.text() for w in viewer._widget._re_manager_monitor.findChildren(QLabel)]
        monitor_widget = viewer._widget  # the first of each: the Monitor Queue tab's
        console = monitor_widget.findChildren(QtReConsoleMonitor)[0]._text_edit.toPlainText()
        running = monitor_widget.findChildren(QtReRunningPlan)[0]._text_edit.toPlainText()
        seen = {
            "connected": model.re_manager_connected,
            "connection_label": conn._lb_connected.text(),
            "worker_environment_exists": status.get("worker_environment_exists"),
            "manager_state": status.get("manager_state"),
            "items_in_queue": status.get("items_in_queue"),
            "model_queue": queue_names,
            "table_rows": rows,
            "labels": labels,
            "console_tail": console[-3000:],
            "running_plan": running,
        }
        result.update(seen)
        if expect_console:  # a plan runs: RUNNING PLAN box and progress lines in the console
            ready = (
                model.re_manager_connected is True
                and status.get("manager_state") == "executing_queue"
                and "In progress" in running
                and len(re.findall(expect_console, console)) >= 3
            )
        else:
            ready = (
                model.re_manager_connected is True
                and conn._lb_connected.text() == "ONLINE"
                and status.get("worker_environment_exists") is True
                and expect_plan in queue_names
                and any(expect_plan in cell for row in rows for cell in row)
                and "RE Environment: OPEN" in labels
            )
        if ready and expect_console and not state.get("settled"):
            state["settled"] = True  # let the console pane repaint in a taller window first
            viewer.window.resize(1200, 1000)
            QTimer.singleShot(1500, poll)
            return
        if ready:
            step("ready")
            window = viewer.window._qt_window
            QApplication.processEvents()
            image = window.grab()
            result["png_saved"] = bool(image.save(str(png), "PNG"))
            result["png_size"] = [image.width(), image.height()]
            step("screenshot")
            result["ok"] = True
            finish()
        elif time.monotonic() - t0 > QUEUE_MONITOR_DEADLINE:
            finish(f"not ready after {QUEUE_MONITOR_DEADLINE:.0f} s")
        else:
            QTimer.singleShot(100, poll)

    def start(viewer) -> None:
        state["viewer"] = viewer
        (state["connection"],) = viewer._widget.findChildren(QtReManagerConnection)
        # The 'Monitor Queue' tab's queue table (the first QtRePlanQueue: monitor mode)
        state["queue_widget"] = viewer._widget._re_manager_monitor.findChildren(QtRePlanQueue)[0]
        viewer.window.resize(1200, 800)
        step("window-shown")
        state["connection"]._pb_re_manager_connect.click()  # what the user does first
        step("connect-pressed")
        QTimer.singleShot(100, poll)

    def viewer_factory(*args, **kwargs):
        viewer = original_viewer(*args, **kwargs)
        QTimer.singleShot(0, lambda: start(viewer))
        return viewer

    qm.Viewer = viewer_factory
    try:
        qm.main(argv)  # builds QApplication, the window, and runs the event loop until quit
        step("event-loop-exited")
    except Exception as ex:  # noqa: BLE001 - reported to the test
        result["ok"] = False
        result["error"] = f"{type(ex).__name__}: {ex}"
    timer.cancel()
    write()
    return 0 if result["ok"] else 1


# --------------------------------------------------------------------------------------------
# The pytest side.

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def queued(service, rm):
    """The module's RE Manager (conftest ``service``) with one plan waiting in the queue."""
    from bluesky_queueserver_api import BPlan

    result = rm.item_add(BPlan(PLAN["name"], **PLAN["kwargs"]))
    assert result["success"], result["msg"]
    yield service, rm
    rm.queue_clear()


def _require_gui_packages() -> None:
    import importlib.util

    missing = [m for m in ("bluesky_widgets", "qtpy", "PyQt5") if not importlib.util.find_spec(m)]
    assert not missing, (
        f"{missing} not installed: pip install bluesky-widgets==0.0.18 "
        "qtpy==2.4.3 PyQt5==5.15.11 (see docs/queue-monitor.md)"
    )


def run_queue_monitor(
    cfg: dict, tmp: Path, expect_console: str | None = None
) -> tuple[dict, subprocess.CompletedProcess, float]:
    _require_gui_packages()
    qs = cfg["queueserver"]
    out, png = tmp / "queue-monitor.json", tmp / "queue-monitor.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp / "xdg"))
    env.pop("QSERVER_ZMQ_CONTROL_ADDRESS", None)  # the CLI options alone name the server
    env.pop("QSERVER_ZMQ_INFO_ADDRESS", None)
    (tmp / "xdg").mkdir(mode=0o700, exist_ok=True)
    cmd = [
        sys.executable,
        __file__,
        "--out",
        str(out),
        "--png",
        str(png),
        "--expect-plan",
        PLAN["name"],
        *(["--expect-console", expect_console] if expect_console else []),
        "--",
        "--zmq-control-addr",
        qs["zmq_control_addr"],
        "--zmq-info-addr",
        qs["zmq_info_addr"],
    ]
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env,
        timeout=SUBPROCESS_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - t0
    assert out.exists(), f"no result from queue-monitor:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(out.read_text()), proc, elapsed


@pytest.fixture(scope="module")
def monitor(queued, tmp_path_factory):
    """One offscreen queue-monitor session: (result, process, seconds, screenshot path)."""
    cfg, rm = queued
    assert rm.status()["worker_environment_exists"] is True
    tmp = tmp_path_factory.mktemp("queue-monitor")
    result, proc, elapsed = run_queue_monitor(cfg, tmp)
    return result, proc, elapsed, tmp / "queue-monitor.png"


def test_queue_monitor_connects_and_shows_environment_and_queue(queued, monitor):
    cfg, rm = queued
    result, proc, elapsed, _ = monitor
    diag = f"{json.dumps(result, indent=1)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    assert result["ok"] and result["error"] is None, diag
    assert proc.returncode == 0, diag
    # What the user sees after pressing Connect
    assert result["connected"] is True and result["connection_label"] == "ONLINE", diag
    assert result["worker_environment_exists"] is True, diag
    assert "RE Environment: OPEN" in result["labels"], diag
    assert "Manager state: IDLE" in result["labels"], diag
    assert result["model_queue"] == [PLAN["name"]], diag
    (row,) = result["table_rows"]
    assert row[1] == PLAN["name"] and "num: 1" in row[2], diag
    # The addresses came from the CLI options, printed by queue-monitor itself
    assert cfg["queueserver"]["zmq_control_addr"] in proc.stdout, diag
    # Clean exit: the status thread stopped, the window closed, the event loop returned
    names = [name for name, _ in result["steps"]]
    assert names[-3:] == ["disconnect-pressed", "window-closed", "event-loop-exited"], diag
    assert result["updates_stopped"] is True, diag
    # No exception in a Qt slot, except bluesky-widgets 0.0.18's own on stopping the console
    # thread (QtReConsoleMonitor unpacks the None its stopped worker returns)
    for text in result["qt_exceptions"]:
        assert "_process_new_console_output" in text and "NoneType" in text, diag
    assert elapsed < SUBPROCESS_TIMEOUT, elapsed
    # The queue itself is untouched by the monitor
    assert [item["name"] for item in rm.queue_get()["items"]] == [PLAN["name"]]


def test_queue_monitor_screenshot_is_a_real_picture(monitor):
    from PIL import Image

    result, _, _, png = monitor
    assert result["ok"] and result["png_saved"], result
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        rgb = im.convert("RGB")
        assert rgb.size == tuple(result["png_size"]) and rgb.width >= 800 and rgb.height >= 500
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20, "screenshot looks blank"
        dominant = max(colours)[0] / (rgb.width * rgb.height)
        assert dominant < 0.95, f"one colour covers {dominant:.0%} of the screenshot"
        # Text was drawn: many dark pixels (labels, table contents)
        grey = rgb.convert("L")
        dark = sum(grey.histogram()[:100])
        assert dark > 1000, dark


PROGRESS_LINE = (
    r"\[adscan\] scan \d+ adscan_scan: point \d+/150 \(\d+%\), "
    r"[\d.]+ s elapsed, ~[\d.]+ s left"
)


def test_queue_monitor_shows_progress_while_a_plan_runs(queued, tmp_path):
    """What a GUI user sees of a running scan: the RUNNING PLAN box and the console lines.

    bluesky-widgets 0.0.18 has no progress widget; the worker's per-point lines
    (adscan.callbacks.progress) are the progress it shows.  The screenshot is in docs/images/;
    ``ADSCAN_UPDATE_DOC_IMAGES=1`` refreshes it.
    """
    import re

    from bluesky_queueserver_api import BPlan
    from helpers import publish_doc_image

    cfg, rm = queued
    assert rm.item_add(BPlan("adscan_scan", "m1", -1, 1, 150, frames=1))["success"]
    rm.queue_start()
    result, proc, _ = run_queue_monitor(cfg, tmp_path, expect_console=PROGRESS_LINE)
    diag = f"{json.dumps(result, indent=1)}\nstderr:\n{proc.stderr[-3000:]}"
    assert result["ok"] and result["png_saved"], diag
    assert result["manager_state"] == "executing_queue", diag
    assert "adscan_scan" in result["running_plan"] and "In progress" in result["running_plan"]
    assert len(re.findall(PROGRESS_LINE, result["console_tail"])) >= 3, diag
    publish_doc_image(tmp_path / "queue-monitor.png", "queue-monitor-progress.png")
    rm.wait_for_idle(timeout=180)
    assert rm.history_get()["items"][-1]["result"]["exit_status"] == "completed"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--expect-plan", default=PLAN["name"])
    parser.add_argument("--expect-console", default=None)
    parser.add_argument("queue_monitor_args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    args = ns.queue_monitor_args
    args = args[1:] if args[:1] == ["--"] else args
    sys.exit(_probe(ns.out, ns.png, args, ns.expect_plan, ns.expect_console))
