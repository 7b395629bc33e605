"""Chunk execution: the one place a user function is called, by every backend."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult, ParamFailure


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
    progress: Progress | None = None,
) -> ChunkResult:
    """Call ``fn`` on every parameter of ``chunk``. A parameter that raises (anything but
    KeyboardInterrupt) is recorded with its traceback and the loop goes on, so one bad
    parameter never costs the rest. ``progress``, when given, is kept up to date so a
    watchdog can see which parameter runs, since when, and what is done."""
    if chunk.indices is None:
        indices = range(chunk.lo, chunk.hi)
        params = space.iter_slice(chunk.lo, chunk.hi)
    else:
        indices = chunk.indices
        params = (space[i] for i in indices)
    track = progress or Progress()
    values, failures = track.values, track.failures
    started = time.perf_counter()
    for index, param in zip(indices, params):
        track.param_started = time.monotonic()
        try:
            value = fn(param)
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SystemExit too: one parameter must not end the loop
            value = None
            failures.append(
                ParamFailure(
                    index=index,
                    param=param,
                    type=type(err).__name__,
                    message=str(err),
                    traceback=traceback.format_exc(),
                    attempts=chunk.attempt,
                )
            )
        # In this order, so a reader that sees position p finds values[:p] complete.
        values.append(value)
        track.position += 1
    track.param_started = None
    return ChunkResult.of(
        chunk,
        values=values,
        failures=failures,
        compute_s=time.perf_counter() - started,
        node=node,
        worker=worker,
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
