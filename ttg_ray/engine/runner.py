"""The engine: drives a backend over a space, never losing or duplicating a result.

It keeps a bounded number of chunks in flight (memory stays flat whatever the size of
the space), retries only the parameters that raised, with backoff, splits a chunk whose
worker keeps dying to find the parameter responsible, dedups by index (first result
wins), writes the result store, and builds the summary.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ttg_ray.backends.base import Backend
from ttg_ray.core.chunks import Chunk, ChunkPlanner
from ttg_ray.core.events import lifecycle
from ttg_ray.core.execute import rest_of
from ttg_ray.core.ledger import IndexLedger
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.summary import Summary, ValueStats
from ttg_ray.engine.resume import Store
from ttg_ray.engine.stalls import StallWatch

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class Batch:
    """Parameters that got their final result from one chunk result."""

    indices: Sequence[int]  # of the successes; a range on the fast path
    values: list[Any]
    failures: list[ParamFailure] = field(default_factory=list)
    stats: ValueStats | None = None  # of ``values``, when the worker computed them


@dataclass(frozen=True)
class RetryPolicy:
    """Failed parameters run again up to ``max_retries`` times, after
    ``base_s * 2**(attempt-1)`` seconds, at most ``cap_s``."""

    max_retries: int = 3
    base_s: float = 0.1
    cap_s: float = 5.0

    def delay_s(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1))


class Runner:
    """One sweep: ``batches()`` yields results as they become final."""

    def __init__(
        self,
        backend: Backend,
        fn: Callable[[Any], Any],
        space: Space,
        run_id: str,
        *,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        store: Store | None = None,
        done: IndexLedger | None = None,
        progress: ProgressFn | None = None,
        max_inflight: int | None = None,
        max_chunk_params: int = 100_000,
    ):
        self.backend = backend
        self.fn = fn
        self.space = space
        self.run_id = run_id
        self.chunk_size = chunk_size
        self.retry = retry or RetryPolicy()
        self.store = store
        self.ledger = done or IndexLedger()
        self.progress = progress
        self.max_inflight = max_inflight
        self.max_chunk_params = max_chunk_params
        self.summary = Summary(backend=backend.name, run_id=run_id, total=len(space))
        self.summary.skipped_resumed = len(self.ledger)
        self._inflight: dict[str, Chunk] = {}
        self._retries: list[tuple[float, int, Chunk]] = []  # heap of (due, seq, chunk)
        self._seq = 0
        self._last_progress_log = 0.0
        self.stalls = StallWatch()
        self._last_stall_check = 0.0

    def batches(self) -> Generator[Batch, None, None]:
        """Run the sweep, yielding each chunk's newly final results. The backend is open
        for exactly as long as this generator runs (closing it early releases it)."""
        if len(self.ledger) >= len(self.space):
            lifecycle(log, "completed", "nothing left to run", run_id=self.run_id)
            return
        t0 = time.monotonic()
        lifecycle(log, "starting", f"starting {self.backend.name} backend", run_id=self.run_id)
        with self.backend.open(self.fn, self.space, self.run_id):
            self.summary.startup_s = time.monotonic() - t0
            yield from self._run()

    def _run(self) -> Iterator[Batch]:
        capacity = max(1, self.backend.capacity)
        planner = ChunkPlanner(
            self.run_id,
            self.ledger.gaps(len(self.space)),
            self.chunk_size,
            workers=capacity,
            max_size=self.max_chunk_params,
        )
        lifecycle(
            log,
            "initialized",
            f"{self.backend.name} ready in {self.summary.startup_s:.2f} s with {capacity} "
            f"worker slots; {planner.remaining:,} of {len(self.space):,} parameters to run",
            run_id=self.run_id,
            capacity=capacity,
            skipped_resumed=self.summary.skipped_resumed,
        )
        started = time.monotonic()
        lifecycle(log, "running", "running", run_id=self.run_id)
        while True:
            max_inflight = self._follow_capacity(planner)
            self._fill(planner, max_inflight)
            if not self._inflight and not self._retries and planner.exhausted:
                break
            for result in self.backend.poll(self._wait_s()):
                batch = self._handle(result, planner)
                self.summary.duration_s = time.monotonic() - started
                if batch is not None:
                    self._record(batch)
                    yield batch
            self._report_progress()
            self._report_stalls(planner)
        self.summary.duration_s = time.monotonic() - started
        lifecycle(
            log,
            "completed",
            f"{self.summary.processed:,} parameters in {self.summary.duration_s:.2f} s "
            f"({self.summary.failed:,} failed)",
            run_id=self.run_id,
            processed=self.summary.processed,
            failed=self.summary.failed,
        )

    def _follow_capacity(self, planner: ChunkPlanner) -> int:
        """The in-flight bound for now: it follows the backend's capacity as nodes join
        and leave, and tells the backend how much work is left to run at once."""
        largest = self.backend.largest_chunk()
        planner.max_size = min(self.max_chunk_params, largest or self.max_chunk_params)
        capacity = max(1, self.backend.capacity)
        if capacity != planner.workers:
            log.info("capacity now %d worker slot(s), was %d", capacity, planner.workers)
            planner.workers = capacity
        self._max_inflight = self.max_inflight or 2 * capacity
        unplanned = -(-planner.remaining // max(1, planner.next_size()))
        self.backend.want(len(self._inflight) + len(self._retries) + unplanned)
        return self._max_inflight

    def _fill(self, planner: ChunkPlanner, max_inflight: int) -> None:
        now = time.monotonic()
        while len(self._inflight) < max_inflight:
            if self._retries and self._retries[0][0] <= now:
                chunk: Chunk | None = heapq.heappop(self._retries)[2]
            else:
                chunk = planner.next_chunk()
            if chunk is None:
                return
            self._submit(chunk)

    def _submit(self, chunk: Chunk) -> None:
        self._inflight[chunk.chunk_id] = chunk
        self.backend.submit(chunk)

    def _wait_s(self) -> float:
        # A retry that is due but finds no free slot waits for a result like the rest.
        if not self._retries or len(self._inflight) >= self._max_inflight:
            return 0.5
        return max(0.0, min(0.5, self._retries[0][0] - time.monotonic()))

    def _schedule(self, chunk: Chunk, delay_s: float) -> None:
        self._seq += 1
        heapq.heappush(self._retries, (time.monotonic() + delay_s, self._seq, chunk))

    def _handle(self, result: ChunkResult, planner: ChunkPlanner) -> Batch | None:
        chunk = self._inflight.pop(result.chunk_id, None)
        if chunk is None:  # a second delivery of a chunk already handled
            self.summary.duplicates_discarded += result.size
            return None
        self.summary.chunks += 1
        self.summary.chunks_per_node[result.node or "unknown"] += 1
        if result.lost:
            planner.lost(chunk.chunk_id)
            return self._handle_lost(chunk, result)
        rest = rest_of(chunk, result)
        if rest:
            planner.lost(chunk.chunk_id)  # its timing says nothing about its peers
            self._continue(chunk, rest)
        elif result.attempt == 1:
            planner.observe(chunk.chunk_id, result.size, result.compute_s)
        fast = not result.failures and result.indices is None
        if fast and not self.ledger.overlaps(result.lo, result.hi):
            self.ledger.add_range(result.lo, result.hi)
            return Batch(range(result.lo, result.hi), result.values, stats=result.stats)
        return self._sort_out(chunk, result)

    def _sort_out(self, chunk: Chunk, result: ChunkResult) -> Batch:
        """The slow path: dedup index by index and decide what to retry."""
        failed = {f.index: f for f in result.failures}
        indices, values, final, again = [], [], [], []
        for index, value in zip(result.iter_indices(), result.values):
            if index in self.ledger:
                self.summary.duplicates_discarded += 1
            elif index not in failed:
                indices.append(index)
                values.append(value)
            elif chunk.attempt <= self.retry.max_retries and failed[index].retryable:
                again.append(index)
            else:
                final.append(failed[index])
        self.ledger.add_sorted(sorted(indices + [f.index for f in final]))
        if again:
            self.summary.retries += len(again)
            attempt = chunk.attempt + 1
            retry = chunk.with_indices(again, attempt, f"-r{attempt}")
            self._schedule(retry, self.retry.delay_s(chunk.attempt))
            log.info(
                "retrying %d failed parameter(s) of chunk %s (attempt %d of %d)",
                len(again),
                chunk.chunk_id,
                attempt,
                self.retry.max_retries + 1,
            )
        return Batch(indices, values, final)

    def _continue(self, chunk: Chunk, rest: list[int]) -> None:
        """A chunk whose worker was stopped part way (a parameter past its time or memory
        limit, a worker that stopped answering or was told to stop) came back with what
        it finished; the rest runs now as a chunk of its own, nothing done twice."""
        follow = chunk.with_indices(rest, chunk.attempt, f"@{rest[0]}")
        log.info(
            "chunk %s stopped after %d of %d parameters; the other %d run as chunk %s",
            chunk.chunk_id,
            chunk.size - len(rest),
            chunk.size,
            len(rest),
            follow.chunk_id,
        )
        self._schedule(follow, 0.0)

    def _handle_lost(self, chunk: Chunk, result: ChunkResult) -> Batch | None:
        """A chunk whose worker died every time: split it until the parameter that kills
        its worker is alone, so none of its neighbours is blamed."""
        if chunk.size > 1:
            log.warning(
                "chunk %s (%d parameters) was lost: %s; splitting it to find the cause",
                chunk.chunk_id,
                chunk.size,
                result.lost,
            )
            self.summary.retries += chunk.size
            for half in chunk.halves():
                self._schedule(half, 0.0)
            return None
        fresh = [f for f in result.failures if f.index not in self.ledger]
        self.summary.duplicates_discarded += len(result.failures) - len(fresh)
        self.ledger.add_sorted([f.index for f in fresh])
        log.error("parameter(s) %s kill their worker: %s", [f.index for f in fresh], result.lost)
        return Batch([], [], fresh)

    def _record(self, batch: Batch) -> None:
        s = self.summary
        s.succeeded += len(batch.values)
        s.failed += len(batch.failures)
        s.processed += len(batch.values) + len(batch.failures)
        s.failed_indices.extend(f.index for f in batch.failures)
        if batch.stats is not None:
            s.add_stats(batch.stats)
        else:
            s.add_values(batch.values)
        if self.store is not None:
            self.store.write(batch.indices, self._params(batch), batch.values, batch.failures)

    def _params(self, batch: Batch) -> list[Any]:
        """The parameters of the batch's successes, in order."""
        if isinstance(batch.indices, range) and batch.indices.step == 1:
            return list(self.space.iter_slice(batch.indices.start, batch.indices.stop))
        return [self.space[i] for i in batch.indices]

    def _report_stalls(self, planner: ChunkPlanner) -> None:
        now = time.monotonic()
        if now - self._last_stall_check < 1.0:
            return
        self._last_stall_check = now

        def expected_s(chunk_id: str) -> float | None:
            chunk = self._inflight.get(chunk_id)
            if chunk is None or planner.per_param_s is None:
                return None
            return planner.per_param_s * chunk.size

        for chunk in self.stalls.check(self.backend.running(), expected_s):
            log.warning("stalled: %s", StallWatch.describe(chunk, expected_s(chunk.chunk_id)))

    def _report_progress(self) -> None:
        done = len(self.ledger)
        if self.progress is not None:
            self.progress(done, len(self.space))
        now = time.monotonic()
        if now - self._last_progress_log >= 10.0:
            self._last_progress_log = now
            lifecycle(
                log,
                "progress",
                f"{done:,}/{len(self.space):,} parameters done",
                run_id=self.run_id,
                done=done,
                total=len(self.space),
            )
