"""adscan: area detector v. motor step scans as a bluesky-queueserver plan service."""

from adscan import epics_env as _epics_env

# Before anything imports pyepics or caproto: EPICS traffic stays on loopback.
_epics_env.apply_loopback()

__version__ = "0.1.0"
