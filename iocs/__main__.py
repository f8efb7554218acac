"""``python -m adscan.iocs``: run the simulated beamline IOC in the foreground."""

import sys

from adscan.iocs.server import main

sys.exit(main())
