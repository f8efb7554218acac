"""Full soak: N (default 200) queued adscan_scan runs through the real RE Manager, then checks.

Usage::

    .venv/bin/python benchmarks/soak.py [N]
    # same as: ADSCAN_SOAK_N=N ./run test tests/test_soak.py -s

Runs tests/test_soak.py with ``ADSCAN_SOAK_N=N`` in its own test session (private IOC, Redis,
RE Manager, data directory; loopback only), and writes the figures it prints (duration,
seconds per scan, RE Manager + worker RSS after the first 20 % and at the end) with the pass/fail
outcome to ``benchmarks/results/soak.json``.  Exit status: pytest's.  pytest's output is
shown as it comes; SIGTERM or Ctrl-C passes SIGINT on to pytest, whose fixtures then stop the
service.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 200
    env = dict(os.environ, ADSCAN_SOAK_N=str(n))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_soak.py",
            "-s",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        rc = proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # pytest tears its fixtures (the service) down
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    figures = None
    for line in lines:
        if line.startswith("soak figures: "):
            figures = json.loads(line.removeprefix("soak figures: "))
    summary = next((ln for ln in reversed(lines) if " passed" in ln or " failed" in ln), "")
    result = {
        "n": n,
        "exit_status": rc,
        "pytest": summary.strip("= "),
        "wall_seconds": round(time.monotonic() - t0, 1),
        "figures": figures,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return rc


if __name__ == "__main__":
    sys.exit(main())
