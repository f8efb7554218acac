"""Queue-server start-up (also loads in IPython): everything comes from adscan.instrument."""

from adscan.instrument import *
