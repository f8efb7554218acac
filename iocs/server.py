"""The simulated beamline: a motor IOC and an area-detector IOC, as two processes.

``adscan ioc --prefix-motors gp: --prefix-ad kad: --data-dir DIR [--port P]`` starts

* the motor IOC (caproto, ``iocs/motor.py``: ``gp:m1`` ... ``gp:mN``) on CA port P, and
* the AD IOC (softioc, ``iocs/ad_ioc.py``: ``kad:cam1:`` ... every plugin of the table) on
  CA port ``--ad-port`` (default P + 2) with ``kad:Pva1:Image`` over pvAccess on UDP port
  ``--pva-port`` (default P + 3, TCP P + 4),

all on 127.0.0.1 only (``adscan.epics_env`` makes clients search both CA ports), and prints
one ``READY ...`` line on stdout once every PV of both answers a Channel Access client.
SIGTERM or SIGINT stops both children (the AD IOC closes open HDF5 files first).
The previous all-caproto AD simulator (``--ad-impl caproto``) is gone: its figures beside the
softioc AD are kept in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from adscan import epics_env

logger = logging.getLogger("adscan.ioc")

#: Motor-record fields clients use; checked at start-up with the record names themselves.
MOTOR_FIELDS = (".VAL", ".RBV", ".DMOV", ".MOVN", ".STOP", ".VELO", ".HLM", ".LLM")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from adscan.core.config import DEFAULT_ICONFIG, load_raw_iconfig

    ioc = load_raw_iconfig(DEFAULT_ICONFIG)["ioc"]  # startup/iconfig.yml: the one source
    rows, cols = ioc["frame_shape"]
    p = argparse.ArgumentParser(prog="adscan ioc", description=__doc__.splitlines()[0])
    p.add_argument(
        "--prefix-motors",
        default=ioc["motors_prefix"],
        help=f"motor record prefix ({ioc['motors_prefix']})",
    )
    p.add_argument(
        "--motor-count",
        type=int,
        default=ioc["motor_count"],
        help=f"number of motors m1..mN ({ioc['motor_count']}), unless --motor-names",
    )
    p.add_argument(
        "--motor-names",
        default=None,
        help="comma-separated motor record names after the prefix (m1,m2,m3,m4); "
        "any legal EPICS record-name characters, e.g. 'Mtr'",
    )
    p.add_argument(
        "--bits",
        type=int,
        default=0,
        help="also serve N synApps bo records <prefix-motors>gp:bit1..N (0)",
    )
    p.add_argument(
        "--velocity",
        type=float,
        default=ioc["motor_velocity"],
        help=f"motor velocity, units/s ({ioc['motor_velocity']:g})",
    )
    p.add_argument(
        "--prefix-ad", default=ioc["ad_prefix"], help=f"area detector prefix ({ioc['ad_prefix']})"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/tmp/adscan-ioc"),
        help="directory the HDF5 plugin writes below (its initial FilePath)",
    )
    p.add_argument("--rows", type=int, default=rows, help=f"image rows ({rows})")
    p.add_argument("--cols", type=int, default=cols, help=f"image columns ({cols})")
    p.add_argument(
        "--data-type", default=ioc["data_type"], help=f"image data type ({ioc['data_type']})"
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="CA server port of the motors (default: EPICS_CA_SERVER_PORT or 5064)",
    )
    p.add_argument(
        "--ad-port",
        type=int,
        default=None,
        help="CA server port of the area detector (default: port + 2)",
    )
    p.add_argument(
        "--pva-port",
        type=int,
        default=None,
        help="pvAccess UDP port of Pva1 (default: port + 3; TCP: this + 1)",
    )
    p.add_argument(
        "--role", choices=("launcher", "motors"), default="launcher", help=argparse.SUPPRESS
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for every PV to answer before giving up",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log caproto at INFO")
    return p.parse_args(argv)


def motor_names(args: argparse.Namespace) -> list[str]:
    """The motor record names after the prefix: ``--motor-names``, else m1..m<count>."""
    if args.motor_names:
        return [n.strip() for n in args.motor_names.split(",") if n.strip()]
    return [f"m{i + 1}" for i in range(args.motor_count)]


def build(args: argparse.Namespace):
    """Create the motor records (and gp bits); return (motors, pvdb)."""
    from adscan.iocs.gp_extras import make_bits
    from adscan.iocs.motor import make_motors

    try:
        motors = make_motors(args.prefix_motors, names=motor_names(args), velocity=args.velocity)
    except ValueError as ex:
        raise SystemExit(f"adscan ioc: {ex}") from None
    extras = [make_bits(args.prefix_motors, args.bits)] if args.bits > 0 else []
    pvdb: dict = {}
    for group in (*motors, *extras):
        pvdb.update(group.pvdb)
    return motors, pvdb


def wait_until_answering(names: list[str], timeout: float) -> float:
    """Connect a CA client to every name; return the seconds it took."""
    from caproto.threading.client import Context

    t0 = time.monotonic()
    ctx = Context()
    try:
        pvs = ctx.get_pvs(*names, timeout=timeout)
        deadline = t0 + timeout
        for pv in pvs:
            pv.wait_for_connection(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        ctx.disconnect()
    return time.monotonic() - t0


async def serve(args: argparse.Namespace) -> int:
    """The motor IOC, the launcher's ``--role motors`` child (the launcher checks its PVs)."""
    from caproto.asyncio.server import Context

    if "CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC" not in os.environ:
        # caproto batches monitors for 10 ms by default: every DMOV change would reach
        # clients 10 ms late
        import caproto.server.common as caproto_server_common

        caproto_server_common.HIGH_LOAD_TIMEOUT = 0.001
    motors, pvdb = build(args)
    ctx = Context(pvdb, interfaces=["127.0.0.1"])
    server = asyncio.create_task(ctx.run(log_pv_names=False))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.sleep(0.05)
    print(f"READY-MOTORS names={','.join(m.prefix for m in motors)} pvs={len(pvdb)}", flush=True)
    await asyncio.wait(
        {asyncio.create_task(stop.wait()), server}, return_when=asyncio.FIRST_COMPLETED
    )
    # nothing to save: leave at once, so clients see the circuits close (a cancelled
    # server could keep its sockets open and clients would wait for CA's 30 s timeout)
    sys.stdout.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    epics_env.apply_loopback(ca_port=args.port, ad_port=args.ad_port)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.role == "launcher":
        from adscan.iocs.launcher import launch

        return launch(args, wait_until_answering, MOTOR_FIELDS)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
