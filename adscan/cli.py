"""The ``adscan`` command: run the area detector v. motor scan service.

  adscan up        start Redis, the (simulated) IOC and the RE Manager; open the environment
  adscan status    show every service, its address, pid and log, and where data goes
  adscan down      stop what `adscan up` started (Redis only if adscan started it)
  adscan ioc       run the simulated IOC in the foreground
  adscan demo      run the how-to's scans through the queue server

Settings: startup/iconfig.yml, or the file named by $ADSCAN_ICONFIG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _cfg(args: argparse.Namespace) -> dict:
    from adscan.config import load_iconfig

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
    if not args.no_ioc:
        infos.append(services.ensure_ioc(cfg))
        print(f"ioc         {infos[-1].state:8s} {infos[-1].address} {infos[-1].detail}",
              flush=True)
        if infos[-1].state == "down":
            print("adscan up: WARNING the IOC does not answer; the environment may fail to open",
                  file=sys.stderr)
    infos.append(services.ensure_re_manager(cfg))
    print(f"re-manager  {infos[-1].state:8s} {infos[-1].address}", flush=True)
    if not args.no_environment:
        st = services.open_environment(cfg, timeout=args.timeout)
        print(f"environment open     ({st.get('manager_state')})", flush=True)
    print(f"adscan up: ready in {time.monotonic() - t0:.1f} s; logs in "
          f"{services.logs_dir(cfg)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from adscan import services

    infos = services.status(_cfg(args), check_ioc=not args.no_ioc)
    _print(infos, args.json)
    core = [i for i in infos if i.name in ("redis", "re-manager")]
    return 0 if all(i.state in ("up", "external") for i in core) else 3


def cmd_down(args: argparse.Namespace) -> int:
    from adscan import services

    _print(services.down(_cfg(args), timeout=args.timeout), args.json)
    return 0


def cmd_ioc(args: argparse.Namespace) -> int:
    from adscan.iocs import server  # the lead's module; imported only when used

    return server.main(args.ioc_args) or 0


def cmd_demo(args: argparse.Namespace) -> int:
    print("adscan demo: not yet implemented", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adscan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iconfig", help="instrument configuration (default $ADSCAN_ICONFIG "
                        "or startup/iconfig.yml)")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("up", help="start the services and open the RE environment")
    p.add_argument("--no-ioc", action="store_true", help="neither start nor check the IOC")
    p.add_argument("--no-environment", action="store_true",
                   help="do not open the RE Worker environment")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for the environment to open (default 120)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("status", help="show services, addresses, pids, logs, data locations")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-ioc", action="store_true", help="skip the CA check of the IOC")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("down", help="stop what `adscan up` started")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds before SIGTERM escalates to SIGKILL (default 10)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("ioc", help="run the simulated IOC in the foreground",
                       add_help=False)
    p.add_argument("ioc_args", nargs=argparse.REMAINDER,
                   help="options of adscan.iocs.server (see `adscan ioc --help`)")
    p.set_defaults(func=cmd_ioc)

    # `demo` belongs to the lead: replace cmd_demo (keep the sub-command name).
    p = sub.add_parser("demo", help="run the how-to's scans through the queue server")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
