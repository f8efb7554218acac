"""Bulk read of a Tiled array straight into one numpy array (the fast path for whole runs).

tiled 0.2.20's ``ArrayClient.read()`` receives a response in 64 KiB pieces through httpx,
joins them into ``bytes``, wraps each request in a dask task and concatenates the pieces of a
split request: three to four copies of every image, about half of a whole-run read on this
project's machines (benchmarks/RESULTS.md).  :func:`read_array` asks the same ``/array/full``
endpoint for the same raw C-order bytes (``application/octet-stream``, no compression), with
the client's own credentials, but reads each response with ``readinto`` into its part of an
array allocated once: one copy, from the socket into the result.

Requests are split along the leading axis (points) under the client's response size limit
(:func:`plan_slabs`) and sent over ``connections`` keep-alive connections at once, so the
server reads and decodes one slab while the previous one crosses the socket.  Anything it
cannot read exactly (a server error, a short body, an array the server now sees with another
shape) raises :class:`BulkReadError` naming the array and what the server said; nothing is
guessed.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import threading
import urllib.parse
from typing import Any

import numpy as np

DEFAULT_CONNECTIONS = 2
TIMEOUT = 120.0


class BulkReadError(RuntimeError):
    """A bulk read that did not return exactly the bytes the array's structure promises."""


def read_array(
    node: Any,
    points: slice | None = None,
    *,
    connections: int = DEFAULT_CONNECTIONS,
    max_bytes: int | None = None,
    timeout: float = TIMEOUT,
) -> np.ndarray:
    """The array of a Tiled ``ArrayClient`` (or the ``points`` slice of its leading axis).

    Same values, shape and dtype as ``node.read()`` / ``node[points]``; ``max_bytes`` caps one
    response (default: the client's ``RESPONSE_BYTESIZE_LIMIT``).  For a run still being
    written, ``node.refresh()`` first: the server refuses a shape it no longer has.
    """
    shape = tuple(int(n) for n in node.shape)
    dtype = np.dtype(node.dtype)
    lo, hi, step = (points or slice(None)).indices(shape[0] if shape else 1)
    if not shape or step != 1:
        return np.asarray(node.read() if points is None else node[points])
    out = np.empty((max(hi - lo, 0), *shape[1:]), dtype)
    if out.size == 0:
        return out
    per_index = math.prod(shape[1:]) * dtype.itemsize
    limit = int(max_bytes or getattr(type(node), "RESPONSE_BYTESIZE_LIMIT", 100_000_000))
    if per_index > limit:  # one point beyond one response: the client's own splitting
        return np.asarray(node[lo:hi])
    slabs = plan_slabs(lo, hi, per_index, limit, connections)
    request = _Request.from_node(node, timeout)
    flat = out.reshape(-1).view(np.uint8)
    work = iter(slabs)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        with request.connection() as conn:
            while True:
                with lock:
                    slab = None if errors else next(work, None)
                if slab is None:
                    return
                a, b = slab
                start = (a - lo) * per_index
                try:
                    request.get(conn, a, b, shape, flat[start : start + (b - a) * per_index])
                except BaseException as exc:  # noqa: BLE001 - re-raised below, first one
                    with lock:
                        errors.append(exc)
                    return

    others = max(1, min(connections, len(slabs))) - 1  # this thread is the first connection
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(others)]
    for t in threads:
        t.start()
    worker()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def plan_slabs(
    lo: int, hi: int, per_index: int, limit: int, connections: int
) -> list[tuple[int, int]]:
    """Leading-axis pieces ``[(a, b), ...]`` of ``lo:hi``, each at most ``limit`` bytes.

    As few as the limit allows (each request costs the server a catalog look-up, 10-30 ms
    here), but a multiple of ``connections`` so that no connection idles, and all about the
    same size so that they finish together.
    """
    count, conns = hi - lo, max(1, connections)
    wanted = max(math.ceil(count / max(1, limit // per_index)), conns)
    wanted = min(count, math.ceil(wanted / conns) * conns)
    return [(lo + i * count // wanted, lo + (i + 1) * count // wanted) for i in range(wanted)]


class _Request:
    """One array's ``/array/full`` URL, credentials and timeout; a GET of one slab."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float, where: str):
        self.parts = urllib.parse.urlsplit(url)
        self.headers = headers
        self.timeout = timeout
        self.where = where

    @classmethod
    def from_node(cls, node: Any, timeout: float) -> _Request:
        client = node.context.http_client
        url = str(client.base_url.join(node.item["links"]["full"]))
        headers = {k: v for k, v in client.headers.items() if k.lower() != "accept-encoding"}
        headers.update({"Accept": "application/octet-stream", "Accept-Encoding": "identity"})
        return cls(url, headers, timeout, f"{node.uri}")

    def connection(self) -> contextlib.closing[http.client.HTTPConnection]:
        """A new keep-alive connection, closed when its ``with`` block ends."""
        kind = (
            http.client.HTTPSConnection
            if self.parts.scheme == "https"
            else http.client.HTTPConnection
        )
        return contextlib.closing(kind(self.parts.hostname, self.parts.port, timeout=self.timeout))

    def get(self, conn, a: int, b: int, shape: tuple, into: np.ndarray) -> None:
        expected = ",".join(map(str, (b - a, *shape[1:])))
        query = urllib.parse.parse_qsl(self.parts.query)
        query += [("slice", f"{a}:{b}"), ("expected_shape", expected)]
        target = f"{self.parts.path}?{urllib.parse.urlencode(query)}"
        conn.request("GET", target, headers=self.headers)
        resp = conn.getresponse()
        if resp.status != 200:
            detail = resp.read()[:2000].decode("utf-8", "replace")
            raise BulkReadError(
                f"Tiled refused {self.where}[{a}:{b}] ({resp.status} {resp.reason}): {detail}"
            )
        encoding = resp.getheader("content-encoding", "identity")
        if encoding != "identity":
            resp.read()
            raise BulkReadError(f"{self.where}[{a}:{b}]: unexpected content-encoding {encoding}")
        view, got = memoryview(into), 0
        while got < len(view):
            n = resp.readinto(view[got:])
            if not n:
                break
            got += n
        extra = len(resp.read(1))
        if got != len(view) or extra:
            raise BulkReadError(
                f"{self.where}[{a}:{b}]: the server sent {got + extra} bytes or more, "
                f"the array's structure says {len(view)}"
            )
