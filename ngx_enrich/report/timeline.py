"""Counts over the log's own time span in constant memory.

The span is unknown until the input ends, so every series shares one grid of `SLOTS`
buckets. The grid's width is a power of two seconds and its start a multiple of it; a time
outside the grid moves the start or doubles the width (merging neighbouring buckets) until
the whole span seen fits. So the grid depends only on the earliest and latest time seen,
not on the order of the records, and two grids can be merged exactly (`Clock.absorb`).
`Clock.frame` regroups the used part into at most `SHOWN` buckets of equal width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

SLOTS = 320
SHOWN = 40


@dataclass(frozen=True, slots=True)
class Frame:
    """The displayed grid: `buckets` buckets of `width` seconds from `start` (epoch)."""

    start: float
    width: float
    buckets: int
    first_slot: int
    group: int

    def view(self, series: list[int]) -> list[int]:
        """`series` regrouped into this frame's buckets."""
        lo, g = self.first_slot, self.group
        return [sum(series[lo + i * g:lo + (i + 1) * g]) for i in range(self.buckets)]


class Clock:
    """The shared grid of every time series."""

    def __init__(self, slots: int = SLOTS) -> None:
        if slots < 4 or slots % 2:
            raise ValueError("slots must be an even number >= 4")
        self.slots = slots
        self.origin: float | None = None
        self.width = 1.0
        self.low = math.inf
        self.high = -math.inf
        self._series: list[list[int]] = []

    def series(self) -> list[int]:
        """A new series on this grid (kept up to date when the grid changes)."""
        counts = [0] * self.slots
        self._series.append(counts)
        return counts

    def slot(self, epoch: float) -> int:
        """The bucket index of `epoch`, moving or widening the grid first if needed."""
        if epoch < self.low:
            self.low = epoch
        if epoch > self.high:
            self.high = epoch
        origin = self.origin
        if origin is not None:
            index = int((epoch - origin) // self.width)
            if 0 <= index < self.slots:
                return index
        self._fit(self.width)
        assert self.origin is not None
        return int((epoch - self.origin) // self.width)

    def _fit(self, width: float) -> None:
        """Regrid so that [low, high] fits, at `width` or the next doubling that fits."""
        while math.floor(self.high / width) - math.floor(self.low / width) >= self.slots:
            width *= 2
        origin = math.floor(self.low / width) * width
        if self.origin is not None and (origin, width) != (self.origin, self.width):
            move = self._mapper(self.origin, self.width, origin, width)
            for counts in self._series:
                counts[:] = move(counts)
        self.origin, self.width = origin, width

    def _mapper(self, origin: float, width: float, to_origin: float,
                to_width: float) -> Callable[[list[int]], list[int]]:
        """Moves a series from one aligned grid onto a coarser (or shifted) one."""
        slots = self.slots

        def move(counts: list[int]) -> list[int]:
            out = [0] * slots
            for k, n in enumerate(counts):
                if n:
                    out[int((origin + k * width - to_origin) // to_width)] += n
            return out

        return move

    def absorb(self, other: Clock) -> Callable[[list[int]], list[int]]:
        """Widen this grid to cover `other`'s span too; returns the function that moves a
        series of `other` onto this grid."""
        if other.origin is None:
            return lambda counts: [0] * self.slots
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        self._fit(max(self.width, other.width))
        return self._mapper(other.origin, other.width, self.origin or 0.0, self.width)

    def frame(self, shown: int = SHOWN) -> Frame | None:
        """The used part of the grid in at most `shown` equal buckets (None: no times)."""
        if self.origin is None:
            return None
        lo = int((self.low - self.origin) // self.width)
        hi = int((self.high - self.origin) // self.width)
        group = math.ceil((hi - lo + 1) / shown)
        buckets = math.ceil((hi - lo + 1) / group)
        return Frame(self.origin + lo * self.width, self.width * group, buckets, lo, group)
