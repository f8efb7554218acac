"""adscan's simulated beamline: EPICS motor records and an ADSimDetector v3.4 over real CA.

One caproto asyncio server process serves every PV (two CA servers on one loopback
address would break name resolution).  Start it with ``adscan ioc`` or
``python -m adscan.iocs``; see :mod:`adscan.iocs.server`.
"""

if __name__ != "adscan.iocs":  # iocs/ is mapped to adscan.iocs (pyproject.toml)
    raise ImportError(f"iocs/ is the package adscan.iocs: `python -m adscan.iocs` or "
                      f"`import adscan.iocs`, not `import {__name__}`")
