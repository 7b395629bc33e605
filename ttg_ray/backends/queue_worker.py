"""The queue worker's consumer loop (run as ``python -m ttg_ray.worker``).

Pulls chunk messages, runs them with the same executor as every backend, publishes the
results and acks. Runs only functions from allowed modules; dead-letters anything it
cannot trust. SIGTERM/SIGINT finish the current chunk (a second signal hands it back)
so no chunk is ever lost; a broker restart is ridden out by reconnecting.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ttg_ray.config import SigningConfig, WorkerContext
from ttg_ray.core.events import lifecycle
from ttg_ray.core.execute import lost_chunk, run_chunk
from ttg_ray.core.functions import Allowlist, FunctionRef
from ttg_ray.core.messages import TaskMessage, decode_task, encode_reply, encode_result
from ttg_ray.core.results import ChunkResult
from ttg_ray.core.signing import keyring_from
from ttg_ray.errors import BackendUnavailable, BadMessage, InvalidFunction, TtgError
from ttg_ray.queues.base import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    Delivery,
    Quarantine,
    QueueAdapter,
    open_adapter,
    outage_guard,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    backend: str
    url: str
    namespace: str | None = None
    allow_modules: tuple[str, ...] = ()
    max_retries: int = 3
    visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S
    idle_timeout_s: float | None = None
    reconnect_timeout_s: float = 60.0
    parent_pid: int | None = None
    worker_id: str | None = None


class QueueWorker:
    """One consumer. ``run()`` returns when stopped, idle too long, or orphaned."""

    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self._call = outage_guard(settings.reconnect_timeout_s, log)
        self.context = WorkerContext.from_env(settings.worker_id)
        self.id = self.context.worker_id
        self.node = self.context.node_name or self.context.hostname
        self.allowlist = Allowlist(settings.allow_modules)
        self.quarantine = Quarantine(max_deliveries=settings.max_retries + 1)
        self.keys = keyring_from(SigningConfig.from_env())
        self.stopping = False
        self.abandon = False
        self.chunks_done = 0
        self._functions: dict[tuple[str, str], Callable[[Any], Any]] = {}
        self.queue = self._open()

    def _open(self) -> QueueAdapter:
        s = self.settings
        return open_adapter(
            s.backend,
            s.url,
            s.namespace,
            visibility_timeout_s=s.visibility_timeout_s,
        )

    def stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        """First call: finish the current chunk, then exit. Second: hand it back now."""
        if self.stopping:
            self.abandon = True
        self.stopping = True
        log.info("signal %d: %s", signum, "handing back" if self.abandon else "finishing up")

    def run(self) -> int:
        lifecycle(log, "running", f"worker {self.id} consuming", run_id=self.settings.namespace)
        log.info("message signing %s", self.keys.describe())
        idle_since = time.monotonic()
        while not self.stopping and not self._orphaned():
            deliveries = self._call(lambda: self.queue.consume(self.id, timeout_s=0.5))
            for delivery in deliveries:
                self.handle(delivery)
            if deliveries:
                idle_since = time.monotonic()
            elif self._idle_too_long(idle_since):
                log.info("idle for %.0f s; exiting", time.monotonic() - idle_since)
                break
        self.queue.close()
        lifecycle(log, "completed", f"worker {self.id} ran {self.chunks_done} chunks")
        return 0

    def handle(self, delivery: Delivery) -> None:
        """Run one delivery to its end: result published and acked, or dead-lettered."""
        quarantined = self.quarantine.reason(delivery)
        if quarantined:
            self._report_quarantined(delivery, quarantined)
            return
        message: TaskMessage | None = None
        try:
            message = decode_task(self.keys.open(delivery.body, "task"))
            self.allowlist.check(message.fn)
            fn = self._resolve(message.fn)
        except (BadMessage, InvalidFunction) as err:
            self._refuse(delivery, message, err)
            return
        log.debug("running chunk %s (delivery %d)", message.chunk.chunk_id, delivery.deliveries)
        result = self._execute(fn, message, delivery)
        if result is None:  # abandoned on a second signal: give it back, unrun
            self._call(lambda: self.queue.nack(delivery, 0.0))
            return
        self._publish(result, message)
        self._call(lambda: self.queue.ack(delivery))
        self.chunks_done += 1

    def _refuse(self, delivery: Delivery, message: TaskMessage | None, err: TtgError) -> None:
        reason = str(err)
        log.warning("dead-lettering a message: %s", reason)
        self._call(lambda: self.queue.dead_letter(delivery, reason))
        if message is not None:  # tell the driver, so its run does not wait forever
            self._publish(_refused(message, err))

    def _execute(self, fn, message: TaskMessage, delivery: Delivery) -> ChunkResult | None:
        """Run the chunk in a thread while this one keeps the claim and connection alive."""
        box: list[ChunkResult] = []
        thread = threading.Thread(
            target=lambda: box.append(
                run_chunk(fn, message.space, message.chunk, node=self.node, worker=self.id)
            ),
            daemon=True,
        )
        thread.start()
        interval = max(0.05, self.settings.visibility_timeout_s / 3)
        while True:
            thread.join(interval)
            if not thread.is_alive():
                return box[0] if box else None
            if self.abandon:
                return None
            try:
                self.queue.touch([delivery])
            except BackendUnavailable as err:
                log.warning("cannot keep the claim alive: %s", err)

    def _report_quarantined(self, delivery: Delivery, why: str) -> None:
        """Tell the driver the chunk is lost, then dead-letter it (see Quarantine)."""
        log.error("quarantined a chunk: %s", why)
        try:
            message = decode_task(self.keys.open(delivery.body, "task"))
        except BadMessage:
            message = None
        if message is not None:
            chunk = dataclasses.replace(message.chunk, attempt=delivery.deliveries - 1)
            reason = f"chunk {chunk.chunk_id} quarantined: {why}"
            lost = lost_chunk(chunk, message.space, "WorkerCrashedError", reason)
            self._publish(dataclasses.replace(lost, node=self.node, worker=self.id))
        self._call(lambda: self.queue.dead_letter(delivery, why))

    def _publish(self, result: ChunkResult, message: TaskMessage | None = None) -> None:
        log.debug("chunk %s done (%d values, lost=%r)", result.chunk_id, result.size, result.lost)
        body = encode_result(result) if message is None else encode_reply(result, message)
        body = self.keys.seal(body, "result")
        self._call(lambda: self.queue.publish_result(result.run_id, body))
        log.debug("published the result of chunk %s", result.chunk_id)

    def _resolve(self, ref: FunctionRef) -> Callable[[Any], Any]:
        key = (ref.name, repr(sorted(ref.kwargs.items())))
        if key not in self._functions:
            self._functions[key] = ref.resolve()
        return self._functions[key]

    def _orphaned(self) -> bool:
        parent = self.settings.parent_pid
        return parent is not None and os.getppid() != parent

    def _idle_too_long(self, since: float) -> bool:
        limit = self.settings.idle_timeout_s
        return limit is not None and time.monotonic() - since > limit


def _refused(message: TaskMessage, err: TtgError) -> ChunkResult:
    """Every parameter failed: this worker will not run the function."""
    result = lost_chunk(message.chunk, message.space, type(err).__name__, str(err))
    return dataclasses.replace(result, lost="")
