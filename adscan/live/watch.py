"""``adscan watch``: the running scan, live, from the 0MQ proxy (any machine user, no console).

In a terminal it prints the how-to's live table (bluesky's ``LiveTable``: motors, Stats
total and max per point) under a header naming the run and its queue item (``item_uid``),
and a progress bar (points done / total, estimated time left) computed from the documents
themselves.  ``--plot`` adds a matplotlib window (``--out FILE.png``: a PNG rewritten at
each refresh) with Stats total and max v. motor, or a live map for a grid scan, and the
latest detector frame, thumbnailed.

The frame is read by this client from the detector's HDF5 file named in the resource
document, at the refresh rate (not per point), so the run carries no image in its events and
the worker does no extra work; a frame that cannot be read yet (file being written) is
simply tried again at the next refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

WAITING = "adscan watch: no run in progress; waiting for one on {address} (Ctrl-C to quit)"


def progress_bar(done: int, total: int | None, elapsed: float, width: int = 30) -> str:
    """``[#######.......]  7/20  35%  3.1 s elapsed  ~5.8 s left``."""
    if not total:
        return f"[{'?' * width}] {done}/?  {elapsed:.1f} s elapsed"
    fill = min(width, width * done // total)
    left = elapsed / done * (total - done) if done else float("nan")
    left_text = f"~{left:.1f} s left" if done else "time left: after the first point"
    return (
        f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total}  {100 * done // total:3d}%  "
        f"{elapsed:.1f} s elapsed  {left_text}"
    )


class Watcher:
    """Document callback: live table, progress bar and (optionally) the live plot."""

    def __init__(self, stream: TextIO = sys.stdout, plot: LivePlot | None = None):
        self.stream = stream
        self.tty = stream.isatty()
        self.plot = plot
        self.table = None
        self.start_doc: dict[str, Any] | None = None
        self.primary: str | None = None
        self.done = 0
        self.t0 = self.t_last = 0.0
        self.bar_shown = False
        self.runs_seen = 0

    # -- output
    def _write(self, text: str) -> None:
        if self.bar_shown and self.tty:
            self.stream.write("\r\033[K")
            self.bar_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self) -> None:
        total = self.start_doc.get("num_points") if self.start_doc else None
        bar = progress_bar(self.done, total, self.t_last - self.t0)  # run's clock, not ours
        if self.tty:
            self.stream.write("\r\033[K" + bar)
            self.bar_shown = True
            self.stream.flush()
        else:
            self._write("  " + bar)

    # -- documents
    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        handler = getattr(self, f"_{name}", None)
        if handler is not None:
            handler(doc)
        if self.plot is not None:
            self.plot(name, doc)

    def _start(self, doc):
        self.start_doc, self.primary, self.done = doc, None, 0
        self.t0 = self.t_last = doc["time"]
        self.runs_seen += 1
        plan = doc.get("adscan_command") or doc.get("plan_name")
        self._write(f"\nscan {doc.get('scan_id')}  {plan}")
        self._write(
            f"  run uid {doc['uid']}  queue item {doc.get('item_uid') or '-'}  "
            f"{doc.get('num_points', '?')} points x {doc.get('frames_per_point', 1)} "
            "frames"
        )
        self.table = None

    def _descriptor(self, doc):
        if doc.get("name") != "primary" or self.start_doc is None:
            return
        from bluesky.callbacks import LiveTable

        self.primary = doc["uid"]
        motors = [m for m in self.start_doc.get("motors") or () if m in doc["data_keys"]]
        stats = [k for k in doc["data_keys"] if k.endswith(("_stats1_total", "_stats1_max_value"))]
        self.table = LiveTable([*motors, *stats], out=self._write, default_prec=3)
        self.table.start(self.start_doc)
        self.table.descriptor(doc)

    def _event(self, doc):
        if doc.get("descriptor") != self.primary or self.table is None:
            return
        self.done += 1
        self.t_last = doc["time"]
        self.table.event(doc)
        self._bar()

    def _stop(self, doc):
        if self.start_doc is None or doc.get("run_start") != self.start_doc["uid"]:
            return
        if self.table is not None:
            self.table.stop(doc)
        self._write(
            f"scan {self.start_doc.get('scan_id')}: {doc.get('exit_status')}, "
            f"{self.done} points in {doc['time'] - self.t0:.1f} s"
        )
        self.start_doc = None


class LivePlot:
    """Stats total and max v. motor (or the grid map) and the latest frame, thumbnailed."""

    def __init__(self, out: str | None = None, refresh: float = 1.0, thumb: int = 256):
        import matplotlib

        if out:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt, self.out, self.refresh, self.thumb = plt, out, refresh, thumb
        self.fig, (self.ax_data, self.ax_frame) = plt.subplots(1, 2, figsize=(11, 4.5))
        self._cbar = None
        self._twin = None
        self._reset()
        self.last_draw = 0.0
        if not out:
            plt.ion()
            plt.show(block=False)

    def _reset(self) -> None:
        self.start: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self.resource: dict[str, Any] | None = None
        self.last_datum: dict[str, Any] | None = None
        self.frame = None
        self.frame_point = None
        self.frame_step = 1
        if getattr(self, "_cbar", None) is not None:
            self._cbar.remove()
            self._cbar = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self._reset()
            self.start = doc
        elif name == "resource" and doc.get("spec") == "AD_HDF5":
            self.resource = doc
        elif name == "datum":
            self.last_datum = doc
        elif name == "descriptor" and doc.get("name") == "primary":
            self.start["_primary"] = doc["uid"]
        elif name == "event" and doc.get("descriptor") == self.start.get("_primary"):
            self.rows.append(doc["data"])
        if name in ("event", "stop") and (
            name == "stop" or time.monotonic() - self.last_draw >= self.refresh
        ):
            self.draw()

    # -- the latest frame, from the detector file (outside the run, at the refresh rate)
    def _read_frame(self) -> None:
        if not self.resource or not self.last_datum:
            return
        import h5py
        import hdf5plugin  # noqa: F401 - LZ4

        path = Path(self.resource["root"]) / self.resource["resource_path"]
        fpp = int(self.resource.get("resource_kwargs", {}).get("frame_per_point", 1))
        point = int(self.last_datum["datum_kwargs"].get("point_number", 0))
        with (
            contextlib.suppress(OSError, KeyError, ValueError),
            h5py.File(path, "r", locking=False) as f,
        ):
            data = f["/entry/data/data"]
            index = min(point * fpp + fpp - 1, data.shape[0] - 1)
            if index >= 0:
                step = max(1, max(data.shape[1:]) // self.thumb)
                self.frame = data[index, ::step, ::step]
                self.frame_step = step
                self.frame_point = index // fpp + 1

    def _columns(self) -> tuple[list[str], list[str]]:
        keys = list(self.rows[0]) if self.rows else []
        stats = [k for k in keys if k.endswith("_stats1_total")]
        stats += [k for k in keys if k.endswith("_stats1_max_value")]  # total first
        motors = [m for m in self.start.get("motors") or () if m in keys]
        return motors, stats

    def draw(self) -> None:
        self.last_draw = time.monotonic()
        self._read_frame()
        ax = self.ax_data
        ax.clear()
        if self._twin is not None:
            self._twin.remove()
            self._twin = None
        motors, stats = self._columns()
        plan = self.start.get("adscan_plan") or self.start.get("plan_name", "")
        title = f"scan {self.start.get('scan_id')} {plan}"
        shape = self.start.get("shape") or ()
        if self.rows and len(shape) == 2 and len(motors) >= 2 and stats:
            self._draw_grid(ax, motors, stats[0], shape)
        elif self.rows and stats:
            x = [r[motors[0]] for r in self.rows] if motors else list(range(1, len(self.rows) + 1))
            ax.plot(x, [r[stats[0]] for r in self.rows], "o-", color="C0", markersize=4)
            ax.set_ylabel(stats[0], color="C0")
            if len(stats) > 1:  # max on its own scale (the total is ~1e5 times larger)
                self._twin = ax.twinx()
                self._twin.plot(
                    x, [r[stats[1]] for r in self.rows], "s--", color="C1", markersize=4
                )
                self._twin.set_ylabel(stats[1], color="C1")
            ax.set_xlabel(motors[0] if motors else "point")
        ax.set_title(f"{title}: {len(self.rows)}/{self.start.get('num_points', '?')} points")
        axf = self.ax_frame
        axf.clear()
        if self.frame is not None:
            axf.imshow(self.frame, cmap="viridis")
            axf.set_title(
                f"latest frame (point {self.frame_point}, every {self.frame_step}th pixel)",
                fontsize=9,
            )
        else:
            axf.set_title("latest frame: not yet readable", fontsize=9)
        axf.set_xticks([])
        axf.set_yticks([])
        self.fig.tight_layout()
        if self.out:
            tmp = f"{self.out}.tmp.png"
            self.fig.savefig(tmp, dpi=80)
            os.replace(tmp, self.out)
        else:
            self.fig.canvas.draw_idle()
            self.fig.canvas.flush_events()

    def _draw_grid(self, ax, motors: list[str], key: str, shape) -> None:
        n0, n1 = int(shape[0]), int(shape[1])
        extents = self.start.get("extents") or [[0, n0 - 1], [0, n1 - 1]]
        snake = bool((self.start.get("snaking") or (False, False))[1])
        grid = np.full((n0, n1), np.nan)
        for i, row in enumerate(self.rows):
            r, c = divmod(i, n1)
            if snake and r % 2:
                c = n1 - 1 - c
            if r < n0:
                grid[r, c] = row[key]
        (y0, y1), (x0, x1) = extents[0], extents[1]
        image = ax.imshow(
            grid,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(x0, x1, y0, y1) if n0 > 1 and n1 > 1 else None,
        )
        if self._cbar is None:
            self._cbar = self.fig.colorbar(image, ax=ax, label=key)
        else:
            self._cbar.update_normal(image)
        ax.set_xlabel(motors[1])
        ax.set_ylabel(motors[0])


def watch(
    cfg: dict,
    *,
    plot: bool = False,
    out: str | None = None,
    once: bool = False,
    timeout: float | None = None,
    stream: TextIO = sys.stdout,
) -> int:
    """Follow runs from the proxy until Ctrl-C (``once``: until one run ends)."""
    from bluesky.callbacks.zmq import RemoteDispatcher

    from adscan.services.proxy import addresses, enabled

    if not enabled(cfg):
        print("adscan watch: live.proxy is off in iconfig.yml; no live documents", file=sys.stderr)
        return 2
    address = addresses(cfg)[1]
    live_plot = LivePlot(out=out) if (plot or out) else None
    watcher = Watcher(stream, live_plot)
    loop = asyncio.new_event_loop()
    dispatcher = RemoteDispatcher(address.split("://", 1)[1], loop=loop)
    state = {"exit": 0}

    def quit_soon(code: int = 0) -> None:
        state["exit"] = code
        task = getattr(dispatcher, "_task", None)
        if task is not None:
            task.cancel()

    def on_doc(name, doc):
        watcher(name, doc)
        if name == "stop":
            if once and watcher.runs_seen:
                loop.call_soon(quit_soon)
            else:
                watcher._write(WAITING.format(address=address))

    dispatcher.subscribe(on_doc)
    # said once the loop runs, i.e. once the SUB socket is connected (start() connects it)
    loop.call_soon(watcher._write, WAITING.format(address=address))
    if timeout:
        loop.call_later(
            timeout,
            lambda: (
                watcher._write(f"adscan watch: {timeout:.0f} s without a finished run, giving up"),
                quit_soon(1 if not watcher.runs_seen else 0),
            ),
        )
    try:
        dispatcher.start()
    except (asyncio.CancelledError, KeyboardInterrupt):
        pass
    finally:
        if not dispatcher.closed:
            with contextlib.suppress(Exception):
                dispatcher.stop()
    return state["exit"]


def main_watch(cfg: dict, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="adscan watch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--plot", action="store_true", help="open a live matplotlib window")
    parser.add_argument(
        "--out",
        metavar="FILE.png",
        help="write the live plot to this PNG at each refresh (no window)",
    )
    parser.add_argument("--once", action="store_true", help="exit when the next run ends")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    args = parser.parse_args(argv)
    return watch(cfg, plot=args.plot, out=args.out, once=args.once, timeout=args.timeout)
