"""Profile one in-process scan of the adscan profile with pyinstrument (where the time goes).

Usage: ``python benchmarks/profile_scan.py [plan] [points] [--acquire S] [--html out.html]``.
Needs ``pyinstrument`` in the venv (not a runtime dependency).  Prints the call tree of the
RunEngine's event-loop thread.
"""

from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import Bench  # noqa: E402
from bench_scans import plan_call, plan_spec, position, set_acquire  # noqa: E402


def on_loop(loop, fn):
    """Call ``fn`` in the RunEngine's event-loop thread and wait for it."""
    import concurrent.futures

    fut = concurrent.futures.Future()

    def call():
        try:
            fut.set_result(fn())
        except Exception as ex:  # noqa: BLE001
            fut.set_exception(ex)

    loop.call_soon_threadsafe(call)
    return fut.result(10)


def collapsed_summary(path: str, top: int = 25) -> str:
    """Inclusive share of samples per function in py-spy's collapsed (raw) output."""
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        n = int(n)
        total += n
        for fn in set(stack.split(";")):
            incl[fn] += n
    out = [f"IOC samples: {total}"]
    for fn, n in incl.most_common(top):
        out.append(f"  {100 * n / max(total, 1):5.1f} %  {fn[:150]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan", nargs="?", default="adscan_scan")
    ap.add_argument("points", nargs="?", type=int, default=50)
    ap.add_argument("--acquire", type=float, default=0.01)
    ap.add_argument("--html", default=None)
    ap.add_argument(
        "--ioc",
        default=None,
        metavar="RAW",
        help="also sample the IOC process with py-spy into RAW (collapsed stacks)",
    )
    args = ap.parse_args(argv)
    from pyinstrument import Profiler

    bench = Bench(log=lambda s: print(s, flush=True))
    try:
        bench.start(queue=False)
        set_acquire(bench, args.acquire)
        a, k, pts = plan_spec(args.plan, args.points)
        bench.run_inproc(plan_call(bench, "adscan_count", [], {"num": 2, "frames": 3}))
        position(bench, pts)
        # the RunEngine runs its plan in its own event-loop thread: profile that thread
        prof = Profiler(interval=0.0005, async_mode="disabled")
        loop = bench.ns["RE"].loop
        spy = None
        if args.ioc:
            from adscan.services import ioc_pid

            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "-p",
                    str(ioc_pid(bench.cfg)),
                    "-r",
                    "500",
                    "-f",
                    "raw",
                    "-o",
                    args.ioc,
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        on_loop(loop, prof.start)
        r = bench.run_inproc(plan_call(bench, args.plan, a, k))
        on_loop(loop, prof.stop)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
            print(collapsed_summary(args.ioc))
        print(f"{args.plan} {args.points} points: {r['stop'] - r['start']:.2f} s start->stop")
        print(prof.output_text(unicode=False, color=False, show_all=False))
        if args.html:
            Path(args.html).write_text(prof.output_html())
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
