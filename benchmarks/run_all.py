"""Run adscan's benchmarks, print each table, and write benchmarks/results/*.json.

Usage::

    python benchmarks/run_all.py --quick        # CI-sized, about 3 minutes
    python benchmarks/run_all.py                # full (scan grid 5/50/500 points x 0.01/0.1 s,
                                                #  1,000 queue items, 500-point read-back)
    python benchmarks/run_all.py scans queue    # some of them
    python benchmarks/run_all.py --markdown     # also write benchmarks/RESULTS.md from the JSON

Each benchmark runs in its own process with its own private service (loopback CA port,
PV prefixes, Redis/ZMQ ports, data directory), one after the other.  SIGTERM or Ctrl-C
passes SIGTERM on to the running benchmark and waits for it to stop its service.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
import _common  # noqa: E402,F401 - line-buffered output; SIGTERM/SIGHUP -> KeyboardInterrupt

BENCHES = {
    "scans": "bench_scans.py",
    "datapath": "bench_datapath.py",
    "queue": "bench_queue.py",
    "readback": "bench_readback.py",
    "simulator": "bench_simulator.py",
    "points": "bench_points.py",  # per point, fixed cost, queue hand-off (issue 14)
    "tiled": "bench_tiled.py",
}
DEFAULT = ["scans", "datapath", "queue", "readback"]
NOISE = (
    "CA.Client.Exception",
    'Warning: "Virtual circuit',
    'Context: "',
    "Source File:",
    "Current Time:",
    "......",
    "CA Repeater",
    "**** ",
    "CA client library is unable",
    "Silence this message",
    "or by calling ca_pend_event",
)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({cpu}){mem}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def run(name: str, quick: bool) -> tuple[int, float]:
    argv = [sys.executable, "-u", str(HERE / BENCHES[name])]
    if quick and name != "simulator":
        argv.append("--quick")
    print(f"\n=== {name}: {' '.join(argv[2:])}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        for line in proc.stdout:
            if not any(n in line for n in NOISE):
                print(f"[{time.monotonic() - t0:6.1f} s] {line}", end="", flush=True)
        rc = proc.wait()
    except BaseException:
        stop_child(proc)
        raise
    return rc, time.monotonic() - t0


def stop_child(proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """SIGTERM to a benchmark, then wait while it stops its service (SIGKILL would orphan it)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)  # drained, so the child never blocks on it
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    for line in (out or "").splitlines():
        if not any(n in line for n in NOISE):
            print(f"  {line}", flush=True)


def markdown(names: list[str]) -> str:
    """The tables of ``names`` (from results/*.json) as Markdown."""
    out = [f"Machine: {machine()}.", ""]
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(data.get("time", 0)))
        mode = " (quick)" if data.get("quick") else ""
        out += [f"### {name}{mode} — {when}", "", "| what | value | unit |", "|---|---|---|"]
        for row in data["rows"]:
            v = row["value"]
            shown = f"{v:,.3f}" if isinstance(v, float) else str(v)
            out.append(f"| {row['what'].strip()} | {shown} | {row['unit']} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default: {' '.join(DEFAULT)})")
    ap.add_argument("--quick", action="store_true", help="CI-sized runs (about 3 minutes)")
    ap.add_argument(
        "--markdown", action="store_true", help="print the result tables as Markdown at the end"
    )
    args = ap.parse_args(argv)
    names = args.names or DEFAULT
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHES)}")
    print(
        f"adscan benchmarks ({'quick' if args.quick else 'full'}): {', '.join(names)}\n{machine()}",
        flush=True,
    )
    t0 = time.monotonic()
    status = {}
    for i, name in enumerate(names, 1):
        print(f"\n[{i}/{len(names)}] {name} ...", flush=True)
        rc, secs = run(name, args.quick)
        status[name] = (rc, secs)
    print(f"\nadscan benchmarks done in {time.monotonic() - t0:.0f} s:")
    for name, (rc, secs) in status.items():
        print(
            f"  {name:<10} {'ok' if rc == 0 else f'FAILED ({rc})':<12} {secs:6.0f} s  "
            f"-> {RESULTS / (name + '.json')}"
        )
    if args.markdown:
        print("\n" + markdown(names))
    return 0 if all(rc == 0 for rc, _ in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
