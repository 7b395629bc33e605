"""Chunk execution: the one place a user function is called, by every backend."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from ttg_ray.core import codec
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.summary import ValueStats
from ttg_ray.errors import Unencodable

_PLAIN = {int, float, str, bool, type(None)}  # kept as they are by the codec


def run_chunk(
    fn: Callable[[Any], Any],
    space: Space,
    chunk: Chunk,
    *,
    node: str = "",
    worker: str = "",
    encode_values: bool = False,
) -> ChunkResult:
    """Call ``fn`` on every parameter of ``chunk``. A parameter that raises (anything but
    KeyboardInterrupt) is recorded with its traceback and the loop goes on, so one bad
    parameter never costs the rest. With ``encode_values`` (the sweep writes a file),
    each value becomes what the file will read back, and a value the codec cannot keep
    fails its parameter, not retryable, as on the queue backends."""
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
