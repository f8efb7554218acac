"""A cam1: record group of the softioc AD IOC whose put dispatcher is slow (50 ms an item).

Run by ``test_ioc_posts_every_value.py``: ``python tests/slow_dispatch_ioc.py --port P
--prefix X [--unpatched]``.  Prints READY, reads ``go`` on stdin, then writes AcquireBusy
1 and 0 (10 ms apart) ``--cycles`` times from an IOC thread, as the driver does for a short
acquisition, prints DONE and the IOC core's callback-queue state (JSON), and exits at end
of stdin.  ``--unpatched`` writes without :func:`adscan.iocs.records.await_posted` (the
behaviour before the fix).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from adscan import epics_env


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--unpatched", action="store_true")
    args = p.parse_args()
    epics_env.apply_loopback(
        ca_port=args.port, repeater_port=epics_env.repeater_port_for(args.port)
    )

    from softioc import builder, softioc

    from adscan.iocs import callback_queue, records

    class SlowDispatcher(records.Dispatcher):
        """The IOC's own dispatcher, 50 ms late on every item (a loaded machine, made certain)."""

        def __call__(self, func, func_args=(), completion=None, completion_args=()):
            def late(*fargs):
                time.sleep(0.05)
                func(*fargs)

            super().__call__(late, func_args, completion, completion_args)

    if args.unpatched:
        records.await_posted = lambda *a, **k: True
    group = records.Group(args.prefix, "cam1:")
    builder.LoadDatabase()
    softioc.iocInit(SlowDispatcher(), enable_pva=False)
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    for _ in range(args.cycles):
        group.set("AcquireBusy", "Acquiring")
        time.sleep(0.01)
        group.set("AcquireBusy", "Done", edge=True)
        time.sleep(0.2)
    print("DONE", flush=True)
    print(json.dumps(callback_queue.status()), flush=True)
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
