"""Which parameter indices already have a final result: a set of merged intervals.

Results arrive roughly in index order, so the set stays a handful of intervals however
large the space is; this is what keeps the driver's memory flat.
"""

from __future__ import annotations

from bisect import bisect_right


class IndexLedger:
    """A set of integers stored as sorted, disjoint, non-adjacent half-open intervals."""

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __contains__(self, index: int) -> bool:
        k = bisect_right(self._lo, index) - 1
        return k >= 0 and index < self._hi[k]

    @property
    def intervals(self) -> int:
        return len(self._lo)

    def overlaps(self, lo: int, hi: int) -> bool:
        """True if any of lo..hi-1 is in the set."""
        k = bisect_right(self._lo, hi - 1) - 1
        return k >= 0 and self._hi[k] > lo

    def add_range(self, lo: int, hi: int) -> None:
        """Add lo..hi-1, none of which may be in the set yet (the caller dedups)."""
        if hi <= lo:
            return
        k = bisect_right(self._lo, lo)
        joins_left = k > 0 and self._hi[k - 1] == lo
        joins_right = k < len(self._lo) and self._lo[k] == hi
        if joins_left and joins_right:
            self._hi[k - 1] = self._hi[k]
            del self._lo[k], self._hi[k]
        elif joins_left:
            self._hi[k - 1] = hi
        elif joins_right:
            self._lo[k] = lo
        else:
            self._lo.insert(k, lo)
            self._hi.insert(k, hi)
        self.count += hi - lo

    def add_sorted(self, indices: list[int]) -> None:
        """Add sorted, new indices, grouping runs of consecutive ones."""
        if not indices:
            return
        start = prev = indices[0]
        for i in indices[1:]:
            if i != prev + 1:
                self.add_range(start, prev + 1)
                start = i
            prev = i
        self.add_range(start, prev + 1)

    def gaps(self, n: int) -> list[tuple[int, int]]:
        """The half-open ranges of 0..n-1 that are not in the set."""
        out, cursor = [], 0
        for lo, hi in zip(self._lo, self._hi):
            if lo >= n:
                break
            if lo > cursor:
                out.append((cursor, lo))
            cursor = max(cursor, hi)
        if cursor < n:
            out.append((cursor, n))
        return out
