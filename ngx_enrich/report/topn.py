"""The most frequent values of a stream in bounded memory (Space-Saving, pruned in batches).

At most `cap` values are counted. When a new value arrives at a full counter, the quarter
with the lowest counts is dropped and `floor` becomes the highest count dropped; a value
that enters later starts at `floor + 1`. So a count never undercounts, and overcounts by at
most the `error` recorded with it; values that were never dropped are exact.

The counter is a dict of value -> count, so counting a value already there
(`counter[value] += 1`) is one dict operation; only a new value goes through `__missing__`.
"""

from __future__ import annotations

from operator import itemgetter

CAP = 1000


class TopCounter(dict[str, int]):
    """Approximate counts of the most frequent values, at most `cap` of them kept."""

    def __init__(self, cap: int = CAP) -> None:
        super().__init__()
        self.cap = max(cap, 4)
        self.errors: dict[str, int] = {}
        self.floor = 0

    def __missing__(self, value: str) -> int:
        """The count a value not counted now starts from (making room for it first)."""
        if len(self) >= self.cap:
            self._prune()
        if self.floor:
            self.errors[value] = self.floor
        return self.floor

    def add(self, value: str) -> None:
        """Count one occurrence of `value`."""
        self[value] += 1

    def _prune(self) -> None:
        keep = self.cap * 3 // 4
        ranked = sorted(self.items(), key=itemgetter(1), reverse=True)
        self.floor = max(self.floor, ranked[keep][1])
        self.clear()
        self.update(ranked[:keep])
        self.errors = {k: e for k, e in self.errors.items() if k in self}

    def merge(self, other: TopCounter) -> None:
        """Add the counts of `other` (a summary of another part of the same stream).

        A value missing from one side may have occurred there up to that side's `floor`
        times, so it gets that much more count and error; the floors add up.
        """
        errors = self.errors
        mine = set(self)
        for value, n in other.items():
            error = other.errors.get(value, 0)
            if value in mine:
                self[value] = dict.__getitem__(self, value) + n
                error += errors.get(value, 0)
            else:
                dict.__setitem__(self, value, n + self.floor)
                error += self.floor
            if error:
                errors[value] = error
        if other.floor:
            for value in mine - set(other):
                self[value] = dict.__getitem__(self, value) + other.floor
                errors[value] = errors.get(value, 0) + other.floor
        self.floor += other.floor
        while len(self) > self.cap:
            self._prune()

    def top(self, n: int) -> list[tuple[str, int, int]]:
        """The `n` highest (value, count, error), highest count first, ties by value."""
        ranked = sorted(self.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(value, count, self.errors.get(value, 0)) for value, count in ranked]
