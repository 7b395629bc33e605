"""Chunks and the chunk plan: which indices of a space each task runs.

The plan is lazy (chunks are cut as the runner asks for them) and, unless a chunk size
is given, adaptive: the first chunks are small probes; once their per-parameter time is
known, chunks are cut to last about ``target_chunk_s``, and shrink towards the end
(guided self-scheduling) so every worker finishes at about the same time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

# The per-parameter time is a smoothed mean: each chunk's rate moves it by SMOOTHING, so
# one slow outlier does not swing the plan while work that grows costlier along the
# space is followed within a few chunks; but by at least the chunk's share of the
# parameters timed lately (that count decays by DECAY a chunk), so a probe of 16 on a
# worker's first, cold calls (3x the steady time, measured on a fresh Ray) does not
# outweigh the 500 parameters after it.
SMOOTHING = 0.2
DECAY = 0.8


@dataclass(frozen=True)
class Chunk:
    """Indices lo..hi-1 of a space, or only ``indices`` (sorted) when given.

    ``chunk_id`` names the planned chunk it came from; retries and halves keep it,
    with a suffix, so logs and the dashboard trace a parameter back to its chunk.
    """

    run_id: str
    chunk_id: str
    lo: int
    hi: int
    indices: tuple[int, ...] | None = None
    attempt: int = 1

    @property
    def size(self) -> int:
        return self.hi - self.lo if self.indices is None else len(self.indices)

    def iter_indices(self) -> Iterator[int]:
        return iter(range(self.lo, self.hi) if self.indices is None else self.indices)

    def with_indices(self, indices: list[int], attempt: int, suffix: str) -> Chunk:
        """A follow-up chunk over some of this chunk's indices."""
        indices = sorted(indices)
        return replace(
            self,
            chunk_id=f"{self.chunk_id}{suffix}",
            lo=indices[0],
            hi=indices[-1] + 1,
            indices=None if indices == list(range(indices[0], indices[-1] + 1)) else tuple(indices),
            attempt=attempt,
        )

    def halves(self) -> tuple[Chunk, Chunk]:
        """Split in two, to find which parameter kills its worker without blaming the rest."""
        idx = list(self.iter_indices())
        mid = len(idx) // 2
        return (
            self.with_indices(idx[:mid], self.attempt, "a"),
            self.with_indices(idx[mid:], self.attempt, "b"),
        )


class ChunkPlanner:
    """Cuts ``gaps`` (the half-open index ranges still to run) into chunks on demand."""

    def __init__(
        self,
        run_id: str,
        gaps: list[tuple[int, int]],
        chunk_size: int | None = None,
        workers: int = 1,
        target_chunk_s: float = 1.0,
        min_chunk_s: float = 0.02,
        probe_size: int = 16,
        max_size: int = 100_000,
    ):
        self.run_id = run_id
        self._gaps = [g for g in gaps if g[1] > g[0]]
        self._gaps.reverse()  # pop from the end = take in order
        self.fixed_size = chunk_size
        self.workers = max(1, workers)
        self.target_chunk_s = target_chunk_s
        self.min_chunk_s = min_chunk_s
        self.probe_size = probe_size
        self.max_size = max_size  # bounds the memory a chunk's results take
        self.remaining = sum(hi - lo for lo, hi in self._gaps)
        self.per_param_s: float | None = None
        self._timed_params = 0.0  # parameters behind per_param_s, decayed (see DECAY)
        self._probes: set[str] = set()  # ids of probe chunks sent and not yet back
        self._next_id = 0

    @property
    def exhausted(self) -> bool:
        return not self._gaps

    @property
    def waiting_for_probe(self) -> bool:
        """True while automatic sizing has sent its probes and has no timing yet."""
        return self.fixed_size is None and self.per_param_s is None and bool(self._probes)

    def observe(self, chunk_id: str, size: int, compute_s: float) -> None:
        """Learn the per-parameter time from a chunk that ran ``size`` parameters."""
        self._probes.discard(chunk_id)
        if size <= 0 or self.fixed_size is not None:
            return
        sample = max(compute_s / size, 1e-8)
        weight = max(SMOOTHING, size / (size + self._timed_params))
        last = sample if self.per_param_s is None else self.per_param_s
        self.per_param_s = (1 - weight) * last + weight * sample
        self._timed_params = DECAY * self._timed_params + size

    def next_size(self) -> int:
        if self.fixed_size is not None:
            return self.fixed_size
        if self.per_param_s is None:
            return self.probe_size
        by_target = self.target_chunk_s / self.per_param_s
        at_least = math.ceil(self.min_chunk_s / self.per_param_s)
        guided = math.ceil(self.remaining / (2 * self.workers))
        return max(1, min(int(by_target), max(guided, at_least), self.max_size))

    def lost(self, chunk_id: str) -> None:
        """A chunk came back with no timing (its worker died): if it was a probe, the
        plan stops waiting for it and sends another."""
        self._probes.discard(chunk_id)

    def next_chunk(self) -> Chunk | None:
        """The next chunk, or None when the plan is used up or waits for a probe."""
        if not self._gaps or (self.waiting_for_probe and len(self._probes) >= self.workers):
            return None
        size = self.next_size()
        lo, hi = self._gaps.pop()
        cut = min(hi, lo + size)
        if cut < hi:
            self._gaps.append((cut, hi))
        self.remaining -= cut - lo
        chunk = Chunk(self.run_id, f"c{self._next_id:06d}", lo, cut)
        self._next_id += 1
        if self.per_param_s is None and self.fixed_size is None:
            self._probes.add(chunk.chunk_id)
        return chunk
