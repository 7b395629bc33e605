"""RabbitMQ adapter (the only module that imports pika).

``ttg.tasks[.{namespace}]`` is a durable quorum queue, consumed with manual acks and a
prefetch of one: when a consumer's connection dies RabbitMQ hands its unacked message
to another consumer and counts it in ``x-delivery-count``, which decides quarantine.
``.retry`` holds delayed retries (per-message TTL, dead-lettered back into the tasks
queue), ``.dlq`` the dead letters with their reason, and ``ttg.results.{run_id}`` the
results. Every publish is persistent and confirmed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator

import pika
import pika.exceptions as pex

from ttg_ray.config import mask_url
from ttg_ray.errors import BackendUnavailable, UsageError
from ttg_ray.queues.base import Delivery, QueueAdapter, QueueStats

log = logging.getLogger(__name__)
RESULT_PREFETCH = 1000
_PERSISTENT = 2
QUEUE_EXPIRY_MS = 86_400_000
_GONE = (pex.AMQPConnectionError, pex.AMQPChannelError, pex.StreamLostError, OSError)


class RabbitAdapter(QueueAdapter):
    name = "rabbitmq"

    def __init__(self, url: str, namespace: str | None = None, **kwargs):
        super().__init__(url, namespace, **kwargs)
        self.tasks_queue = f"ttg.tasks.{namespace}" if namespace else "ttg.tasks"
        self.retry_queue = f"{self.tasks_queue}.retry"
        self.dlq_queue = f"{self.tasks_queue}.dlq"
        self._conn: pika.BlockingConnection | None = None
        self._generation = 0
        self._tasks: deque = deque()
        self._results: dict[str, deque] = {}
        self._consuming_tasks = False
        self._consuming_results: set[str] = set()
        self._connect()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate pika errors into BackendUnavailable; the next call reconnects."""
        try:
            yield
        except pex.ProbableAuthenticationError as err:
            self._drop()
            raise BackendUnavailable(
                f"RabbitMQ at {mask_url(self.url)} rejected the credentials; "
                "check the user and password in --amqp-url / TTG_AMQP_URL"
            ) from err
        except pex.ProbableAccessDeniedError as err:
            self._drop()
            raise BackendUnavailable(
                f"RabbitMQ at {mask_url(self.url)} refused access to the vhost; check the "
                "vhost (the path of --amqp-url / TTG_AMQP_URL) and the user's permissions"
            ) from err
        except _GONE as err:
            self._drop()
            raise BackendUnavailable(
                f"cannot reach RabbitMQ at {mask_url(self.url)}: {err!r}; start rabbitmq-server "
                "or pass --amqp-url / TTG_AMQP_URL"
            ) from err

    def _connect(self) -> None:
        if not self.url.startswith(("amqp://", "amqps://")):
            raise UsageError(
                f"{mask_url(self.url)} is not an AMQP URL; use "
                "amqp://user:password@host:5672/vhost (or amqps:// for TLS)"
            )
        params = pika.URLParameters(self.url)
        params.socket_timeout = self.connect_timeout_s
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        params.heartbeat = 15
        with self._guard():
            self._conn = pika.BlockingConnection(params)
            self._ch = self._conn.channel()
            self._ch.confirm_delivery()
            self._ch.basic_qos(prefetch_count=1)
        self._generation += 1
        self._tasks.clear()
        # Deliveries of the lost connection were never acked: RabbitMQ hands them out
        # again, so what is still buffered from it is dropped, not lost.
        for buffer in self._results.values():
            buffer.clear()
        self._consuming_tasks = False
        self._consuming_results.clear()

    def _channel(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._conn is None or self._conn.is_closed or self._ch.is_closed:
            self._drop()
            self._connect()
        return self._ch

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(Exception):
                conn.close()

    def declare(self, run_id: str | None = None) -> None:
        # A run's own queues vanish a day after their last use, even if the driver
        # that should delete them was killed.
        expiry = {"x-expires": QUEUE_EXPIRY_MS} if self.namespace else {}
        with self._guard():
            ch = self._channel()
            ch.queue_declare(
                self.tasks_queue, durable=True, arguments={"x-queue-type": "quorum", **expiry}
            )
            retry = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.tasks_queue}
            ch.queue_declare(self.retry_queue, durable=True, arguments={**retry, **expiry})
            ch.queue_declare(self.dlq_queue, durable=True, arguments=expiry)
            if run_id is not None:
                ch.queue_declare(
                    self.results_queue(run_id),
                    durable=True,
                    arguments={"x-expires": QUEUE_EXPIRY_MS},
                )

    def results_queue(self, run_id: str) -> str:
        return f"ttg.results.{run_id}"

    def _send(self, queue: str, body: bytes, **props) -> None:
        self._channel().basic_publish(
            "",
            queue,
            body,
            pika.BasicProperties(delivery_mode=_PERSISTENT, **props),
            mandatory=True,
        )

    def publish(self, body: bytes) -> None:
        with self._guard():
            self._send(self.tasks_queue, body)

    def _fetch(self, consumer: str, timeout_s: float, count: int) -> list[Delivery]:
        with self._guard():
            ch = self._channel()
            if not self._consuming_tasks:
                self.declare()
                ch.basic_consume(self.tasks_queue, self._on_task, consumer_tag=None)
                self._consuming_tasks = True
            self._pump(self._tasks, timeout_s)
        out = []
        while self._tasks and len(out) < count:
            method, props, body = self._tasks.popleft()
            seen = (props.headers or {}).get("x-delivery-count", 0)
            tag = (self._generation, method.delivery_tag)
            out.append(Delivery(id=tag, body=body, deliveries=int(seen) + 1, consumer=consumer))
        return out

    def _on_task(self, _ch, method, props, body) -> None:
        self._tasks.append((method, props, body))

    def _pump(self, buffer: deque, timeout_s: float) -> None:
        # Read the socket at least once, also with a zero timeout: deliveries only
        # reach the buffer while pika processes events.
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            self._conn.process_data_events(time_limit=min(left, 0.5))
            if buffer or left == 0:
                return

    def _settle(self, delivery: Delivery) -> None:
        generation, tag = delivery.id
        if generation != self._generation or self._conn is None:
            # That connection is gone, and RabbitMQ has already handed the message back.
            log.info("not acking a delivery of a lost connection; it will be redelivered")
            return
        self._ch.basic_ack(tag)

    def ack(self, delivery: Delivery) -> None:
        with self._guard():
            self._settle(delivery)

    def nack(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        with self._guard():
            # A new message through the TTL queue, so its delivery count starts afresh.
            self._send(self.retry_queue, delivery.body, expiration=str(int(delay_s * 1000)))
            self._settle(delivery)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        headers = {"x-ttg-reason": reason, "x-ttg-deliveries": delivery.deliveries}
        with self._guard():
            self._send(self.dlq_queue, delivery.body, headers=headers)
            self._settle(delivery)

    def reclaim(self, consumer: str, count: int = 1) -> list[Delivery]:
        return []  # RabbitMQ redelivers a dead consumer's messages by itself

    def touch(self, deliveries: list[Delivery]) -> None:
        with self._guard():
            if self._conn is not None:
                self._conn.process_data_events(time_limit=0)

    def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        out = []
        with self._guard():
            ch = self._channel()
            tags = []
            for _ in range(limit):
                method, props, body = ch.basic_get(self.dlq_queue, auto_ack=False)
                if method is None:
                    break
                tags.append(method.delivery_tag)
                reason = (props.headers or {}).get("x-ttg-reason", "")
                out.append((body, reason.decode() if isinstance(reason, bytes) else reason))
            if tags:  # peek: hand them all back in order
                ch.basic_nack(tags[-1], multiple=True, requeue=True)
        return out

    def publish_result(self, run_id: str, body: bytes) -> None:
        # Caught inside the guard: UnroutableError is a channel error, which the guard
        # would turn into "cannot reach RabbitMQ" and the worker would retry for ever.
        with self._guard():
            try:
                self._send(self.results_queue(run_id), body)
            except pex.UnroutableError:
                log.warning(
                    "run %s has no result queue any more (finished?); result dropped", run_id
                )

    def consume_results(self, run_id: str, timeout_s: float, count: int = 100) -> list[bytes]:
        """Results are acked as they are handed over, never on arrival: a result in
        transit when the connection drops is redelivered, not lost (dedup drops the
        rare second copy)."""
        buffer = self._results.setdefault(run_id, deque())
        with self._guard():
            ch = self._channel()
            if run_id not in self._consuming_results:
                self.declare(run_id)
                ch.basic_qos(prefetch_count=RESULT_PREFETCH)  # for this consumer only
                ch.basic_consume(
                    self.results_queue(run_id),
                    lambda _c, m, _p, b: buffer.append((m.delivery_tag, b)),
                    auto_ack=False,
                )
                ch.basic_qos(prefetch_count=1)  # task consumers keep taking one at a time
                self._consuming_results.add(run_id)
            self._pump(buffer, timeout_s)
            taken = [buffer.popleft() for _ in range(min(count, len(buffer)))]
            for tag, _ in taken:
                ch.basic_ack(tag)
        return [body for _, body in taken]

    def _count(self, queue: str) -> tuple[int, int]:
        try:
            frame = self._channel().queue_declare(queue, passive=True)
        except pex.ChannelClosedByBroker:
            return 0, 0  # no such queue; the closed channel is reopened on next use
        return frame.method.message_count, frame.method.consumer_count

    def depth(self, run_id: str | None = None) -> QueueStats:
        with self._guard():
            waiting, consumers = self._count(self.tasks_queue)
            retrying, _ = self._count(self.retry_queue)
            dead, _ = self._count(self.dlq_queue)
            results = self._count(self.results_queue(run_id))[0] if run_id else 0
        return QueueStats(
            waiting=waiting,
            in_flight=None,
            retrying=retrying,
            dead_letters=dead,
            consumers=consumers,
            results_waiting=results,
        )

    def purge(self, run_id: str | None = None, *, queues: bool = True) -> None:
        names = [self.tasks_queue, self.retry_queue, self.dlq_queue] if queues else []
        if run_id:
            names.append(self.results_queue(run_id))
        with self._guard():
            for queue in names:
                self._channel().queue_delete(queue)
        self._consuming_tasks = self._consuming_tasks and not queues
        self._consuming_results.discard(run_id)

    def close(self) -> None:
        self._drop()
