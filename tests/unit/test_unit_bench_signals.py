"""Benchmarks stop their service on SIGTERM: ``benchmarks/_common`` turns the signal into
``KeyboardInterrupt`` (so ``try/finally`` runs), and a signal during the shutdown block
(``shielded``) waits until the block is done."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, sys.argv[1])
    import _common
    try:
        print("ready", flush=True)
        time.sleep(30)
    finally:
        with _common.shielded():
            os.kill(os.getpid(), signal.SIGTERM)  # a second signal, during the shutdown
            time.sleep(0.2)
            print("stopped", flush=True)
    """
)


def test_sigterm_runs_finally_and_shutdown_completes():
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(BENCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert out == "stopped\n", (out, err)
    assert "KeyboardInterrupt: benchmark stopped by SIGTERM" in err, err
    assert proc.returncode == -signal.SIGINT  # how Python ends on an uncaught KeyboardInterrupt
