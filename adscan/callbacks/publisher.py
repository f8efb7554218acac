"""Every document to the 0MQ proxy, without ever slowing or failing a run.

A ``bluesky.callbacks.zmq.Publisher`` (clients keep using bluesky's ``RemoteDispatcher``)
whose PUB socket is set so that a missing or dead proxy costs nothing:

- ``IMMEDIATE``: no queue is kept for a proxy that is not connected, so documents are
  dropped at once instead of piling up (and a proxy started later gets no stale ones);
- ``SNDHWM``: at most that many documents wait for a slow proxy; beyond it PUB drops them
  (a PUB socket never blocks its sender);
- ``LINGER`` 0: closing never waits for unsent documents;
- any error while sending is counted and logged once, never raised into the RunEngine.
"""

from __future__ import annotations

import logging
from typing import Any

import zmq
from bluesky.callbacks.zmq import Publisher

logger = logging.getLogger(__name__)

#: Documents that may wait for a slow proxy before PUB starts dropping.
SEND_HWM = 10_000


class LivePublisher(Publisher):
    """bluesky's Publisher with a non-blocking, bounded, fail-silent socket."""

    def __init__(self, address: str, *, hwm: int = SEND_HWM, **kwargs: Any):
        super().__init__(address, **kwargs)
        # Options that matter at connect time: reconnect with them set.
        self._socket.disconnect(self.address)
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(self.address)
        self.sent = 0
        self.errors = 0

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        try:  # as Publisher.__call__, minus its deepcopy (pickling already snapshots the doc)
            message = b" ".join([self._prefix, name.encode(), self._serializer(doc)])
            self._socket.send(message, zmq.NOBLOCK)
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - live documents are best effort by design
            self.errors += 1
            if self.errors == 1:
                logger.warning(
                    "live documents to %s: %s (further errors not logged)", self.address, exc
                )


def make_publisher(cfg: dict) -> LivePublisher | None:
    """The profile's publisher to ``live.proxy_in``, or None when ``live.proxy`` is off."""
    from adscan.services.proxy import addresses, enabled

    if not enabled(cfg):
        return None
    return LivePublisher(addresses(cfg)[0])
