"""The queue adapter interface: the same verbs, with the same meaning, on every broker.

A *namespace* names one task queue with its retry and dead-letter queues. The backend
gives each run its own namespace (its run id), so concurrent runs, their workers and
their faults never touch each other; workers started elsewhere without a run id use the
shared default namespace (``ttg:tasks`` / ``ttg.tasks``) and route each result by the
run id inside the message. Results always go to a per-run channel.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ttg_ray.core import registry
from ttg_ray.errors import BackendUnavailable

ADAPTERS = {
    "memory": "ttg_ray.queues.memory:MemoryAdapter",
    "redis": "ttg_ray.queues.redis_streams:RedisStreamsAdapter",
    "rabbitmq": "ttg_ray.queues.rabbitmq:RabbitAdapter",
}
DEFAULT_VISIBILITY_TIMEOUT_S = 2.0
DEFAULT_MAX_DELIVERIES = 4


@dataclass
class Delivery:
    """A task message handed to one consumer; ack, nack or dead-letter it exactly once.

    ``deliveries`` counts how often the broker has handed it out (1 the first time).
    """

    id: Any
    body: bytes
    deliveries: int = 1
    consumer: str = ""


@dataclass
class QueueStats:
    """A snapshot of one namespace (and, when given, one run's result channel)."""

    waiting: int = 0
    in_flight: int | None = None  # None when the broker cannot tell (RabbitMQ via AMQP)
    in_flight_by_consumer: dict[str, int] = field(default_factory=dict)
    retrying: int = 0
    dead_letters: int = 0
    consumers: int = 0
    results_waiting: int = 0
    acked: int | None = None  # chunks acked in this namespace, when the broker counts
    running: list[dict] = field(default_factory=list)  # heartbeats, where the broker keeps them

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class TaskQueue(ABC):
    """The task side of a namespace: publish chunks, hand them to consumers, settle them.

    Delivery is at least once: a message consumed and never acked (its consumer died) is
    handed out again, with ``deliveries`` counting up. How often is too often is the
    consumer's policy (see Quarantine), not the queue's.
    """

    @abstractmethod
    def publish(self, body: bytes) -> None:
        """Add a task message to the namespace's queue, durably (confirmed)."""

    @abstractmethod
    def consume(self, consumer: str, timeout_s: float, count: int = 1) -> list[Delivery]:
        """Up to ``count`` messages for ``consumer``, waiting up to ``timeout_s`` for one.
        Messages abandoned by dead consumers come first: Redis takes them over once idle
        past the visibility timeout; RabbitMQ hands them back by itself."""

    @abstractmethod
    def ack(self, delivery: Delivery) -> None:
        """The message is done: remove it for good."""

    @abstractmethod
    def nack(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        """Hand the message back, to be delivered again after ``delay_s``."""

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to the dead letters with ``reason``; it is never run."""

    @abstractmethod
    def touch(self, deliveries: list[Delivery]) -> None:
        """Keep a long-running consumer's claim alive (and its connection serviced)."""

    def note_running(self, consumer: str, beat: bytes | None) -> None:
        """Record where ``consumer``'s chunk is (a heartbeat; None: it has none now), for
        monitors. Brokers with no place for it (RabbitMQ) keep nothing."""
        return None

    def running(self) -> list[bytes]:
        """The heartbeats note_running recorded, of consumers heard from lately."""
        return []


class ResultChannel(ABC):
    """The per-run channel on which workers send chunk results back to the driver."""

    @abstractmethod
    def publish_result(self, run_id: str, body: bytes) -> None:
        """Send a result message to the run's result channel."""

    @abstractmethod
    def consume_results(self, run_id: str, timeout_s: float, count: int = 100) -> list[bytes]:
        """Take (and remove) up to ``count`` result messages, waiting up to ``timeout_s``."""


class QueueAdmin(ABC):
    """Creating, inspecting and removing a namespace's queues (driver and monitor)."""

    @abstractmethod
    def declare(self, run_id: str | None = None) -> None:
        """Create the namespace's queues (and the run's result channel) if missing."""

    @abstractmethod
    def depth(self, run_id: str | None = None) -> QueueStats:
        """Counts for the namespace and, when given, the run's result channel."""

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        """The dead-lettered messages of the namespace, with their reasons (peek)."""

    @abstractmethod
    def purge(self, run_id: str | None = None, *, queues: bool = True) -> None:
        """Delete the namespace's queues (unless ``queues`` is False, as for the shared
        namespace other runs use) and, when given, the run's result channel."""


class QueueAdapter(TaskQueue, ResultChannel, QueueAdmin):
    """One connection to a broker, bound to one namespace: one adapter per broker serves
    the three jobs, so a worker needs one connection, not three."""

    name = "?"

    def __init__(
        self,
        url: str,
        namespace: str | None = None,
        *,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        connect_timeout_s: float = 5.0,
    ):
        self.url = url
        self.namespace = namespace
        self.visibility_timeout_s = visibility_timeout_s
        self.connect_timeout_s = connect_timeout_s

    @abstractmethod
    def close(self) -> None:
        """Drop the connection. Unacked messages go back (RabbitMQ) or wait to be
        reclaimed (Redis): as if the consumer had died."""

    def __enter__(self) -> QueueAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Quarantine:
    """The consumer's rule for a chunk that keeps killing its workers: delivered more than
    ``max_deliveries`` times, it must not run again. The consumer reports it, then
    dead-letters it (in that order, so a consumer that dies in between leaves it to be
    quarantined again, never lost)."""

    max_deliveries: int = DEFAULT_MAX_DELIVERIES

    def reason(self, delivery: Delivery) -> str:
        """Why ``delivery`` must not run, or '' when it may."""
        if delivery.deliveries <= self.max_deliveries:
            return ""
        return (
            f"delivered {delivery.deliveries} times and never acknowledged: its "
            f"worker died each time (limit {self.max_deliveries})"
        )


T = TypeVar("T")


def adapter_class(name: str) -> type[QueueAdapter]:
    """The adapter class for ``name``; its client library is imported only now."""
    return registry.load(ADAPTERS, name, "queue backend")


def open_adapter(name: str, url: str, namespace: str | None = None, **kwargs: Any) -> QueueAdapter:
    """Connect to broker ``name`` at ``url``; BackendUnavailable when unreachable."""
    return adapter_class(name)(url, namespace, **kwargs)


def call_through_outage(op: Callable[[], T], timeout_s: float, log: logging.Logger) -> T:
    """``op()``, retried with jittered backoff while the broker is unavailable (restarting),
    until ``timeout_s`` has passed; then the last BackendUnavailable is raised. The
    clients' own retries cover a blip within one call; this loop covers a broker that is
    down for seconds, across calls, and reconnects."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            return op()
        except BackendUnavailable as err:
            if time.monotonic() > deadline:
                raise
            # Jitter, so the workers of a restarted broker do not come back in lockstep.
            pause_s = delay * random.uniform(0.5, 1.0)
            log.warning("broker unavailable, retrying in %.1f s: %s", pause_s, err)
            time.sleep(pause_s)
            delay = min(2.0, delay * 2)


def outage_guard(timeout_s: float, log: logging.Logger) -> Callable[[Callable[[], T]], T]:
    """A caller that runs ``op()`` through broker outages of up to ``timeout_s``."""
    return functools.partial(call_through_outage, timeout_s=timeout_s, log=log)
