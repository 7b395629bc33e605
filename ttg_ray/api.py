"""The public front door: ``compute()`` returns every value, ``stream()`` yields them
as they complete. Both validate their arguments and run a Runner over a backend."""

from __future__ import annotations

import difflib
import logging
import os
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ttg_ray.backends.base import Backend, BackendOptions, load_backend
from ttg_ray.backends.base import backend_options as backend_options_of
from ttg_ray.core.identity import SweepIdentity
from ttg_ray.core.ledger import IndexLedger
from ttg_ray.core.params import ParamsLike, Space, as_space, require_params
from ttg_ray.core.results import ParamFailure
from ttg_ray.core.setup import WithSetup
from ttg_ray.core.summary import Summary
from ttg_ray.engine.progress import ProgressDisplay, ProgressFn
from ttg_ray.engine.progress import resolve as resolve_progress
from ttg_ray.engine.resume import Store, open_output
from ttg_ray.engine.runner import Batch, RetryPolicy, Runner
from ttg_ray.errors import InvalidFunction, SweepFailed, UsageError

log = logging.getLogger(__name__)

OnError = Literal["raise", "record"]
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
        """True when every parameter succeeded."""
        return not self.failures

    def to_pandas(self) -> Any:
        """The results as a pandas DataFrame, the same table read_results() gives from
        the sweep's output file (needs the ``table`` extra: pyarrow and pandas)."""
        from ttg_ray.engine.table import to_pandas

        space = self.space if self.space is not None else as_space(len(self.values))
        return to_pandas(self.values, self.failures, space)


@dataclass
class Sweep:
    """What stream() returns: iterate it for ``(index, param, value)`` of each success
    as it completes; afterwards ``failures`` and ``summary`` are complete.

    It runs once. Stopping early (``break``, ``close()``, or dropping it) cancels the
    chunks in flight and releases the backend; what was written to ``output`` by then is
    consistent, and ``resume=True`` carries on from it."""

    _runner: Runner
    _store: Store | None
    failures: list[ParamFailure] = field(default_factory=list)
    on_error: OnError = "raise"
    _display: ProgressDisplay | None = None
    _state: str = "new"  # new -> running -> done | stopped
    _gen: Generator[Batch, None, None] | None = None

    @property
    def summary(self) -> Summary:
        return self._runner.summary

    @property
    def ok(self) -> bool:
        return not self.failures

    def batches(self) -> Generator[Batch, None, None]:
        """The raw batches, for callers that handle whole chunks at a time."""
        if self._state != "new":
            raise UsageError(
                f"this sweep has already {'run' if self._state == 'done' else 'been stopped'}"
                "; a Sweep runs once: call ttg_ray.stream() again (with resume=True and the "
                "same output to carry on from where it stopped)"
            )
        self._state = "running"
        self._gen = self._batches()
        return self._gen

    def _batches(self) -> Generator[Batch, None, None]:
        batches = self._runner.batches()
        finished = False
        try:
            for batch in batches:
                self.failures.extend(batch.failures)
                if batch.failures and self.on_error == "raise":
                    raise SweepFailed(batch.failures[0])
                yield batch
            finished = True
        finally:
            batches.close()  # cancels what is in flight and releases the backend
            if self._display is not None:
                self._display.close()
            if self._store is not None:
                self._store.discard_if_empty()
            self._state = "done" if finished else "stopped"
        if self.failures:
            _warn_failures(self.failures, self._runner.summary)

    def close(self) -> None:
        """Stop the sweep now: in-flight chunks are cancelled, the backend released."""
        if self._gen is not None:
            self._gen.close()
        elif self._state == "new":
            self._state = "stopped"

    def __iter__(self) -> Iterator[tuple[int, Any, Any]]:
        space = self._runner.space
        batches = self.batches()
        try:
            for batch in batches:
                for index, value in zip(batch.indices, batch.values):
                    yield index, space[index], value
        finally:
            batches.close()  # stopped early: the backend is released now, not at exit

    def __del__(self) -> None:
        # Dropped half-way (garbage collected): release the backend all the same.
        if self._state == "running":
            self.close()


def _warn_failures(failures: list[ParamFailure], summary: Summary) -> None:
    first = failures[0]
    log.warning(
        "%d of %d parameters failed (recorded, on_error='record'); the first, index %d "
        "(%r): %s: %s\n%s",
        len(failures),
        summary.total,
        first.index,
        first.param,
        first.type,
        first.message,
        first.traceback.rstrip(),
    )


def stream(
    fn: Callable[..., Any],
    params: ParamsLike,
    *,
    backend: str = "ray",
    workers: int | None = None,
    chunk_size: int | None = None,
    max_retries: int = 3,
    on_error: OnError = "raise",
    progress: bool | ProgressFn | None = None,
    setup: Callable[[], Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    run_id: str | None = None,
    options: BackendOptions | None = None,
    **backend_options: Any,
) -> Sweep:
    """Prepare a sweep of ``fn`` over ``params``; it runs as you iterate it.

    Args:
        fn: called once per parameter, on a worker; must be picklable (module level).
        params: an int n (0..n-1), a range, a list or other sequence, a dict of axes (a
            grid), or a Space (ParamRange, Grid, ParamList, FloatRange, Linspace,
            Logspace, RandomSample, QuasiRandom, ...).
        backend: "ray" (default), "redis" or "rabbitmq".
        workers: worker slots: CPUs of a local Ray, or local queue workers; None = the
            machine's.
        chunk_size: parameters per task; None sizes chunks automatically.
        max_retries: how often a parameter that raised is run again, and a chunk whose
            worker died is resubmitted.
        on_error: "raise" (default): the first parameter that fails for good stops the
            sweep, cancels what is in flight and raises SweepFailed. "record": run every
            parameter, collect failures in ``failures`` and log one warning at the end.
        progress: True shows a progress bar, False none, a callable gets
            ``(done, total)``; None (default) shows one on a terminal or in a notebook.
        setup: run once per worker process (load a model, a data set); ``fn`` is then
            called as ``fn(param, resource)`` with what setup returned in that process.
            On every backend; the queue backends send its name, so there it must be a
            module-level function of a module the workers can import, as ``fn`` must.
        output: a JSON Lines file (``.jsonl``) or a Parquet directory (``.parquet``)
            written as results arrive; it records its sweep (space, function, kwargs).
        resume: skip the indices ``output`` already holds (they are not yielded); a file
            of another sweep is refused.
        retry_failed: run again only the parameters ``output`` records as failed.
        run_id: names the run in logs, task names and queue keys; default random.
        options: the backend's typed options (RayOptions, QueueOptions); ``workers`` and
            ``max_retries`` above take precedence over its fields.
        **backend_options: the same options as keywords (address, spread,
            include_dashboard for Ray; redis_url, amqp_url, external_workers,
            allow_modules for the queues). An unknown name fails at once, naming the
            closest valid one.

    Returns:
        A Sweep: iterate it for ``(index, param, value)`` of each success.

    Raises:
        UsageError: bad arguments (before any backend starts).
        BackendUnavailable: the backend cannot be reached.
        SweepFailed: with on_error="raise", when a parameter fails for good.
    """
    return _prepare(
        fn,
        params,
        backend=backend,
        workers=workers,
        chunk_size=chunk_size,
        max_retries=max_retries,
        on_error=on_error,
        progress=progress,
        setup=setup,
        output=output,
        resume=resume,
        retry_failed=retry_failed,
        run_id=run_id,
        options=options,
        backend_options=backend_options,
    )


def compute(
    fn: Callable[..., Any],
    params: ParamsLike,
    *,
    backend: str = "ray",
    workers: int | None = None,
    chunk_size: int | None = None,
    max_retries: int = 3,
    on_error: OnError = "raise",
    progress: bool | ProgressFn | None = None,
    setup: Callable[[], Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    run_id: str | None = None,
    options: BackendOptions | None = None,
    **backend_options: Any,
) -> SweepResult:
    """Run ``fn`` over every parameter of ``params`` and return all values in order.

    Args:
        fn, params, backend, workers, chunk_size, max_retries, on_error, progress,
        setup, output, resume, retry_failed, run_id, options, **backend_options: as
        for stream().

    Returns:
        A SweepResult: ``values`` in parameter order (None where a parameter failed,
        with on_error="record"), ``failures``, ``summary`` and ``ok``. With ``resume``,
        the values already in ``output`` are read back into ``values`` too.

    Raises:
        UsageError, BackendUnavailable, SweepFailed: as for stream(); SweepFailed's
        ``partial`` is the SweepResult so far.
    """
    resumed: dict[int, Any] = {}
    sweep = _prepare(
        fn,
        params,
        backend=backend,
        workers=workers,
        chunk_size=chunk_size,
        max_retries=max_retries,
        on_error=on_error,
        progress=progress,
        setup=setup,
        output=output,
        resume=resume,
        retry_failed=retry_failed,
        run_id=run_id,
        options=options,
        backend_options=backend_options,
        on_resumed=resumed.__setitem__,
    )
    values: list[Any] = [None] * len(sweep._runner.space)
    for index, value in resumed.items():
        values[index] = value
    del resumed
    path = Path(output) if output is not None else None
    try:
        for batch in sweep.batches():
            indices = batch.indices
            if isinstance(indices, range) and indices.step == 1:
                values[indices.start : indices.stop] = batch.values
            else:
                for index, value in zip(indices, batch.values):
                    values[index] = value
    except SweepFailed as err:
        err.partial = SweepResult(values, sweep.failures, sweep.summary, path, sweep._runner.space)
        raise
    return SweepResult(values, sweep.failures, sweep.summary, path, sweep._runner.space)


def read_results(path: str | os.PathLike[str]) -> Any:
    """A result file (.jsonl) or directory (.parquet) as a pandas DataFrame: ``index``,
    the grid axes (else ``param``), the value (a dict spread into columns, else
    ``value``), ``error_type`` and ``error_message``; one row per parameter."""
    from ttg_ray.engine.table import read_results as read

    return read(path)


def shutdown() -> None:
    """Stop the local Ray that ttg_ray started in this process (it otherwise stays up
    for later calls, until the process exits). A Ray you started or joined yourself with
    ray.init() is never stopped by ttg_ray."""
    # Looked up, not imported: with no Ray started there is nothing to stop, and no
    # reason to import Ray just to find that out.
    session = sys.modules.get("ttg_ray.backends.ray_session")
    if session is not None:
        session.shutdown()


_TOP_LEVEL = (
    "backend",
    "workers",
    "chunk_size",
    "max_retries",
    "on_error",
    "progress",
    "setup",
    "output",
    "resume",
    "retry_failed",
    "run_id",
    "options",
)


def _prepare(
    fn: Callable[..., Any],
    params: Any,
    *,
    backend: str,
    workers: int | None,
    chunk_size: int | None,
    max_retries: int,
    on_error: OnError,
    progress: bool | ProgressFn | None,
    setup: Callable[[], Any] | None,
    output: str | os.PathLike[str] | None,
    resume: bool,
    retry_failed: bool,
    run_id: str | None,
    options: BackendOptions | None,
    backend_options: dict[str, Any],
    on_resumed: Callable[[int, Any], None] | None = None,
) -> Sweep:
    if not callable(fn):
        raise InvalidFunction(f"fn must be callable, got {type(fn).__name__}")
    backend_cls = load_backend(backend)
    _check_names(backend_cls, backend_options)
    space = require_params(
        as_space(params),
        lambda: f"params={_brief(params)}",
        "pass a count n > 0, a non-empty range or list, a dict of non-empty axes, or a "
        "Space with at least one parameter",
    )
    _check_count("chunk_size", chunk_size, minimum=1)
    _check_count("workers", workers, minimum=1)
    _check_count("max_retries", max_retries, minimum=0)
    if on_error not in ("raise", "record"):
        raise UsageError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    if (resume or retry_failed) and output is None:
        raise UsageError(
            "resume and retry_failed need the output file of the earlier run (output=PATH)"
        )
    identity_fn = fn
    if setup is not None:
        fn = WithSetup(fn, setup)
    backend_cls.check_function(fn)
    # With a result file every value must be one it can keep: each backend then hands
    # back exactly what the file holds (Ray without a file: any picklable value).
    backend_options.setdefault("encode_values", output is not None)
    if options is None:
        typed = backend_options_of(
            backend_cls, workers=workers, max_retries=max_retries, **backend_options
        )
    elif isinstance(options, backend_cls.Options):
        typed = replace(options, workers=workers, max_retries=max_retries, **backend_options)
    else:
        raise UsageError(
            f"options is a {type(options).__name__}, but the {backend} backend takes "
            f"{backend_cls.Options.__name__}"
        )
    store: Store | None = None
    done, earlier_failures = IndexLedger(), list[ParamFailure]()
    if output is not None:
        checkpoint = open_output(
            output,
            SweepIdentity.of(identity_fn, space, VERSION, setup=setup),
            space,
            resume=resume,
            retry_failed=retry_failed,
            on_resumed=on_resumed,
        )
        store, done, earlier_failures = checkpoint.store, checkpoint.done, checkpoint.failures
    summary_box: list[Summary] = []
    callback, display = resolve_progress(
        progress, lambda: summary_box[0].failed if summary_box else 0
    )
    runner = Runner(
        backend_cls(typed),
        fn,
        space,
        run_id or uuid.uuid4().hex[:12],
        chunk_size=chunk_size,
        retry=RetryPolicy(max_retries=max_retries),
        store=store,
        done=done,
        progress=callback,
    )
    summary_box.append(runner.summary)
    # Failures recorded by the earlier run stay failures: .ok, the summary and the exit
    # code say so, as they did then.
    runner.summary.failed += len(earlier_failures)
    runner.summary.failed_indices.extend(f.index for f in earlier_failures)
    return Sweep(runner, store, failures=earlier_failures, on_error=on_error, _display=display)


def _check_names(backend_cls: type[Backend], given: dict[str, Any]) -> None:
    """An unknown keyword fails before anything starts, naming the closest valid one
    among compute()'s own arguments and the backend's options."""
    known = [f.name for f in fields(backend_cls.Options)]
    for name in given:
        if name in known and name not in ("workers", "max_retries"):
            continue
        valid = sorted({*_TOP_LEVEL, *known})
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"unknown option {name!r} for the {backend_cls.name} backend; {hint}"
            f"valid options: {', '.join(valid)}"
        )


def _check_count(name: str, value: int | None, minimum: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _brief(params: Any) -> str:
    text = repr(params)
    return text if len(text) <= 60 else f"{text[:57]}..."
