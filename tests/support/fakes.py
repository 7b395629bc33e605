"""An in-process backend for testing the runner without any service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ttg_ray.backends.base import Backend, BackendOptions
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import lost_chunk, run_chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult


class InlineBackend(Backend):
    """Runs each chunk at submit time in this process. ``kills(chunk)`` says whether the
    chunk's (simulated) worker dies; ``duplicate`` delivers every result twice."""

    name = "inline"

    def __init__(
        self,
        options: BackendOptions | None = None,
        *,
        slots: int = 2,
        kills: Callable[[Chunk], bool] = lambda chunk: False,
        duplicate: bool = False,
    ):
        super().__init__(options or BackendOptions())
        self.slots = slots
        self.kills = kills
        self.duplicate = duplicate
        self.submitted: list[Chunk] = []
        self.most_in_flight = 0
        self._ready: list[ChunkResult] = []
        self.closed = False

    def _open(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> None:
        self.fn, self.space, self.run_id = fn, space, run_id

    @property
    def capacity(self) -> int:
        return self.slots

    def submit(self, chunk: Chunk) -> None:
        self.submitted.append(chunk)
        if self.kills(chunk):
            result = lost_chunk(chunk, self.space, "WorkerCrashedError", "worker died")
        else:
            result = run_chunk(self.fn, self.space, chunk, node="inline-node")
        self._ready.append(result)
        if self.duplicate:
            self._ready.append(result)
        self.most_in_flight = max(self.most_in_flight, len(self._ready))

    def poll(self, timeout_s: float) -> list[ChunkResult]:
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        self.closed = True
