"""The Redis Streams and RabbitMQ backends: chunks travel as JSON messages to queue
workers (``python -m ttg_ray.worker``), results come back on the run's result channel.

Each run gets its own task queue (namespace = run id: ``ttg:tasks:{run_id}``,
``ttg.tasks.{run_id}``) and its own local workers, so concurrent runs (and tests)
never take each other's chunks, kill each other's workers or blame each other's
poison chunks, and a run's keys can all be deleted when it ends. With
``external_workers`` the chunks go to the shared ``ttg:tasks`` / ``ttg.tasks`` queue
that long-running workers (e.g. pods) consume; the run id inside each message routes
its result back. Redelivery of crashed chunks and quarantine are the workers' and the
broker's job; a quarantined chunk comes back as a ``lost`` result.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttg_ray.backends.base import Backend, BackendOptions, RunningChunk
from ttg_ray.config import BrokerConfig, SigningConfig, child_env, mask_url
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import lost_chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import MAX_BODY_BYTES, decode_reply, encode_task
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult
from ttg_ray.core.setup import refs_of
from ttg_ray.core.signing import keyring_from
from ttg_ray.errors import BackendUnavailable, BadMessage
from ttg_ray.queues.base import (
    DEFAULT_VISIBILITY_TIMEOUT_S,
    QueueAdapter,
    open_adapter,
    outage_guard,
)

log = logging.getLogger(__name__)
EXTERNAL_CAPACITY = 8  # worker slots assumed when workers run elsewhere and none is given
RECONNECT_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
READY_TIMEOUT_S = 30.0
BEAT_S = 1.0  # how often workers report a running chunk (see queue_worker.BEAT_S)
RESULT_SHARE = 0.5  # of the message limit a planned chunk's result may fill


@dataclass(frozen=True)
class QueueOptions(BackendOptions):
    """The queue backends' options (``workers`` = local worker processes, or the slots
    assumed for external workers)."""

    redis_url: str | None = None  # else TTG_REDIS_URL, else localhost
    amqp_url: str | None = None  # else TTG_AMQP_URL, else localhost
    external_workers: bool = False  # start no local workers; use the shared queue
    allow_modules: tuple[str, ...] = ()  # extra modules the local workers may run


class QueueBackend(Backend):
    """Shared driver logic; subclasses name the broker."""

    adapter_name = "?"
    Options = QueueOptions
    options: QueueOptions

    def __init__(self, options: QueueOptions):
        super().__init__(options)
        self.run_id = ""
        self.namespace: str | None = None
        self.queue: QueueAdapter | None = None
        self._call = outage_guard(RECONNECT_TIMEOUT_S, log)
        self.procs: list[subprocess.Popen] = []
        self.visibility_timeout_s = DEFAULT_VISIBILITY_TIMEOUT_S
        self._spawned = 0
        self._closing = False
        self._sent: dict[str, tuple[Chunk, float]] = {}  # not yet back: (chunk, sent at)
        self._latency_s = 0.0  # smoothed time from sending a chunk to its result
        self._bytes_per_param = 0.0  # the most a result has taken, per parameter
        self._beats: dict[str, RunningChunk] = {}
        self._takeovers: dict[str, int] = {}
        self._ready: list[ChunkResult] = []

    def broker_url(self) -> str:
        brokers = BrokerConfig.from_env(self.options.redis_url, self.options.amqp_url)
        return brokers.url_for(self.adapter_name)

    @classmethod
    def check_function(cls, fn: Callable[[Any], Any]) -> None:
        refs_of(fn)  # workers import the function (and its setup) by name

    def _open(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> None:
        self.ref: FunctionRef
        self.setup_ref: FunctionRef | None
        self.ref, self.setup_ref = refs_of(fn)
        self.space = space
        self.run_id = run_id
        self.url = self.broker_url()
        self.keys = keyring_from(SigningConfig.from_env())  # workers inherit the same env
        self.namespace = None if self.options.external_workers else run_id
        self.queue = open_adapter(self.adapter_name, self.url, self.namespace, connect_timeout_s=3)
        self.queue.declare(run_id)
        log.info("%s at %s, run %s", self.name, mask_url(self.url), run_id)
        log.info("message signing %s", self.keys.describe())
        if not self.options.external_workers:
            for _ in range(self.capacity):
                self._spawn()
            self._wait_for_workers()

    def _wait_for_workers(self) -> None:
        """Return once every local worker consumes, so the run's clock starts on a
        ready pool (as Ray's does), or after READY_TIMEOUT_S with a warning."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self._call(self.queue.depth).consumers < len(self.procs):
            self._replace_dead_workers()
            if time.monotonic() > deadline:
                log.warning("not all %d local workers are ready; going on", len(self.procs))
                return
            time.sleep(0.05)

    @property
    def capacity(self) -> int:
        if self.options.workers:
            return self.options.workers
        return EXTERNAL_CAPACITY if self.options.external_workers else os.cpu_count() or 1

    def submit(self, chunk: Chunk) -> None:
        log.debug("submitting chunk %s", chunk.chunk_id)
        body = encode_task(
            chunk,
            self.space,
            self.ref,
            timeout_s=self.options.timeout_s,
            max_memory_mb=self.options.max_memory_mb,
            setup=self.setup_ref,
        )
        body = self.keys.seal(body, "task")
        self._call(lambda: self.queue.publish(body))
        self._sent[chunk.chunk_id] = (chunk, time.monotonic())

    def poll(self, timeout_s: float) -> list[ChunkResult]:
        self._replace_dead_workers()
        bodies = self._call(lambda: self.queue.consume_results(self.run_id, timeout_s))
        results, self._ready = self._ready, []
        now = time.monotonic()
        for body in bodies:
            try:
                reply = decode_reply(self.keys.open(body, "result"))
                if isinstance(reply, ChunkResult) and reply.run_id != self.run_id:
                    # a replayed result of another run
                    raise BadMessage(
                        f"a result of run {reply.run_id} on run {self.run_id}'s channel"
                    )
            except BadMessage as err:
                log.error("dropping an unreadable result message: %s", err)
                continue
            if isinstance(reply, dict):
                self._note_beat(reply, now)
                continue
            log.debug("result of chunk %s", reply.chunk_id)
            if reply.size and not reply.lost:
                self._bytes_per_param = max(self._bytes_per_param, len(body) / reply.size)
            sent = self._sent.pop(reply.chunk_id, None)
            if sent is not None:
                self._latency_s = 0.8 * self._latency_s + 0.2 * (now - sent[1])
            self._beats.pop(reply.chunk_id, None)
            results.append(reply)
        if self.options.timeout_s is not None:
            self._take_over_silent(now)
        return results

    def largest_chunk(self) -> int | None:
        """Chunks whose results fill at most half a message, by the largest bytes per
        parameter seen so far (a result over the limit would be split and run again)."""
        if not self._bytes_per_param:
            return None
        return max(1, int(RESULT_SHARE * MAX_BODY_BYTES / self._bytes_per_param))

    def running(self) -> list[RunningChunk]:
        now = time.monotonic()
        return [beat.aged(now) for beat in self._beats.values()]

    def _note_beat(self, beat: dict, now: float) -> None:
        try:
            running = RunningChunk(seen_at=now, **beat)
        except TypeError as err:
            log.error("dropping an unreadable heartbeat: %s", err)
            return
        if running.chunk_id in self._sent:
            self._beats[running.chunk_id] = running

    def _take_over_silent(self, now: float) -> None:
        """A chunk whose worker stopped sending heartbeats (stopped, or cut off) for
        longer than the timeout is sent again, and so is one that never sent any and is
        long overdue; the first result to come back wins. A broker hands the original
        back too, in time (visibility timeout, or the connection's heartbeat), but
        RabbitMQ may take a minute to notice."""
        silent_s = self.options.timeout_s + 2 * BEAT_S
        overdue_s = silent_s + 3 * self._latency_s
        for chunk_id, (chunk, sent_at) in list(self._sent.items()):
            beat = self._beats.get(chunk_id)
            if beat is not None and now - beat.seen_at > silent_s:
                why = f"its worker ({beat.worker}) sent no heartbeat for {now - beat.seen_at:.1f} s"
            elif beat is None and now - sent_at > overdue_s:
                why = f"no word of it for {now - sent_at:.1f} s"
            else:
                continue
            self._beats.pop(chunk_id, None)
            root = chunk_id.split("@")[0]
            self._takeovers[root] = self._takeovers.get(root, 0) + 1
            if self._takeovers[root] > self.options.max_retries:
                log.error("chunk %s: %s, again; giving it up", chunk_id, why)
                del self._sent[chunk_id]
                self._ready.append(lost_chunk(chunk, self.space, "TimeoutError", why))
            else:
                log.warning("chunk %s: %s; sending it again", chunk_id, why)
                self.submit(chunk)

    def close(self) -> None:
        self._closing = True
        self._stop_workers()
        if self.queue is not None:
            try:
                self.queue.purge(self.run_id, queues=self.namespace is not None)
            except BackendUnavailable as err:
                log.warning("could not clean up run %s: %s", self.run_id, err)
            self.queue.close()
            self.queue = None

    def _spawn(self) -> None:
        self._spawned += 1
        allow = {self.ref.module, *self.options.allow_modules}
        if self.setup_ref is not None:
            allow.add(self.setup_ref.module)
        cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", self.adapter_name]
        cmd += ["--run-id", self.run_id, "--worker-id", f"{self.run_id}-w{self._spawned}"]
        cmd += ["--max-retries", str(self.options.max_retries), "--parent-pid", str(os.getpid())]
        cmd += ["--visibility-timeout-s", str(self.visibility_timeout_s)]
        cmd += ["--log-level", logging.getLevelName(logging.getLogger("ttg_ray").level or 30)]
        for module in sorted(allow):
            cmd += ["--allow-module", module]
        self.procs.append(subprocess.Popen(cmd, env=self._worker_env()))

    def _worker_env(self) -> dict[str, str]:
        # The URL goes through the environment so its password never shows in `ps`;
        # the driver's sys.path lets workers import the same function modules.
        url_var = "TTG_REDIS_URL" if self.adapter_name == "redis" else "TTG_AMQP_URL"
        return child_env(
            **{url_var: self.url, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
        )

    def _replace_dead_workers(self) -> None:
        if self._closing:
            return
        for proc in [p for p in self.procs if p.poll() is not None]:
            self.procs.remove(proc)
            if proc.returncode in (2, 3):
                raise BackendUnavailable(
                    f"a {self.name} worker exited with code {proc.returncode}; see its log above"
                )
            log.warning("worker pid %d exited (%s); starting another", proc.pid, proc.returncode)
            self._spawn()

    def _stop_workers(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


class RedisBackend(QueueBackend):
    name = "redis"
    adapter_name = "redis"


class RabbitBackend(QueueBackend):
    name = "rabbitmq"
    adapter_name = "rabbitmq"
