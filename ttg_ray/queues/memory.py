"""In-memory adapter: the reference behaviour of the queue contract, for unit tests.

Adapters opened on the same ``memory://name`` URL share one broker, so a test can play
several consumers; closing an adapter hands its unacked messages back, like a dead
RabbitMQ channel, and idle ones are reclaimed after the visibility timeout, like Redis.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ttg_ray.queues.base import Delivery, QueueAdapter, QueueStats


@dataclass
class _Pending:
    body: bytes
    deliveries: int
    consumer: str
    owner: int
    since: float


@dataclass
class _Namespace:
    ready: deque = field(default_factory=deque)  # (id, body, deliveries)
    pending: dict = field(default_factory=dict)  # id -> _Pending
    retry: list = field(default_factory=list)  # (due, id, body)
    dlq: list = field(default_factory=list)  # (body, reason)
    running: dict = field(default_factory=dict)  # consumer -> heartbeat


class _Hub:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.namespaces: dict[str | None, _Namespace] = {}
        self.results: dict[str, deque] = {}
        self.ids = itertools.count(1)


_HUBS: dict[str, _Hub] = {}
_HUBS_LOCK = threading.Lock()
_OWNERS = itertools.count(1)


class MemoryAdapter(QueueAdapter):
    name = "memory"

    def __init__(self, url: str = "memory://", namespace: str | None = None, **kwargs):
        super().__init__(url, namespace, **kwargs)
        with _HUBS_LOCK:
            self._hub = _HUBS.setdefault(url, _Hub())
        self._owner = next(_OWNERS)

    @property
    def _ns(self) -> _Namespace:
        return self._hub.namespaces.setdefault(self.namespace, _Namespace())

    def declare(self, run_id: str | None = None) -> None:
        with self._hub.cond:
            self._ns  # noqa: B018 (creates it)
            if run_id is not None:
                self._hub.results.setdefault(run_id, deque())

    def publish(self, body: bytes) -> None:
        with self._hub.cond:
            self._ns.ready.append((next(self._hub.ids), body, 0))
            self._hub.cond.notify_all()

    def consume(self, consumer: str, timeout_s: float, count: int = 1) -> list[Delivery]:
        return self._reclaim(consumer, count) or self._fetch(consumer, timeout_s, count)

    def _fetch(self, consumer: str, timeout_s: float, count: int) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        with self._hub.cond:
            while True:
                self._promote_due()
                if self._ns.ready:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._hub.cond.wait(min(left, 0.05))
            out = []
            while self._ns.ready and len(out) < count:
                mid, body, seen = self._ns.ready.popleft()
                out.append(self._hand_out(mid, body, seen + 1, consumer))
            return out

    def _hand_out(self, mid: int, body: bytes, deliveries: int, consumer: str) -> Delivery:
        self._ns.pending[mid] = _Pending(body, deliveries, consumer, self._owner, time.monotonic())
        return Delivery(id=mid, body=body, deliveries=deliveries, consumer=consumer)

    def _promote_due(self) -> None:
        now = time.monotonic()
        due = [r for r in self._ns.retry if r[0] <= now]
        for item in due:
            self._ns.retry.remove(item)
            self._ns.ready.append((item[1], item[2], 0))

    def ack(self, delivery: Delivery) -> None:
        with self._hub.cond:
            self._ns.pending.pop(delivery.id, None)

    def nack(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        with self._hub.cond:
            if self._ns.pending.pop(delivery.id, None) is not None:
                self._ns.retry.append((time.monotonic() + delay_s, delivery.id, delivery.body))
                self._hub.cond.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._hub.cond:
            self._ns.pending.pop(delivery.id, None)
            self._ns.dlq.append((delivery.body, reason))

    def _reclaim(self, consumer: str, count: int) -> list[Delivery]:
        with self._hub.cond:
            cutoff = time.monotonic() - self.visibility_timeout_s
            stale = [(k, p) for k, p in self._ns.pending.items() if p.since < cutoff][:count]
            return [self._hand_out(k, p.body, p.deliveries + 1, consumer) for k, p in stale]

    def touch(self, deliveries: list[Delivery]) -> None:
        with self._hub.cond:
            for delivery in deliveries:
                if delivery.id in self._ns.pending:
                    self._ns.pending[delivery.id].since = time.monotonic()

    def note_running(self, consumer: str, beat: bytes | None) -> None:
        with self._hub.cond:
            if beat is None:
                self._ns.running.pop(consumer, None)
            else:
                self._ns.running[consumer] = beat

    def running(self) -> list[bytes]:
        with self._hub.cond:
            return list(self._ns.running.values())

    def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        with self._hub.cond:
            return list(self._ns.dlq[:limit])

    def publish_result(self, run_id: str, body: bytes) -> None:
        with self._hub.cond:
            self._hub.results.setdefault(run_id, deque()).append(body)
            self._hub.cond.notify_all()

    def consume_results(self, run_id: str, timeout_s: float, count: int = 100) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        with self._hub.cond:
            queue = self._hub.results.setdefault(run_id, deque())
            while not queue and time.monotonic() < deadline:
                self._hub.cond.wait(max(0.0, min(deadline - time.monotonic(), 0.05)))
            return [queue.popleft() for _ in range(min(count, len(queue)))]

    def depth(self, run_id: str | None = None) -> QueueStats:
        with self._hub.cond:
            ns = self._ns
            by_consumer: dict[str, int] = {}
            for p in ns.pending.values():
                by_consumer[p.consumer] = by_consumer.get(p.consumer, 0) + 1
            results = self._hub.results.get(run_id, ()) if run_id else ()
            return QueueStats(
                waiting=len(ns.ready),
                in_flight=len(ns.pending),
                in_flight_by_consumer=by_consumer,
                retrying=len(ns.retry),
                dead_letters=len(ns.dlq),
                consumers=len(by_consumer),
                results_waiting=len(results),
            )

    def purge(self, run_id: str | None = None, *, queues: bool = True) -> None:
        with self._hub.cond:
            if queues:
                self._hub.namespaces.pop(self.namespace, None)
            if run_id is not None:
                self._hub.results.pop(run_id, None)

    def close(self) -> None:
        with self._hub.cond:
            ns = self._hub.namespaces.get(self.namespace)
            if ns is None:
                return
            mine = [k for k, p in ns.pending.items() if p.owner == self._owner]
            for k in sorted(mine, reverse=True):
                p = ns.pending.pop(k)
                ns.ready.appendleft((k, p.body, p.deliveries))
            self._hub.cond.notify_all()
