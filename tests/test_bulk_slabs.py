"""``adscan.tiled.bulk.plan_slabs``: how a bulk read splits a run (no server needed)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from adscan.tiled.bulk import plan_slabs


@given(
    lo=st.integers(0, 1000),
    count=st.integers(1, 5000),
    per_index=st.integers(1, 10**7),
    limit_points=st.integers(1, 200),
    connections=st.integers(1, 4),
)
def test_slabs_cover_the_points_once_under_the_limit_and_keep_every_connection_busy(
    lo, count, per_index, limit_points, connections
):
    limit = per_index * limit_points + per_index // 2  # not a whole number of points
    slabs = plan_slabs(lo, lo + count, per_index, limit, connections)
    assert slabs[0][0] == lo and slabs[-1][1] == lo + count
    assert all(a < b for a, b in slabs)
    assert all(b == a2 for (_, b), (a2, _) in zip(slabs, slabs[1:], strict=False))
    assert all((b - a) * per_index <= limit for a, b in slabs)
    sizes = {b - a for a, b in slabs}
    assert max(sizes) - min(sizes) <= 1  # they finish together
    needed = math.ceil(count / limit_points)
    # the fewest requests the limit allows, rounded up to a multiple of the connections
    # (never more requests than points)
    assert len(slabs) == min(count, math.ceil(needed / connections) * connections)


def test_the_measured_run_is_two_requests_of_25_points():
    """50 points of 3 MiB, the client's 100 MB limit, 2 connections (benchmarks/RESULTS.md)."""
    assert plan_slabs(0, 50, 3 * 2**20, 100_000_000, 2) == [(0, 25), (25, 50)]
