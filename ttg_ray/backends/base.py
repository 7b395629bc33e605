"""The interface every backend implements, and the registry that picks one by name.

A backend executes chunks somewhere and hands their results back; the runner does
everything else (planning, retries, dedup, the store, the summary). Backends import
their client libraries only when chosen.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from ttg_ray.core import registry
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult
from ttg_ray.errors import UsageError

BACKENDS = {
    "ray": "ttg_ray.backends.ray:RayBackend",
    "redis": "ttg_ray.backends.queue:RedisBackend",
    "rabbitmq": "ttg_ray.backends.queue:RabbitBackend",
}


@dataclass(frozen=True)
class BackendOptions:
    """What every backend takes; each backend extends it with its own typed options."""

    workers: int | None = None  # worker slots (local workers or CPUs); None = the machine's
    max_retries: int = 3  # system failures (worker or node death) retried per chunk
    # Values must be what a result file can keep (ttg_ray.core.codec): set when the
    # sweep writes one. Queue backends always encode (their messages are JSON).
    encode_values: bool = False
    # A parameter running longer fails with TimeoutError; its worker process is replaced.
    timeout_s: float | None = None
    # A worker process growing past this fails its parameter with MemoryError, and is
    # replaced (see the README's "Time and memory limits" for what is measured where).
    max_memory_mb: float | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "max_memory_mb"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise UsageError(
                    f"{name} must be a number > 0 (or None for no limit), got {value!r}"
                )


@dataclass(frozen=True)
class RunningChunk:
    """Where a running chunk is, as its worker last reported (heartbeats)."""

    chunk_id: str
    worker: str
    index: int | None  # the parameter it is on now (None: between parameters)
    param: Any
    chunk_s: float  # how long the chunk had run when reported
    param_s: float  # how long its current parameter had run when reported
    seen_at: float  # the driver's time.monotonic() when the report arrived

    def aged(self, now: float) -> RunningChunk:
        """The same report, its times advanced to ``now``."""
        late = max(0.0, now - self.seen_at)
        return replace(self, chunk_s=self.chunk_s + late, param_s=self.param_s + late, seen_at=now)


class Backend(ABC):
    """Runs chunks of one sweep. Build it with its options (no I/O), then
    ``with backend.open(fn, space, run_id):`` submit and poll; leaving the block releases
    whatever open() acquired (connections, a local cluster, worker processes), also after
    an error or a partial open."""

    name: str = "?"
    Options: type[BackendOptions] = BackendOptions

    def __init__(self, options: BackendOptions):
        self.options = options

    @classmethod
    def check_function(cls, fn: Callable[[Any], Any]) -> None:
        """Raise InvalidFunction, before anything starts, if this backend cannot send
        ``fn`` to its workers. Any callable will do unless a backend says otherwise."""
        return None

    def open(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> Backend:
        """Connect (or start a local cluster) and get ready to run ``fn`` over ``space``.
        Raises BackendUnavailable when the backend cannot be reached."""
        try:
            self._open(fn, space, run_id)
        except BaseException:
            self.close()
            raise
        return self

    @abstractmethod
    def _open(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> None:
        """Acquire the backend's resources; close() must release a partial open too."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many chunks can run at the same time (worker slots). The runner reads it
        again as it goes, so a backend whose cluster grows or shrinks may change it."""

    def want(self, chunks: int) -> None:
        """The number of chunks the sweep could still run at once (in flight, due, and
        not yet planned). A backend whose cluster can grow may ask for that much and
        give it back as it falls; by default, nothing."""
        return None

    @abstractmethod
    def submit(self, chunk: Chunk) -> None:
        """Start running ``chunk``. System failures (worker or node death) are retried by
        the backend itself, up to the max_retries it was built with."""

    @abstractmethod
    def poll(self, timeout_s: float) -> list[ChunkResult]:
        """Results that have arrived, waiting up to ``timeout_s`` for at least one. A chunk
        whose retries ran out comes back as a result with ``lost`` set."""

    def largest_chunk(self) -> int | None:
        """The most parameters a chunk may hold for its result to reach the driver, as
        far as the backend has seen (None: no limit). The runner plans no larger ones."""
        return None

    def running(self) -> list[RunningChunk]:
        """The chunks running now, as their workers last reported them (for stall
        reports); empty when the backend does not know."""
        return []

    @abstractmethod
    def close(self) -> None:
        """Release what open() acquired; safe to call more than once."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_backend(name: str) -> type[Backend]:
    """The Backend class registered under ``name``."""
    return registry.load(BACKENDS, name, "backend")


def backend_options(backend: type[Backend], **values: Any) -> BackendOptions:
    """``backend``'s typed options from keyword values; an unknown name is a UsageError
    naming the closest valid option."""
    known = [f.name for f in fields(backend.Options)]
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"unknown option {name!r} for the {backend.name} backend; {hint}"
                f"valid options: {', '.join(sorted(known))}"
            )
    return backend.Options(**values)
