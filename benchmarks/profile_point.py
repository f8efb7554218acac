"""Where a point's time goes: phases per point, from a RunEngine msg hook and CA monitors.

One in-process run of an adscan plan on a private simulated IOC.  Every RunEngine message is
stamped as the RunEngine takes it (``RE.msg_hook``); ``AcquireBusy`` and each motor's ``DMOV``
are stamped twice, at the IOC (the CA time stamp) and when the client's callback runs.  Both
clocks are this machine's, so the differences are real latencies.  Phases (medians over the
points, ms):

* ``trigger -> busy=1 @IOC``: from the trigger message to AcquireBusy=1 at the IOC (the
  trigger status set-up and the Acquire put reaching the IOC);
* ``acquire @IOC - ideal``: AcquireBusy 1 -> 0 at the IOC minus frames x AcquirePeriod (the
  simulator's own overhead: frame pipeline, plugins);
* ``busy=0 @IOC -> client``: AcquireBusy=0 posted -> the client's callback;
* ``busy=0 client -> RE wakes``: the callback -> the RunEngine's next message after ``wait``;
* ``read``: ``create`` -> ``save`` (the devices' ``read()``);
* ``emit``: ``save`` -> the next message (the event document through every callback);
* ``move: set -> DMOV=0 @IOC``, ``move @IOC - ideal`` (DMOV 0 -> 1 at the IOC minus the
  trapezoid), ``DMOV=1 @IOC -> client``, ``DMOV=1 client -> RE wakes``, ``RE wakes ->
  trigger``;
* per run: ``stage``, ``unstage``, open_run -> first trigger, last save -> close_run.

Usage: ``python benchmarks/profile_point.py [plan] [points] [--frames N] [--acquire S]
[--size PIXELS] [--runs N]``.  Prints a table; ``--json FILE`` writes the raw phases.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import Bench, move_time  # noqa: E402
from bench_scans import plan_call, position  # noqa: E402


class Stamps:
    """Time-stamped RunEngine messages and PV transitions of one run."""

    def __init__(self) -> None:
        self.msgs: list[tuple[float, str, str]] = []
        self.subs: list[tuple[object, int]] = []
        self.pv: dict[str, list[tuple[float, float, float]]] = {}  # name -> (ioc, client, value)
        self.lock = threading.Lock()

    def hook(self, msg) -> None:
        self.msgs.append((time.time(), msg.command, getattr(msg.obj, "name", "")))

    def watch(self, name: str, signal) -> None:
        self.pv[name] = []

        def cb(value=None, timestamp=None, **_kw):
            now = time.time()
            with self.lock:
                self.pv[name].append((float(timestamp or now), now, float(value)))

        self.subs.append((signal, signal.subscribe(cb, run=False)))

    def close(self) -> None:
        for signal, cid in self.subs:
            signal.unsubscribe(cid)
        self.subs.clear()

    def edges(self, name: str, value: float) -> list[tuple[float, float]]:
        """(IOC time, client time) of every transition of ``name`` to ``value``."""
        out, last = [], None
        for ioc, client, v in self.pv[name]:
            if v == value and last != value:
                out.append((ioc, client))
            last = v
        return out


def _after(times: list[tuple[float, float]], t: float, key: int = 0):
    """The first (ioc, client) pair after ``t`` (by IOC time if key=0, client time if 1)."""
    for pair in times:
        if pair[key] >= t:
            return pair
    return None


def _next_msg(msgs, i):
    return msgs[i + 1][0] if i + 1 < len(msgs) else float("nan")


def phases(
    st: Stamps,
    det_name: str,
    motors: list[str],
    frames: int,
    period: float,
    velocity: float,
    accel: float,
    positions: list[dict],
) -> dict[str, list[float]]:
    """Per-point and per-run phases (seconds) from the stamps of one run."""
    msgs = st.msgs
    out: dict[str, list[float]] = {}

    def add(key, value):
        if value == value:  # not NaN
            out.setdefault(key, []).append(value)

    busy1, busy0 = st.edges("busy", 1), st.edges("busy", 0)
    dmov0 = {m: st.edges(f"{m}_dmov", 0) for m in motors}
    dmov1 = {m: st.edges(f"{m}_dmov", 1) for m in motors}
    point = -1
    in_run = False
    step_sets: dict[int, dict[str, tuple]] = {}  # step -> motor -> (set, DMOV=1 ioc, client)
    for i, (t, cmd, obj) in enumerate(msgs):
        nxt = _next_msg(msgs, i)
        if cmd in ("stage", "unstage") and obj == det_name:
            add(f"run: {cmd} {obj}", nxt - t)
        if cmd == "open_run":
            in_run, t_open = True, t
        if cmd == "close_run":
            in_run = False
            add("run: close_run -> next msg", nxt - t)
        if not in_run:
            continue
        if cmd == "set" and obj in motors:
            d0 = _after(dmov0[obj], t, key=1)
            d1 = _after(dmov1[obj], t, key=1)
            if d0 and d1 and d1[0] >= d0[0]:
                add(f"move {obj}: set -> DMOV=0 @IOC", d0[0] - t)
                step = point + 1
                if 0 < step < len(positions):
                    dist = positions[step][obj] - positions[step - 1][obj]
                    add(
                        f"move {obj}: DMOV 0->1 @IOC - trapezoid",
                        d1[0] - d0[0] - move_time(dist, velocity, accel),
                    )
                add(f"move {obj}: DMOV=1 @IOC -> client", d1[1] - d1[0])
                step_sets.setdefault(point + 1, {})[obj] = (t, d1[0], d1[1])
                # the RunEngine's next message after the motors' wait
                j = next((k for k in range(i + 1, len(msgs)) if msgs[k][1] == "wait"), None)
                if j is not None:
                    add(f"move {obj}: DMOV=1 client -> RE wakes", _next_msg(msgs, j) - d1[1])
        if cmd == "trigger" and obj == det_name:
            point += 1
            if point == 0:
                add("run: open_run -> first trigger", t - t_open)
            b1 = _after(busy1, t, key=1)
            b0 = _after(busy0, t, key=1)
            if b1 and b0:
                add("trigger -> busy=1 @IOC", b1[0] - t)
                add("acquire @IOC - frames x period", b0[0] - b1[0] - frames * period)
                add("busy=0 @IOC -> client", b0[1] - b0[0])
                j = next((k for k in range(i + 1, len(msgs)) if msgs[k][1] == "wait"), None)
                if j is not None:
                    add("busy=0 client -> RE wakes", _next_msg(msgs, j) - b0[1])
            # previous point's end (its save's successor) -> this trigger
        if cmd == "create" and msgs[i - 1][1] == "wait":
            j = next((k for k in range(i + 1, len(msgs)) if msgs[k][1] == "save"), None)
            if j is not None:
                add("read (create -> save)", msgs[j][0] - t)
                add("emit (save -> next msg)", _next_msg(msgs, j) - msgs[j][0])
    # two motors per step: commanded together? completions serialized?
    for moved in step_sets.values():
        if len(moved) == 2:
            (s1, i1, c1), (s2, i2, c2) = moved.values()
            add("2 motors: set -> set (RunEngine)", abs(s2 - s1))
            add("2 motors: DMOV=1 @IOC, |m1 - m2|", abs(i2 - i1))
            add("2 motors: DMOV=1 at client, |m1 - m2|", abs(c2 - c1))
    # before the first point: where the run's set-up time goes, by message (summed)
    setup: dict[str, float] = {}
    for i, (t, cmd, obj) in enumerate(msgs):
        if cmd == "trigger" and obj == det_name:
            break
        if cmd not in ("stage", "unstage"):
            key = f"setup: {cmd} {obj}".rstrip()
            setup[key] = setup.get(key, 0.0) + (_next_msg(msgs, i) - t)
    for key, value in sorted(setup.items(), key=lambda kv: -kv[1])[:6]:
        add(key, value)
    saves = [t for t, cmd, _ in msgs if cmd == "save"]
    trig = [t for t, cmd, obj in msgs if cmd == "trigger" and obj == det_name]
    for a, b in zip(trig, trig[1:], strict=False):
        add("point: trigger -> next trigger", b - a)
    closes = [t for t, cmd, _ in msgs if cmd == "close_run"]
    if saves and closes:
        add("run: last save -> close_run", closes[-1] - saves[-1])
    return out


def spec(plan: str, n: int, frames: int) -> tuple[list, dict, list[dict]]:
    """(args, kwargs, positions) of ``plan`` with ``n`` points (bench_scans' geometry)."""
    from bench_scans import GRID, plan_spec

    if plan == "adscan_grid_scan" and n not in GRID:
        n2 = 5
        GRID[n] = (max(1, n // n2), n2)
    a, k, pts = plan_spec(plan, n)
    k["frames"] = frames
    return a, k, pts


def set_size(bench: Bench, size: int | None) -> None:
    """Detector region ``size`` x ``size`` (None: the full sensor)."""
    cam = bench.device("simdet").cam
    full_x, full_y = cam.max_size.max_size_x.get(), cam.max_size.max_size_y.get()
    x = min(size or full_x, full_x)
    y = min(size or full_y, full_y)
    cam.min_x.put(0, wait=True)
    cam.min_y.put(0, wait=True)
    cam.size.size_x.put(x, wait=True)
    cam.size.size_y.put(y, wait=True)


def profile(bench: Bench, plan: str, n: int, frames: int, acquire: float) -> dict:
    """One run of ``plan`` with every message and edge stamped; its phases (seconds)."""
    ns = bench.ns
    RE, det = ns["RE"], bench.device("simdet")
    motors = (
        ["m1", "m2"]
        if plan in ("adscan_scan2", "adscan_grid_scan")
        else (["m1"] if plan == "adscan_scan" else [])
    )
    st = Stamps()
    st.watch("busy", det.cam.acquire_busy)
    for m in motors:
        st.watch(f"{m}_dmov", bench.device(m).motor_done_move)
    a, k, pts = spec(plan, n, frames)
    position(bench, pts)
    RE.msg_hook = st.hook
    try:
        r = bench.run_inproc(plan_call(bench, plan, a, k))
    finally:
        RE.msg_hook = None
        st.close()
    st.msgs.append((r["t_return"], "end", ""))  # the last message (unstage) ends here
    st.msgs.insert(0, (r["t_call"], "call", "(RE called -> first msg)"))
    velocity = float(bench.device("m1").velocity.get())
    accel = float(bench.device("m1").acceleration.get())
    ph = phases(st, det.name, motors, frames, acquire, velocity, accel, pts)
    ph["run: start -> stop doc"] = [r["stop"] - r["start"]]
    return ph


def summarize(all_phases: list[dict[str, list[float]]]) -> dict[str, tuple[float, float, float]]:
    """Per phase: (median, min of run medians, max of run medians) in ms."""
    keys: list[str] = []
    for ph in all_phases:
        keys += [k for k in ph if k not in keys]
    out = {}
    for key in keys:
        meds = [statistics.median(ph[key]) * 1e3 for ph in all_phases if ph.get(key)]
        if meds:
            out[key] = (statistics.median(meds), min(meds), max(meds))
    return out


def print_table(title: str, summary: dict[str, tuple[float, float, float]]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in summary)
    for key, (med, lo, hi) in summary.items():
        print(f"  {key:<{width}}  {med:8.2f} ms  (runs {lo:.2f}-{hi:.2f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan", nargs="?", default="adscan_scan")
    ap.add_argument("points", nargs="?", type=int, default=30)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--acquire", type=float, default=0.01)
    ap.add_argument("--size", type=int, default=16, help="frame region in pixels (0: full)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from bench_scans import set_acquire

    bench = Bench(log=lambda s: print(s, flush=True))
    runs = []
    try:
        bench.start(queue=False)
        set_acquire(bench, args.acquire)
        set_size(bench, args.size or None)
        bench.run_inproc(plan_call(bench, "adscan_count", [], {"num": 2, "frames": 1}))
        for _ in range(args.runs):
            runs.append(profile(bench, args.plan, args.points, args.frames, args.acquire))
    finally:
        bench.stop()
    import os

    load = os.getloadavg()
    print_table(
        f"{args.plan}, {args.points} points x {args.frames} frames, "
        f"{args.size or 'full'} px, {args.acquire:g} s; median of {args.runs} runs; "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        summarize(runs),
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
