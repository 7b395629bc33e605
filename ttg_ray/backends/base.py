"""The interface every backend implements, and the registry that picks one by name.

A backend executes chunks somewhere and hands their results back; the runner does
everything else (planning, retries, dedup, the store, the summary). Backends import
their client libraries only when chosen.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttg_ray.core import registry
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult

BACKENDS = {
    "ray": "ttg_ray.backends.ray:RayBackend",
    "redis": "ttg_ray.backends.queue:RedisBackend",
    "rabbitmq": "ttg_ray.backends.queue:RabbitBackend",
}


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend may need; each backend reads the fields that concern it."""

    workers: int | None = None
    max_retries: int = 3
    address: str | None = None  # ray: cluster address (else RAY_ADDRESS, else local)
    spread: bool = False  # ray: SPREAD scheduling across nodes
    include_dashboard: bool | None = None  # ray: for a local Ray; None = Ray's default
    autoscale_cpus: int = 0  # ray: ask the cluster's autoscaler for up to this many CPUs
    redis_url: str | None = None  # redis: else TTG_REDIS_URL, else localhost
    amqp_url: str | None = None  # rabbitmq: else TTG_AMQP_URL, else localhost
    external_workers: bool = False  # queues: start no local workers
    allow_modules: tuple[str, ...] = ()  # queues: extra modules local workers may run


class Backend(ABC):
    """Runs chunks of one sweep. Lifecycle: start() once, then any number of submit()
    and poll(), then close() (always, also after errors)."""

    name: str = "?"

    def __init__(self, options: BackendOptions):
        self.options = options

    @abstractmethod
    def start(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> None:
        """Connect (or start a local cluster) and get ready to run ``fn`` over ``space``.
        Raises BackendUnavailable when the backend cannot be reached."""

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

    @abstractmethod
    def close(self) -> None:
        """Release connections and anything start() created."""


def load_backend(name: str) -> type[Backend]:
    """The Backend class registered under ``name``."""
    return registry.load(BACKENDS, name, "backend")
