"""The queue worker's consumer loop (run as ``python -m ttg_ray.worker``).

Pulls chunk messages, runs them with the same executor as every backend (in a child
process, so a parameter past its time or memory limit can be stopped), publishes the
results and acks. Runs only functions from allowed modules; dead-letters anything it
cannot trust. SIGTERM/SIGINT finish the current chunk within a grace period, then hand
back what is left (a second signal hands it back at once), so no chunk is ever lost; a
broker restart is ridden out by reconnecting.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from ttg_ray.backends.executor import ChunkProcess
from ttg_ray.config import SigningConfig, WorkerContext
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.events import lifecycle
from ttg_ray.core.execute import cut_short, lost_chunk
from ttg_ray.core.functions import Allowlist, FunctionRef
from ttg_ray.core.messages import (
    MAX_CHUNK_PARAMS,
    TaskMessage,
    decode_task,
    encode_beat,
    encode_reply,
    encode_result,
)
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.setup import WithSetup
from ttg_ray.core.signing import keyring_from
from ttg_ray.core.summary import ValueStats
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
BEAT_S = 1.0  # a chunk running longer tells the driver where it is, this often


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
    # Limits for chunks whose message names none; a message's memory limit may only
    # lower this worker's.
    timeout_s: float | None = None
    max_memory_mb: float | None = None
    stop_grace_s: float = 30.0  # after SIGTERM, how long the current chunk may still run
    max_chunk_params: int = MAX_CHUNK_PARAMS  # larger chunks are refused (dead-lettered)


class ExecutorDied(Exception):
    """The child running a chunk died on its own (a parameter that kills its process, or
    a kill from outside): the worker goes too, so the broker redelivers the chunk and
    counts the delivery, as for any worker death (see Quarantine)."""


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
        self.stop_requested_at: float | None = None
        self.abandon = False
        self.chunks_done = 0
        self.executor = ChunkProcess(settings.max_memory_mb)
        self._noted = False  # a heartbeat of this worker is on record for monitors
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
        self.stop_requested_at = self.stop_requested_at or time.monotonic()
        log.info("signal %d: %s", signum, "handing back" if self.abandon else "finishing up")

    def run(self) -> int:
        lifecycle(log, "running", f"worker {self.id} consuming", run_id=self.settings.namespace)
        log.info("message signing %s", self.keys.describe())
        idle_since = time.monotonic()
        try:
            while not self.stopping and not self._orphaned():
                deliveries = self._call(lambda: self.queue.consume(self.id, timeout_s=0.5))
                for delivery in deliveries:
                    self.handle(delivery)
                if deliveries:
                    idle_since = time.monotonic()
                elif self._idle_too_long(idle_since):
                    log.info("idle for %.0f s; exiting", time.monotonic() - idle_since)
                    break
        except ExecutorDied as err:
            # Leave the chunk unacked, as a worker killed outright would.
            log.error("%s; exiting so the chunk is delivered again", err)
            return 70
        finally:
            self.executor.close()
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
            message = decode_task(
                self.keys.open(delivery.body, "task"),
                max_chunk_params=self.settings.max_chunk_params,
            )
            fn = self._function(message)
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
        if self._noted:  # the monitor shows this chunk no more
            self._noted = False
            self._call(lambda: self.queue.note_running(self.id, None))

    def _refuse(self, delivery: Delivery, message: TaskMessage | None, err: TtgError) -> None:
        reason = str(err)
        log.warning("dead-lettering a message: %s", reason)
        self._call(lambda: self.queue.dead_letter(delivery, reason))
        if message is not None:  # tell the driver, so its run does not wait forever
            self._publish(_refused(message, err))

    def _execute(self, fn, message: TaskMessage, delivery: Delivery) -> ChunkResult | None:
        """Run the chunk in the child process while this one keeps the claim and the
        connection alive. A parameter past a limit fails alone; the child is replaced
        and the rest of the chunk runs on. None: handed back unrun (second signal)."""
        chunk, space = message.chunk, message.space
        timeout_s, max_mb = self._limits(message)
        if self.executor.max_memory_mb != max_mb:  # its address-space cap is set at start
            self.executor.kill()
            self.executor.max_memory_mb = max_mb
        values: list[Any] = []
        failures: list[ParamFailure] = []
        compute_s = 0.0
        part: Chunk | None = chunk
        chunk_started = time.monotonic()
        while part is not None:
            part_started = time.monotonic()
            self.executor.start(fn, space, part)
            beat = functools.partial(self._beat, message, part, chunk_started)
            stop = self._watch(part, delivery, timeout_s, max_mb, beat)
            ex = self.executor
            if stop == "abandon":
                ex.kill()
                return None
            if stop is None:
                values += ex.values
                failures += ex.failures
                compute_s += ex.compute_s
                if any(f.type == "MemoryError" for f in ex.failures):
                    ex.kill()  # hit its address-space cap: start the next chunk afresh
                break
            ex.kill()
            stuck = None if stop == "grace" else stop
            done = cut_short(part, space, ex.position, ex.values, ex.failures, stuck)
            values += done.values
            failures += done.failures
            compute_s += time.monotonic() - part_started
            if stop == "grace":  # hand back the rest: the driver runs it as a continuation
                log.warning("stop grace period over: handing back the rest of %s", chunk.chunk_id)
                return cut_short(
                    chunk,
                    space,
                    len(values),
                    values,
                    failures,
                    compute_s=compute_s,
                    node=self.node,
                    worker=self.id,
                )
            log.warning("chunk %s: %s", chunk.chunk_id, stop[1])
            rest = list(part.iter_indices())[done.size :]
            part = part.with_indices(rest, part.attempt, "") if rest else None
        return ChunkResult.of(
            chunk,
            values=values,
            failures=failures,
            compute_s=compute_s,
            stats=ValueStats.of(values),  # here, not on the driver: it serves every worker
            node=self.node,
            worker=self.id,
        )

    def _limits(self, message: TaskMessage) -> tuple[float | None, float | None]:
        s = self.settings
        timeout_s = message.timeout_s if message.timeout_s is not None else s.timeout_s
        limits = [m for m in (message.max_memory_mb, s.max_memory_mb) if m is not None]
        return timeout_s, min(limits) if limits else None

    def _beat(self, message: TaskMessage, part: Chunk, chunk_started: float) -> None:
        """Tell the driver where the chunk is (for its stall report and to take over the
        chunk of a worker that stops answering)."""
        ex, now = self.executor, time.monotonic()
        index = None
        if ex.param_started is not None and ex.position < part.size:
            index = part.lo + ex.position if part.indices is None else part.indices[ex.position]
        beat = {
            "chunk_id": message.chunk.chunk_id,
            "worker": f"{self.node} {self.id}",
            "index": index,
            "param": None if index is None else message.space[index],
            "chunk_s": now - chunk_started,
            "param_s": 0.0 if ex.param_started is None else now - ex.param_started,
        }
        try:
            body = encode_beat(beat)
            self.queue.publish_result(message.chunk.run_id, self.keys.seal(body, "result"))
            self.queue.note_running(self.id, body)
            self._noted = True
        except (BackendUnavailable, TypeError, ValueError) as err:
            log.debug("no heartbeat sent: %s", err)

    def _watch(
        self,
        part: Chunk,
        delivery: Delivery,
        timeout_s: float | None,
        max_mb: float | None,
        beat: Callable[[], None],
    ) -> str | tuple[str, str] | None:
        """Wait for the child to finish ``part``: None when it did, else why it must be
        stopped: (kind, message) for a parameter past a limit, "grace" when the stop
        grace period is over, "abandon" on a second signal."""
        ex = self.executor
        touch_every_s = max(0.05, self.settings.visibility_timeout_s / 3)
        next_touch = time.monotonic() + touch_every_s
        next_beat = time.monotonic() + BEAT_S / 2
        while True:
            ex.pump(0.05)
            if ex.finished:
                return None
            now = time.monotonic()
            if not ex.alive:
                raise ExecutorDied(f"the process running chunk {part.chunk_id} died")
            if self.abandon:
                return "abandon"
            if self.stopping and now - self.stop_requested_at > self.settings.stop_grace_s:
                return "grace"
            over = _over_limit(ex, now, timeout_s, max_mb)
            if over is not None:
                return over
            if now >= next_beat:
                next_beat = now + BEAT_S
                beat()
            if now >= next_touch:
                next_touch = now + touch_every_s
                try:
                    self.queue.touch([delivery])
                except BackendUnavailable as err:
                    log.warning("cannot keep the claim alive: %s", err)

    def _report_quarantined(self, delivery: Delivery, why: str) -> None:
        """Tell the driver the chunk is lost, then dead-letter it (see Quarantine)."""
        log.error("quarantined a chunk: %s", why)
        try:
            message = decode_task(
                self.keys.open(delivery.body, "task"),
                max_chunk_params=self.settings.max_chunk_params,
            )
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

    def _function(self, message: TaskMessage) -> Callable[[Any], Any]:
        """The message's function, allowed and imported; with a setup, wrapped so that
        the chunk process runs setup once (per run) and hands its result to every call.
        The wrapper's key is the same for every chunk of the run, so the chunk process,
        which outlives chunks, keeps the resource from one chunk to the next."""
        self.allowlist.check(message.fn)
        fn = self._resolve(message.fn)
        setup = message.setup
        if setup is None:
            return fn
        self.allowlist.check(setup)
        key = f"{message.chunk.run_id} {message.fn!r} {setup!r}"
        return WithSetup(fn, self._resolve(setup), key=key)

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


def _over_limit(
    ex: ChunkProcess, now: float, timeout_s: float | None, max_mb: float | None
) -> tuple[str, str] | None:
    """(kind, message) when the child's current parameter is past a limit."""
    if timeout_s is not None:
        started = ex.param_started
        if started is not None and now - started > timeout_s:
            return "TimeoutError", f"parameter ran past timeout_s={timeout_s:g} s; stopped"
        # A child that cannot report (stopped, or holding the interpreter in C code) is
        # taken as stuck on the parameter it last reported.
        if now - ex.heard_at > timeout_s + 1.0:
            return "TimeoutError", (
                f"parameter ran past timeout_s={timeout_s:g} s (its process stopped "
                "answering); stopped"
            )
    if max_mb is not None:
        rss = ex.rss_mb()
        if rss is not None and rss > max_mb:
            return "MemoryError", f"worker grew to {rss:.0f} MB, over max_memory_mb={max_mb:g}"
    return None


def _refused(message: TaskMessage, err: TtgError) -> ChunkResult:
    """Every parameter failed: this worker will not run the function."""
    result = lost_chunk(message.chunk, message.space, type(err).__name__, str(err))
    return dataclasses.replace(result, lost="")
