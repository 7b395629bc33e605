"""The public front door: ``compute()`` returns every value, ``stream()`` yields them
as they complete. Both validate their arguments and run a Runner over a backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttg_ray.backends.base import backend_options as backend_options_of
from ttg_ray.backends.base import load_backend
from ttg_ray.core.identity import SweepIdentity
from ttg_ray.core.ledger import IndexLedger
from ttg_ray.core.params import Space, as_space
from ttg_ray.core.results import ParamFailure
from ttg_ray.core.summary import Summary
from ttg_ray.engine.resume import Store, open_output
from ttg_ray.engine.runner import Batch, ProgressFn, RetryPolicy, Runner
from ttg_ray.errors import InvalidFunction, UsageError

VERSION = "0.1.0"  # also ttg_ray.__version__; recorded in every result file


@dataclass
class SweepResult:
    """What compute() returns: values in parameter order (None where failed)."""

    values: list[Any]
    failures: list[ParamFailure]
    summary: Summary
    output: Path | None = None
    space: Space | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_pandas(self) -> Any:
        """The results as a pandas DataFrame, the same table read_results() gives from
        the sweep's output file (needs the ``table`` extra: pyarrow and pandas)."""
        from ttg_ray.engine.table import to_pandas

        return to_pandas(self.values, self.failures, self.space)


@dataclass
class Sweep:
    """What stream() returns: iterate it for ``(index, param, value)`` of each success
    as it completes; afterwards ``failures`` and ``summary`` are complete."""

    _runner: Runner
    _store: Store | None
    failures: list[ParamFailure] = field(default_factory=list)

    @property
    def summary(self) -> Summary:
        return self._runner.summary

    @property
    def ok(self) -> bool:
        return not self.failures

    def batches(self) -> Iterator[Batch]:
        """The raw batches, for callers that handle whole chunks at a time."""
        batches = self._runner.batches()
        try:
            for batch in batches:
                self.failures.extend(batch.failures)
                yield batch
        finally:
            batches.close()  # releases the backend, also when the caller stops early
            if self._store is not None:
                self._store.discard_if_empty()

    def __iter__(self) -> Iterator[tuple[int, Any, Any]]:
        space = self._runner.space
        for batch in self.batches():
            for index, value in zip(batch.indices, batch.values):
                yield index, space[index], value


def stream(fn: Callable[[Any], Any], params: Any, **kwargs: Any) -> Sweep:
    """Prepare a sweep of ``fn`` over ``params``; it runs as you iterate it.

    ``params`` is an int (0..n-1), a range, a sequence or numpy array, a dict of axes (a
    grid) or a Space. ``output`` is a JSON Lines file (``.jsonl``) or a Parquet
    directory (``.parquet``) written as results arrive; with ``resume``, the indices
    already in it are skipped (and not yielded); with ``retry_failed``, only the
    parameters it records as failed run again. Other keyword arguments go
    to the backend (RayOptions: address, spread, include_dashboard; QueueOptions:
    redis_url, amqp_url, external_workers, allow_modules); an unknown one is refused.
    """
    return _prepare(fn, params, **kwargs)


def read_results(path: str | Path) -> Any:
    """A result file (.jsonl) or directory (.parquet) as a pandas DataFrame: ``index``,
    the grid axes (else ``param``), the value (a dict spread into columns, else
    ``value``), ``error_type`` and ``error_message``; one row per parameter."""
    from ttg_ray.engine.table import read_results as read

    return read(path)


def compute(fn: Callable[[Any], Any], params: Any, **kwargs: Any) -> SweepResult:
    """Run ``fn`` over every parameter of ``params`` and return all values in order.

    Takes the same arguments as stream(). With ``resume``, the values already in the
    output file are read back into ``values`` too.
    """
    resumed: dict[int, Any] = {}
    sweep = _prepare(fn, params, on_resumed=resumed.__setitem__, **kwargs)
    values: list[Any] = [None] * len(sweep._runner.space)
    for index, value in resumed.items():
        values[index] = value
    del resumed
    for batch in sweep.batches():
        indices = batch.indices
        if isinstance(indices, range) and indices.step == 1:
            values[indices.start : indices.stop] = batch.values
        else:
            for index, value in zip(indices, batch.values):
                values[index] = value
    output = Path(kwargs["output"]) if kwargs.get("output") else None
    return SweepResult(values, sweep.failures, sweep.summary, output, sweep._runner.space)


def _prepare(
    fn: Callable[[Any], Any],
    params: Any,
    *,
    backend: str = "ray",
    chunk_size: int | None = None,
    workers: int | None = None,
    max_retries: int = 3,
    output: str | Path | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    progress: ProgressFn | None = None,
    run_id: str | None = None,
    on_resumed: Callable[[int, Any], None] | None = None,
    **backend_options: Any,
) -> Sweep:
    if not callable(fn):
        raise InvalidFunction(f"fn must be callable, got {type(fn).__name__}")
    space = as_space(params)
    _check_count("chunk_size", chunk_size, minimum=1)
    _check_count("workers", workers, minimum=1)
    _check_count("max_retries", max_retries, minimum=0)
    if (resume or retry_failed) and output is None:
        raise UsageError(
            "resume and retry_failed need the output file of the earlier run (output=PATH)"
        )
    backend_cls = load_backend(backend)
    # With a result file every value must be one it can keep: each backend then hands
    # back exactly what the file holds (Ray without a file: any picklable value).
    backend_options.setdefault("encode_values", output is not None)
    options = backend_options_of(
        backend_cls, workers=workers, max_retries=max_retries, **backend_options
    )
    store: Store | None = None
    done, earlier_failures = IndexLedger(), []
    if output is not None:
        checkpoint = open_output(
            output,
            SweepIdentity.of(fn, space, VERSION),
            space,
            resume=resume,
            retry_failed=retry_failed,
            on_resumed=on_resumed,
        )
        store, done, earlier_failures = checkpoint.store, checkpoint.done, checkpoint.failures
    runner = Runner(
        backend_cls(options),
        fn,
        space,
        run_id or uuid.uuid4().hex[:12],
        chunk_size=chunk_size,
        retry=RetryPolicy(max_retries=max_retries),
        store=store,
        done=done,
        progress=progress,
    )
    # Failures recorded by the earlier run stay failures: .ok, the summary and the exit
    # code say so, as they did then.
    runner.summary.failed += len(earlier_failures)
    runner.summary.failed_indices.extend(f.index for f in earlier_failures)
    return Sweep(runner, store, failures=earlier_failures)


def _check_count(name: str, value: int | None, minimum: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")
