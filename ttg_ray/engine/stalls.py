"""The stall report: a chunk that has run far longer than its peers is logged once, with
the parameter it is on and for how long, so a hang can be found without a timeout."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ttg_ray.backends.base import RunningChunk

log = logging.getLogger(__name__)


class StallWatch:
    """Flags a running chunk once it has run ``factor`` times its expected time, and at
    least ``min_s`` (so short chunks with noisy timings are never reported)."""

    def __init__(self, factor: float = 5.0, min_s: float = 30.0):
        self.factor = factor
        self.min_s = min_s
        self.reported: dict[str, RunningChunk] = {}

    def limit_s(self, expected_s: float | None) -> float:
        """How long a chunk expected to take ``expected_s`` may run before it stalls."""
        return max(self.min_s, self.factor * expected_s) if expected_s else self.min_s

    def check(
        self, running: list[RunningChunk], expected_s: Callable[[str], float | None]
    ) -> list[RunningChunk]:
        """The chunks of ``running`` that have just stalled (each is returned once)."""
        stalled = []
        for chunk in running:
            if chunk.chunk_id in self.reported:
                continue
            expected = expected_s(chunk.chunk_id)
            # With no timing yet (no chunk has finished: long parameters), a chunk that
            # moves from parameter to parameter is not stalled: judge its current one.
            ran_s = chunk.param_s if expected is None and chunk.index is not None else chunk.chunk_s
            if ran_s > self.limit_s(expected):
                self.reported[chunk.chunk_id] = chunk
                stalled.append(chunk)
        return stalled

    @staticmethod
    def describe(chunk: RunningChunk, expected_s: float | None) -> str:
        expected = f"expected about {expected_s:.1f} s" if expected_s else "no timing yet"
        where = (
            f"on parameter {chunk.index} ({chunk.param!r:.80}) for {chunk.param_s:.0f} s"
            if chunk.index is not None
            else "between parameters"
        )
        return (
            f"chunk {chunk.chunk_id} has run {chunk.chunk_s:.0f} s ({expected}); it is {where}, "
            f"on {chunk.worker}; set a timeout (--timeout-s) to stop such parameters"
        )
