"""Durations in fixed log-scale buckets: count, mean, max and percentiles in constant memory.

Bucket bounds run from 1 ms to 100 s with 20 buckets per decade, so a percentile is the
upper bound of its bucket (at most 12 % above the true value), never above the maximum.
"""

from __future__ import annotations

import math
from bisect import bisect_left

BOUNDS: tuple[float, ...] = tuple(10 ** (i / 20) / 1000 for i in range(101))


class Histogram:
    """Seconds, counted in `BOUNDS` buckets (one more for anything above 100 s)."""

    __slots__ = ("buckets", "count", "max", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BOUNDS) + 1)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Count one duration (negative values are ignored)."""
        if not seconds >= 0:
            return
        self.buckets[bisect_left(BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        """Add the durations counted by `other`."""
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """The `q` quantile (0 < q <= 1) as a bucket's upper bound, capped at the maximum."""
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                bound = BOUNDS[index] if index < len(BOUNDS) else self.max
                return min(bound, self.max)
        return self.max

    def summary(self) -> dict[str, float | int] | None:
        """count, mean, p50, p95 and max (seconds, 3 decimals); None when empty."""
        if not self.count:
            return None
        return {"count": self.count, "mean": round(self.total / self.count, 3),
                "p50": round(self.quantile(0.5), 3), "p95": round(self.quantile(0.95), 3),
                "max": round(self.max, 3)}
