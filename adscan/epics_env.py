"""Keep EPICS Channel Access and pvAccess traffic on loopback.

Channel Access broadcasts name searches to every interface by default.  adscan's own
processes (CLI, simulated IOC, RE Manager worker, tests) must never do that, so these
settings are applied before any CA library (pyepics' libca, caproto) is imported.
"""

from __future__ import annotations

import os

#: Client and server settings that confine CA and PVA to 127.0.0.1.
LOOPBACK_ENV: dict[str, str] = {
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_CA_ADDR_LIST": "127.0.0.1",
    "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": "127.255.255.255",
}

#: A site running real IOCs on another host names them here (documented in docs/deployment.md);
#: broadcasts stay off either way.
SITE_ADDR_LIST_VAR = "ADSCAN_EPICS_CA_ADDR_LIST"


def is_loopback_list(addr_list: str) -> bool:
    """True when every entry of an address list (``host[:port]`` words) is on loopback."""
    hosts = [word.rsplit(":", 1)[0] for word in addr_list.split()]
    return bool(hosts) and all(h == "localhost" or h.startswith("127.") for h in hosts)


#: The simulated beamline's ports relative to the motor IOC's CA port P: the CA repeater
#: and beacon port (P + 1, as 5065 is for 5064), the AD IOC's CA port (P + 2) and its
#: pvAccess UDP port (P + 3, TCP P + 4).  ``adscan.ports.free_port(udp=True)`` reserves the
#: whole block.
REPEATER_PORT_OFFSET = 1
AD_PORT_OFFSET = 2
PVA_PORT_OFFSET = 3


def ad_ca_port(ca_port: int) -> int:
    """CA port of the simulated area-detector IOC of a beamline whose motors use ``ca_port``."""
    return ca_port + AD_PORT_OFFSET


def repeater_port_for(ca_port: int) -> int:
    """CA repeater (and server beacon) port of a beamline whose motors use ``ca_port``."""
    return ca_port + REPEATER_PORT_OFFSET


def pva_port(ca_port: int) -> int:
    """pvAccess UDP (search) port of the simulated area-detector IOC (TCP: the next port)."""
    return ca_port + PVA_PORT_OFFSET


def apply_loopback(
    env: dict[str, str] | None = None,
    ca_port: int | None = None,
    ad_port: int | None = None,
    repeater_port: int | None = None,
) -> dict[str, str]:
    """Write the loopback settings into ``env`` (default ``os.environ``) and return it.

    ``ca_port`` sets the CA server (UDP search) port for clients and servers alike, so that
    several simulated beamlines on one machine never answer each other's searches; a
    loopback address list then also names the AD IOC's port (``ad_port``, default
    :func:`ad_ca_port`), pvAccess searches go to :func:`pva_port`, and the CA repeater and
    the servers' beacons use :func:`repeater_port_for`: each beamline has its own repeater
    (``adscan.ca_repeater``, loopback-bound), so no libca client ever finds the port free
    and starts a repeater of its own on 0.0.0.0.  ``repeater_port`` overrides it (the AD
    IOC serves on P + 2 but belongs to the beamline of P: its repeater is P + 1).
    """
    env = os.environ if env is None else env
    kept = env.get("EPICS_CA_ADDR_LIST", "")
    env.update(LOOPBACK_ENV)
    site = env.get(SITE_ADDR_LIST_VAR, "").strip()
    if site:
        env["EPICS_CA_ADDR_LIST"] = site
    elif is_loopback_list(kept):
        env["EPICS_CA_ADDR_LIST"] = kept  # e.g. several loopback ports of a test session
    if ca_port is not None:
        env["EPICS_CA_SERVER_PORT"] = str(ca_port)
        env["EPICS_CAS_SERVER_PORT"] = str(ca_port)
        rport = repeater_port or repeater_port_for(ca_port)
        env["EPICS_CA_REPEATER_PORT"] = str(rport)
        env["EPICS_CAS_BEACON_PORT"] = str(rport)
        words = env["EPICS_CA_ADDR_LIST"].split()
        extra = f"127.0.0.1:{ad_port or ad_ca_port(ca_port)}"
        if not site and extra not in words:
            env["EPICS_CA_ADDR_LIST"] = " ".join([*words, extra])
        pva = str(pva_port(ca_port))
        env["EPICS_PVA_BROADCAST_PORT"] = pva
        env["EPICS_PVAS_BROADCAST_PORT"] = pva
        env["EPICS_PVAS_SERVER_PORT"] = str(pva_port(ca_port) + 1)
    return env


def ca_port(env: dict[str, str] | None = None) -> int:
    """The CA server port in force (5064 unless configured)."""
    env = os.environ if env is None else env
    return int(env.get("EPICS_CAS_SERVER_PORT") or env.get("EPICS_CA_SERVER_PORT") or 5064)


def repeater_port(env: dict[str, str] | None = None) -> int:
    """The CA repeater port in force (5065 unless configured)."""
    env = os.environ if env is None else env
    return int(env.get("EPICS_CA_REPEATER_PORT") or 5065)
