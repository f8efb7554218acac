"""Free loopback ports for private services (tests, benchmarks, a second beamline on one host).

Ports are drawn below the kernel's ephemeral range (``ip_local_port_range``): a port inside
it can be taken at any moment as the local end of some outgoing connection, and a probe that
connects to an unused port there can even connect to itself (TCP simultaneous open), making
a free port look busy.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


#: A CA port (``udp=True``) reserves a block: the simulated beamline's motor IOC uses P, its
#: CA repeater (and beacons) P + 1, its AD IOC P + 2 and its pvAccess server P + 3 and P + 4
#: (adscan.epics_env).
CA_PORT_SPAN = 5


def free_port(*, udp: bool = False, taken: set[int] | None = None) -> int:
    """A port on 127.0.0.1 free for TCP (and UDP with ``udp``), below the ephemeral range.

    With ``udp`` the next ``CA_PORT_SPAN - 1`` ports are free too (and reserved in ``taken``).
    """
    high = min(_ephemeral_low(), 65536) - 1
    low = 20000 if high > 25000 else 10000
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    taken = taken if taken is not None else set()
    span = CA_PORT_SPAN if udp else 1
    for _ in range(10000):
        port = random.randint(low, high - span)
        block = range(port, port + span)
        if taken.intersection(block):
            continue
        try:
            for p in block:
                for kind in kinds:
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("127.0.0.1", p))
        except OSError:
            continue
        taken.update(block)
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def free_ports(n: int, *, udp: bool = False) -> list[int]:
    """``n`` distinct free ports (see :func:`free_port`)."""
    taken: set[int] = set()
    return [free_port(udp=udp, taken=taken) for _ in range(n)]
