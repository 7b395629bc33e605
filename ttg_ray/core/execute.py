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
    appends to ``values`` and ``failures``, then counts ``position`` (parameters done),
    and sets ``param_started`` (time.monotonic()) before each call."""

    values: list[Any] = field(default_factory=list)
    failures: list[ParamFailure] = field(default_factory=list)
    position: int = 0
    param_started: float | None = None
    chunk_started: float = field(default_factory=time.monotonic)


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
    started = time.perf_counter()
    if progress is None:
        values, failures = _run_fast(fn, space, chunk, indices, params)
    else:
        values, failures = _run_tracked(fn, chunk, indices, params, progress)
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


def _run_fast(
    fn: Callable[[Any], Any], space: Space, chunk: Chunk, indices: Any, params: Any
) -> tuple[list[Any], list[ParamFailure]]:
    """map() in C for the common case; a parameter that raises is recorded and the same
    iterator goes on after it (extend keeps the values it already took)."""
    values: list[Any] = []
    failures: list[ParamFailure] = []
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
            values.append(None)
            failures.append(_failure(index, space[index], err, chunk.attempt))
    return values, failures


def _run_tracked(
    fn: Callable[[Any], Any], chunk: Chunk, indices: Any, params: Any, track: Progress
) -> tuple[list[Any], list[ParamFailure]]:
    """One parameter at a time, telling ``track`` which one runs and since when."""
    values, failures = track.values, track.failures
    for index, param in zip(indices, params):
        track.param_started = time.monotonic()
        try:
            value = fn(param)
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SystemExit too: one parameter must not end the loop
            value = None
            failures.append(_failure(index, param, err, chunk.attempt))
        # In this order, so a reader that sees position p finds values[:p] complete.
        values.append(value)
        track.position += 1
    track.param_started = None
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
