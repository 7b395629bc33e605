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
    for index, param in zip(indices, params):
        try:
            values.append(fn(param))
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SystemExit too: one parameter must not end the loop
            values.append(None)
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
