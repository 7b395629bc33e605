"""Chunk execution: the one place a user function is called, by every backend."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ttg_ray.core import codec
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.summary import ValueStats
from ttg_ray.errors import Unencodable

_PLAIN = {int, float, str, bool, type(None)}  # kept as they are by the codec


@dataclass
class Progress:
    """Where a running chunk is, for a watchdog in another thread or process: run_chunk
    appends to ``failures``, then to ``values`` (one per parameter done, in order), and
    sets ``finished`` at the end. No clock is read per parameter (that would cost a
    function of a microsecond a quarter of its speed): ``running_since`` tells a reader
    that polls it when the current parameter began, to within its polling interval."""

    values: list[Any] = field(default_factory=list)
    failures: list[ParamFailure] = field(default_factory=list)
    finished: bool = False
    chunk_started: float = field(default_factory=time.monotonic)
    # (position, when a reader first saw it)
    _seen: tuple[int, float] = field(default=(0, 0.0), init=False, repr=False)

    def __post_init__(self) -> None:
        self._seen = (0, self.chunk_started)

    @property
    def position(self) -> int:
        """Parameters done; ``values[:position]`` and their failures are complete."""
        return len(self.values)

    def running_since(self, now: float) -> float | None:
        """When the parameter now running began (time.monotonic()), as first seen by
        calls of this method; None once the chunk is done."""
        if self.finished:
            return None
        position = len(self.values)
        if position != self._seen[0]:
            self._seen = (position, now)
        return self._seen[1]


def run_chunk(
    fn: Callable[[Any], Any],
    space: Space,
    chunk: Chunk,
    *,
    node: str = "",
    worker: str = "",
    encode_values: bool = False,
    progress: Progress | None = None,
) -> ChunkResult:
    """Call ``fn`` on every parameter of ``chunk``. A parameter that raises (anything but
    KeyboardInterrupt) is recorded with its traceback and the loop goes on, so one bad
    parameter never costs the rest. With ``encode_values`` (the sweep writes a file),
    each value becomes what the file will read back, and a value the codec cannot keep
    fails its parameter, not retryable, as on the queue backends. ``progress``, when
    given, is kept up to date so a watchdog can see which parameter runs, since when,
    and what is done."""
    if chunk.indices is None:
        indices = range(chunk.lo, chunk.hi)
        params = space.iter_slice(chunk.lo, chunk.hi)
    else:
        indices = chunk.indices
        params = (space[i] for i in indices)
    track = Progress() if progress is None else progress
    started = time.perf_counter()
    values, failures = _run(fn, space, chunk, indices, params, track)
    track.finished = True
    compute_s = time.perf_counter() - started
    if encode_values:
        values, failures = encodable_values(values, failures, chunk, space)
    return ChunkResult.of(
        chunk,
        values=values,
        failures=failures,
        compute_s=compute_s,
        stats=ValueStats.of(values),
        node=node,
        worker=worker,
    )


def _run(
    fn: Callable[[Any], Any], space: Space, chunk: Chunk, indices: Any, params: Any, track: Progress
) -> tuple[list[Any], list[ParamFailure]]:
    """map() in C; a parameter that raises is recorded and the same iterator goes on
    after it. ``extend`` appends value by value, so another thread reading
    ``len(values)`` sees exactly how far the chunk is."""
    values, failures = track.values, track.failures
    remaining = iter(params)
    size = len(indices)
    while len(values) < size:
        try:
            values.extend(map(fn, remaining))
            if len(values) == size:
                break
            # map() ended early: the function raised StopIteration, which ends a map
            raise StopIteration(f"{_name(fn)} raised StopIteration")
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SystemExit too: one parameter must not end the loop
            index = indices[len(values)]
            # The failure first: a reader that sees the value sees its failure too.
            failures.append(_failure(index, space[index], err, chunk.attempt))
            values.append(None)
    return values, failures


def _failure(index: int, param: Any, err: BaseException, attempts: int) -> ParamFailure:
    return ParamFailure(
        index=index,
        param=param,
        type=type(err).__name__,
        message=str(err),
        traceback=traceback.format_exc(),
        attempts=attempts,
    )


def encodable_values(
    values: list[Any], failures: list[ParamFailure], chunk: Chunk, space: Space
) -> tuple[list[Any], list[ParamFailure]]:
    """Each value as the codec reads it back; one it cannot keep fails its parameter."""
    if set(map(type, values)) <= _PLAIN:  # the common case, at C speed: nothing changes
        return values, failures
    out, failures = list(values), list(failures)
    failed = {f.index for f in failures}
    for k, index in enumerate(chunk.iter_indices()):
        if index in failed:
            continue
        try:
            out[k] = codec.normal(values[k])
        except Unencodable as err:
            out[k] = None
            failures.append(unencodable_failure(index, space[index], err, chunk.attempt))
    return out, failures


def unencodable_failure(index: int, param: Any, err: Unencodable, attempts: int) -> ParamFailure:
    """The failure of a parameter whose value cannot be written: the same on every
    backend, and never retried (the same value would come back)."""
    return ParamFailure(
        index=index,
        param=param,
        type="Unencodable",
        message=codec.failure_message(err),
        attempts=attempts,
        retryable=False,
    )


def cut_short(
    chunk: Chunk,
    space: Space,
    done: int,
    values: list[Any],
    failures: list[ParamFailure],
    stuck: tuple[str, str] | None = None,
    **outcome: Any,
) -> ChunkResult:
    """The result of the first ``done`` parameters of ``chunk``, whose worker was stopped
    there; with ``stuck`` = (kind, message), the parameter it was stopped on fails with
    that (TimeoutError, MemoryError). The runner runs the rest as a continuation."""
    indices = list(chunk.iter_indices())
    covered = indices[:done]
    values = list(values[:done])
    first = set(covered) if chunk.indices is not None else None
    end = chunk.lo + done
    failures = [f for f in failures if (f.index < end if first is None else f.index in first)]
    if stuck is not None and done < len(indices):
        index = indices[done]
        covered.append(index)
        values.append(None)
        failures.append(
            ParamFailure(index, space[index], stuck[0], stuck[1], attempts=chunk.attempt)
        )
    lo = covered[0] if covered else chunk.lo
    hi = covered[-1] + 1 if covered else chunk.lo
    part = Chunk(
        chunk.run_id,
        chunk.chunk_id,
        lo,
        hi,
        tuple(covered) if chunk.indices is not None and covered else None,
        chunk.attempt,
    )
    return ChunkResult.of(part, values=values, failures=failures, **outcome)


def rest_of(chunk: Chunk, result: Chunk) -> list[int]:
    """The indices of ``chunk`` that ``result`` (a prefix of it, see cut_short) lacks."""
    if result.size >= chunk.size:
        return []
    return list(chunk.iter_indices())[result.size :]


def lost_chunk(chunk: Chunk, space: Space, kind: str, message: str) -> ChunkResult:
    """The result of a chunk whose worker died every time it ran it: every parameter
    failed with ``kind`` (for example WorkerCrashedError)."""
    failures = [
        ParamFailure(index=i, param=space[i], type=kind, message=message, attempts=chunk.attempt)
        for i in chunk.iter_indices()
    ]
    return ChunkResult.of(
        chunk,
        values=[None] * len(failures),
        failures=failures,
        lost=message,
    )


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__
