"""The ``adscan`` command: run the area detector v. motor scan service.

  adscan up        start Redis, Tiled, the (simulated) IOC and the RE Manager; open the env.
  adscan status    show every service, its address, pid and log, and where data goes
  adscan down      stop what `adscan up` started (Redis only if adscan started it)
  adscan ioc       run the simulated IOC in the foreground
  adscan demo      bring the service up and run the how-to's four plans through the queue
  adscan plot      PNG plots of a run          adscan verify   check a run's data end to end
  adscan watch     the running scan, live (table, progress bar, --plot / --out FILE.png)
  adscan bench     benchmarks (see benchmarks/RESULTS.md)

Settings: startup/iconfig.yml, or the file named by $ADSCAN_ICONFIG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _cfg(args: argparse.Namespace) -> dict:
    from adscan.core.config import load_iconfig

    return load_iconfig(args.iconfig)


def _print(infos, as_json: bool) -> None:
    from adscan import services

    if as_json:
        print(json.dumps([i.as_dict() for i in infos], indent=1))
    else:
        print(services.format_table(infos))


def cmd_up(args: argparse.Namespace) -> int:
    from adscan import services

    cfg = _cfg(args)
    t0 = time.monotonic()
    infos = [services.ensure_redis(cfg)]
    print(f"redis       {infos[-1].state:8s} {infos[-1].address}", flush=True)
    from adscan.core.catalog_settings import tiled_enabled

    if tiled_enabled(cfg):  # the data service, before the worker that writes into it
        from adscan.tiled import server as tiled_server

        for info in tiled_server.ensure(cfg):
            infos.append(info)
            print(f"{info.name:<11} {info.state:8s} {info.address} {info.detail}", flush=True)
    if not args.no_ioc:
        infos.append(services.ensure_ioc(cfg))
        print(
            f"ioc         {infos[-1].state:8s} {infos[-1].address} {infos[-1].detail}", flush=True
        )
        if infos[-1].state == "down":
            print(
                "adscan up: WARNING the IOC does not answer; the environment may fail to open",
                file=sys.stderr,
            )
    from adscan.services import proxy

    infos.append(proxy.ensure_proxy(cfg))
    print(f"zmq-proxy   {infos[-1].state:8s} {infos[-1].address}", flush=True)
    infos.append(services.ensure_re_manager(cfg))
    print(f"re-manager  {infos[-1].state:8s} {infos[-1].address}", flush=True)
    if not args.no_environment:
        st = services.open_environment(cfg, timeout=args.timeout)
        print(f"environment open     ({st.get('manager_state')})", flush=True)
    print(f"adscan up: ready in {time.monotonic() - t0:.1f} s; logs in {services.logs_dir(cfg)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from adscan import services

    infos = services.status(_cfg(args), check_ioc=not args.no_ioc)
    _print(infos, args.json)
    core = [i for i in infos if i.name in ("redis", "re-manager", "tiled", "postgres")]
    return 0 if all(i.state in ("up", "external") for i in core) else 3


def cmd_down(args: argparse.Namespace) -> int:
    from adscan import services

    infos = services.down(_cfg(args), timeout=args.timeout)
    _print(infos, args.json)
    return 0 if all(i.state == "down" for i in infos) else 1  # never success with one left


def cmd_ioc(args: argparse.Namespace) -> int:
    from adscan.iocs import server  # the lead's module; imported only when used

    return server.main(args.ioc_args) or 0


def cmd_demo(args: argparse.Namespace) -> int:
    from adscan.demo import run_demo

    return run_demo(_cfg(args), clear_queue=args.clear_queue)


def _forward(args: argparse.Namespace) -> list[str]:
    return [*(["--iconfig", args.iconfig] if args.iconfig else []), *args.rest]


def cmd_plot(args: argparse.Namespace) -> int:
    from adscan.data.plots import main_plot

    return main_plot(_forward(args)) or 0


def cmd_verify(args: argparse.Namespace) -> int:
    from adscan.data.verify import main_verify

    return main_verify(_forward(args)) or 0


def cmd_watch(args: argparse.Namespace) -> int:
    from adscan.live.watch import main_watch

    return main_watch(_cfg(args), args.rest) or 0


def cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    from adscan.core.config import REPO

    script = REPO / "benchmarks" / "run_all.py"
    return subprocess.call([sys.executable, str(script), *args.rest])


def cmd_catalog(args: argparse.Namespace) -> int:
    """``adscan catalog import [FILE ...]``: old msgpack runs and writer backups into Tiled."""
    from adscan.tiled.importer import import_runs

    results = import_runs(_cfg(args), args.files or None)
    for r in results:
        print(f"{r.status:<28} {r.uid or '-':<36} {r.path}")
    failed = [r for r in results if r.status.startswith("failed")]
    print(f"adscan catalog import: {len(results) - len(failed)} of {len(results)} file(s) done")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adscan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--iconfig",
        help="instrument configuration (default $ADSCAN_ICONFIG or startup/iconfig.yml)",
    )
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("up", help="start the services and open the RE environment")
    p.add_argument("--no-ioc", action="store_true", help="neither start nor check the IOC")
    p.add_argument(
        "--no-environment", action="store_true", help="do not open the RE Worker environment"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the environment to open (default 120)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("status", help="show services, addresses, pids, logs, data locations")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-ioc", action="store_true", help="skip the CA check of the IOC")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("down", help="stop what `adscan up` started")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds before SIGTERM escalates to SIGKILL (default 10)",
    )
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("ioc", help="run the simulated IOC in the foreground", add_help=False)
    p.add_argument(
        "ioc_args",
        nargs=argparse.REMAINDER,
        help="options of adscan.iocs.server (see `adscan ioc --help`)",
    )
    p.set_defaults(func=cmd_ioc)

    p = sub.add_parser("demo", help="bring the service up and run the how-to's four plans")
    p.add_argument(
        "--clear-queue",
        action="store_true",
        help="empty the queue first (items left there would otherwise run first)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "catalog",
        help="the data service: `adscan catalog import [FILE ...]` "
        "puts msgpack runs and Tiled-writer backups into Tiled",
    )
    p.add_argument("action", choices=["import"])
    p.add_argument(
        "files",
        nargs="*",
        help="run files (.msgpack, .jsonl); default: every "
        "catalog.directory/*.msgpack and <tiled.directory>/backup/*.jsonl",
    )
    p.set_defaults(func=cmd_catalog)

    for name, func, text in (
        ("plot", cmd_plot, "PNG plots of a run (`adscan plot -1 --out DIR`)"),
        ("verify", cmd_verify, "check a run's images, stats and SPEC scan (`adscan verify -1`)"),
        ("watch", cmd_watch, "the running scan, live: table, progress, `--plot`/`--out F.png`"),
        ("bench", cmd_bench, "run the benchmarks (`adscan bench --quick`)"),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "ioc":  # every option goes to adscan.iocs.server, --help included
        args.ioc_args = [*extra, *args.ioc_args] if extra else args.ioc_args
    elif args.command in ("plot", "verify", "bench", "watch"):
        args.rest = [*extra, *args.rest]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    from adscan.services import ServiceError

    try:
        return args.func(args)
    except ServiceError as exc:
        print(f"adscan {args.command}: ERROR {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
