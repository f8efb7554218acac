"""Cheap synApps ``xxx`` general-purpose records that peer test suites connect to.

apstools' own tests (``devices/tests/test_shutters.py``, ``utils/tests/test_connect_pvlist.py``)
expect a synApps ``gp:`` IOC: ``<P>gp:bit1 .. <P>gp:bitN`` (``bo`` records, 0/1) and the
iocStats ``<P>UPTIME`` string.  They are served only when asked (``adscan ioc --bits N``);
the how-to's flow never needs them.  Not modelled: swait/userCalc, scalers, sscan, transforms.
"""

from __future__ import annotations

import time

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from .motor import check_record_name, literal_prefix

__all__ = ["GPExtras", "make_bits"]


def _bit(n: int) -> pvproperty:
    return pvproperty(
        name=f"gp:bit{n}",
        value=0,
        dtype=ChannelType.ENUM,
        enum_strings=["0", "1"],
        record="bo",
        doc=f"general purpose bit {n}",
    )


class GPExtras(PVGroup):
    """``<prefix>UPTIME`` plus the bits (attributes ``bit1`` .. added by :func:`make_bits`)."""

    uptime = pvproperty(
        name="UPTIME",
        value="00:00:00",
        dtype=ChannelType.STRING,
        read_only=True,
        record="stringin",
        doc="IOC up time",
    )

    def __init__(self, prefix: str, **kwargs):
        self._t0 = time.monotonic()
        super().__init__(prefix=literal_prefix(prefix), **kwargs)

    @uptime.scan(period=1.0)
    async def uptime(self, instance, async_lib):
        s = int(time.monotonic() - self._t0)
        await instance.write(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}")


def make_bits(prefix: str = "gp:", count: int = 20) -> GPExtras:
    """A :class:`GPExtras` serving ``<prefix>UPTIME`` and ``<prefix>gp:bit1..<count>``."""
    if count < 0:
        raise ValueError("the bit count must be >= 0")
    for n in (1, count):
        check_record_name(f"{prefix}gp:bit{n}")
    attrs = {f"bit{n}": _bit(n) for n in range(1, count + 1)}
    cls = type(f"GPExtras{count}", (GPExtras,), attrs)
    return cls(prefix)
