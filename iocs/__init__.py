"""adscan's simulated beamline: EPICS motor records (caproto) and an ADSimDetector v3.4 (softioc).

``adscan ioc`` / ``python -m adscan.iocs`` starts a motor IOC and an area-detector IOC as two
processes on their own loopback CA ports (:mod:`adscan.iocs.launcher`); see docs/simulator.md.
"""

if __name__ != "adscan.iocs":  # iocs/ is mapped to adscan.iocs (pyproject.toml)
    raise ImportError(
        f"iocs/ is the package adscan.iocs: `python -m adscan.iocs` or "
        f"`import adscan.iocs`, not `import {__name__}`"
    )
