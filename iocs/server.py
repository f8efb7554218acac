"""One caproto server for the simulated beamline: motor records and the area detector.

``adscan ioc --prefix-motors gp: --prefix-ad kad: --data-dir DIR`` serves
``gp:m1`` ... ``gp:mN`` and ``kad:cam1:`` ... ``kad:Stats1:`` on 127.0.0.1 only, and
prints ``READY ...`` on stdout once every PV answers a Channel Access client.
SIGTERM or SIGINT closes any open HDF5 file before the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

from adscan import epics_env

logger = logging.getLogger("adscan.ioc")

#: Motor-record fields clients use; checked at start-up with the record names themselves.
MOTOR_FIELDS = (".VAL", ".RBV", ".DMOV", ".MOVN", ".STOP", ".VELO", ".HLM", ".LLM")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="adscan ioc", description=__doc__.splitlines()[0])
    p.add_argument("--prefix-motors", default="gp:", help="motor record prefix (gp:)")
    p.add_argument("--motor-count", type=int, default=None,
                   help="number of motors m1..mN (4); ignored with --motor-names")
    p.add_argument("--motor-names", default=None,
                   help="comma-separated motor record names after the prefix (m1,m2,m3,m4); "
                        "any legal EPICS record-name characters, e.g. 'Mtr'")
    p.add_argument("--bits", type=int, default=0,
                   help="also serve N synApps bo records <prefix-motors>gp:bit1..N (0)")
    p.add_argument("--velocity", type=float, default=2.0, help="motor velocity, units/s (2)")
    p.add_argument("--prefix-ad", default="kad:", help="area detector prefix (kad:)")
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/adscan-ioc"),
                   help="directory the HDF5 plugin writes below (its initial FilePath)")
    p.add_argument("--rows", type=int, default=1024, help="image rows (1024)")
    p.add_argument("--cols", type=int, default=1024, help="image columns (1024)")
    p.add_argument("--data-type", default="UInt8", help="image data type (UInt8)")
    p.add_argument("--port", type=int, default=None,
                   help="CA server port (default: EPICS_CA_SERVER_PORT or 5064)")
    p.add_argument("--ready-timeout", type=float, default=60.0,
                   help="seconds to wait for every PV to answer before giving up")
    p.add_argument("-v", "--verbose", action="store_true", help="log caproto at INFO")
    return p.parse_args(argv)


def build(args: argparse.Namespace):
    """Create the motor records and the detector; return (motors, detector, pvdb)."""
    from adscan.iocs.gp_extras import make_bits
    from adscan.iocs.motor import make_motors
    from adscan.iocs.simdet import SimDetectorIOC

    if args.motor_names:
        motor_names = [n.strip() for n in args.motor_names.split(",") if n.strip()]
    else:
        motor_names = [f"m{i + 1}" for i in range(4 if args.motor_count is None
                                                  else args.motor_count)]
    try:
        motors = make_motors(args.prefix_motors, names=motor_names, velocity=args.velocity)
    except ValueError as ex:
        raise SystemExit(f"adscan ioc: {ex}") from None
    names = motor_names

    def positions() -> dict[str, float]:
        return {name: m.position for name, m in zip(names, motors, strict=True)}

    args.data_dir.mkdir(parents=True, exist_ok=True)
    detector = SimDetectorIOC(
        args.prefix_ad,
        data_dir=args.data_dir,
        frame_shape=(args.rows, args.cols),
        data_type=args.data_type,
        positions=positions,
    )
    pvdb: dict = {}
    extras = [make_bits(args.prefix_motors, args.bits)] if args.bits > 0 else []
    for group in (*motors, *extras, detector):
        overlap = pvdb.keys() & group.pvdb.keys()
        if overlap:
            raise SystemExit(f"adscan ioc: duplicate PV names {sorted(overlap)[:5]}")
        pvdb.update(group.pvdb)
    return motors, detector, pvdb


def check_names(pvdb: dict, motor_prefixes: list[str]) -> list[str]:
    """Every served name plus the motor fields clients rely on."""
    names = list(pvdb)
    names += [f"{p}{field}" for p in motor_prefixes for field in MOTOR_FIELDS]
    return names


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
    from caproto.asyncio.server import Context

    motors, detector, pvdb = build(args)
    ctx = Context(pvdb, interfaces=["127.0.0.1"])
    server = asyncio.create_task(ctx.run(log_pv_names=False))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    names = check_names(pvdb, [m.prefix for m in motors])
    t_start = time.monotonic()
    checker = loop.run_in_executor(None, wait_until_answering, names, args.ready_timeout)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({checker, waiter, server}, return_when=asyncio.FIRST_COMPLETED)
    if checker in done:
        try:
            seconds = checker.result()
        except Exception as ex:  # noqa: BLE001 - reported, then exit non-zero
            print(f"adscan ioc: PVs did not answer within {args.ready_timeout} s: {ex}",
                  file=sys.stderr, flush=True)
            stop.set()
            await _shutdown(server, detector)
            return 1
        print(
            f"READY adscan-ioc pvs={len(pvdb)} motors={','.join(m.prefix for m in motors)} "
            f"detector={args.prefix_ad} port={ctx.port} data_dir={args.data_dir} "
            f"startup_s={time.monotonic() - t_start:.2f} check_s={seconds:.2f}",
            flush=True,
        )
        await asyncio.wait({waiter, server}, return_when=asyncio.FIRST_COMPLETED)
    await _shutdown(server, detector)
    return 0


async def _shutdown(server: asyncio.Task, detector) -> None:
    try:
        await detector.shutdown()
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    epics_env.apply_loopback(ca_port=args.port)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
