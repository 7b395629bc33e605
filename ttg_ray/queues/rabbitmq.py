"""RabbitMQ adapter (the only module that imports pika).

``ttg.tasks[.{namespace}]`` is a durable quorum queue, consumed with manual acks and a
prefetch of one: when a consumer's connection dies RabbitMQ hands its unacked message
to another consumer and counts it in ``x-delivery-count``, which decides quarantine.
``.retry`` holds delayed retries (per-message TTL, dead-lettered back into the tasks
queue), ``.dlq`` the dead letters with their reason, and ``ttg.results.{run_id}`` the
results. Every publish is persistent and confirmed. ``depth()`` takes in-flight counts
from the management API when it answers, else the plain-AMQP counts (no in-flight).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Iterator

import pika
import pika.exceptions as pex

from ttg_ray.config import TlsFiles, mask_url
from ttg_ray.errors import BackendUnavailable, UsageError
from ttg_ray.queues.base import Delivery, QueueAdapter, QueueStats
from ttg_ray.queues.rabbitmq_management import (
    ManagementAPI,
    ManagementUnavailable,
    in_flight_by_consumer,
)

log = logging.getLogger(__name__)
RESULT_PREFETCH = 1000
_PERSISTENT = 2
QUEUE_EXPIRY_MS = 86_400_000
# After the management API failed to answer, depth() uses AMQP alone this long.
MANAGEMENT_RETRY_S = 30.0
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
        self._management = ManagementAPI.from_amqp_url(url)
        self._management_retry_at = 0.0
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
            if "CERTIFICATE" in repr(err).upper():
                raise BackendUnavailable(
                    f"TLS to RabbitMQ at {mask_url(self.url)} failed: {err!r}; give the CA "
                    "that signed its certificate (TTG_TLS_CA_FILE, or ssl_options= in the URL)"
                ) from err
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
        if params.ssl_options is not None and "ssl_options=" not in self.url:
            params.ssl_options = _tls_options(TlsFiles.from_env())
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

    def consume(self, consumer: str, timeout_s: float, count: int = 1) -> list[Delivery]:
        # A dead consumer's unacked messages come back from RabbitMQ itself: nothing to reclaim.
        with self._guard():
            ch = self._channel()
            if not self._consuming_tasks:
                self.declare()
                # Tagged with the consumer's name, so the management API can say who holds what.
                ch.basic_consume(self.tasks_queue, self._on_task, consumer_tag=consumer)
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
        stats = QueueStats(
            waiting=waiting,
            in_flight=None,
            retrying=retrying,
            dead_letters=dead,
            consumers=consumers,
            results_waiting=results,
        )
        if time.monotonic() >= self._management_retry_at:
            try:
                self._add_management_counts(stats)
            except ManagementUnavailable as err:
                log.info("in-flight counts unavailable, using AMQP counts only: %s", err)
                self._management_retry_at = time.monotonic() + MANAGEMENT_RETRY_S
        return stats

    def _add_management_counts(self, stats: QueueStats) -> None:
        """In-flight counts, in total and per consumer, and acks, from the management API.
        Waiting stays AMQP's live count: the API's figures lag by its statistics interval."""
        info = self._management.queue(self.tasks_queue)
        if info is None:  # not declared yet: nothing in flight
            stats.in_flight = 0
            return
        stats.in_flight = info.unacked
        stats.acked = info.acked
        if info.channel_of_consumer:
            unacked = self._management.unacked_by_channel()
            stats.in_flight_by_consumer = in_flight_by_consumer(info, unacked)

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


def _tls_options(tls: TlsFiles) -> pika.SSLOptions:
    """An amqps:// URL without ssl_options=: verify the broker against TTG_TLS_CA_FILE
    (else the system CAs), and present TTG_TLS_CERT_FILE when set (mutual TLS)."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except OSError as err:
        raise UsageError(
            f"cannot load the TLS files (TTG_TLS_CA_FILE / TTG_TLS_CERT_FILE / "
            f"TTG_TLS_KEY_FILE): {err}"
        ) from err
    return pika.SSLOptions(context)
