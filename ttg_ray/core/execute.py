"""Chunk execution: the one place a user function is called, by every backend."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.summary import ValueStats


def run_chunk(
    fn: Callable[[Any], Any],
    space: Space,
    chunk: Chunk,
    *,
    node: str = "",
    worker: str = "",
) -> ChunkResult:
    """Call ``fn`` on every parameter of ``chunk``. A parameter that raises (anything but
    KeyboardInterrupt) is recorded with its traceback and the loop goes on, so one bad
    parameter never costs the rest."""
    if chunk.indices is None:
        indices = range(chunk.lo, chunk.hi)
        params = space.iter_slice(chunk.lo, chunk.hi)
    else:
        indices = chunk.indices
        params = (space[i] for i in indices)
    values: list[Any] = []
    failures: list[ParamFailure] = []
    started = time.perf_counter()
    remaining = iter(params)
    size = len(indices)
    while True:
        # map() in C for the common case; a parameter that raises is recorded and the
        # same iterator goes on after it (extend keeps the values it already took).
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
            failures.append(
                ParamFailure(
                    index=index,
                    param=space[index],
                    type=type(err).__name__,
                    message=str(err),
                    traceback=traceback.format_exc(),
                    attempts=chunk.attempt,
                )
            )
            if len(values) == size:
                break
    return ChunkResult.of(
        chunk,
        values=values,
        failures=failures,
        compute_s=time.perf_counter() - started,
        stats=ValueStats.of(values),
        node=node,
        worker=worker,
    )


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
