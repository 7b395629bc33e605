"""The Ray backend: chunks become Ray tasks.

Fault tolerance is Ray's: a task whose worker process or node dies is retried
(``max_retries``), and a result lost with its node is rebuilt from lineage. Each chunk
task is named after its chunk, so the dashboard's task view reads as the sweep does.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import (
    LocalRayletDiedError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    OwnerDiedError,
    RayError,
    RaySystemError,
    RayTaskError,
    TaskUnschedulableError,
    WorkerCrashedError,
)
from ray.util.metrics import Counter
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ttg_ray.backends import ray_cancel, ray_session
from ttg_ray.backends.base import Backend, BackendOptions, RunningChunk
from ttg_ray.backends.limits import MB, rss_mb
from ttg_ray.config import RayConfig, WorkerContext
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import Progress, cut_short, lost_chunk, run_chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult
from ttg_ray.errors import InvalidFunction, TtgError, UsageError

log = logging.getLogger(__name__)

# Failures of the machinery, not of the user function (which run_chunk catches):
# the chunk is lost and the runner splits it to find out why.
_SYSTEM_FAILURES = (
    WorkerCrashedError,
    NodeDiedError,
    ObjectLostError,
    OwnerDiedError,
    TaskUnschedulableError,
    OutOfMemoryError,  # Ray's memory monitor killed the worker
    LocalRayletDiedError,
)

# How often the cluster's CPUs are read again while a sweep runs: nodes that join are
# used within seconds, and lost ones stop counting.
CAPACITY_REFRESH_S = 2.0
# How often a changed autoscaler request is sent (it is one GCS key-value write).
REQUEST_EVERY_S = 1.0
# A chunk sent to a worker on a node that then vanished with its IP can wait forever for
# an answer (seen in the KubeRay rehearsal). Chunks in flight when a node died that have
# not come back this long after Ray declared it dead are sent once more; the first
# result wins, the other is counted as a duplicate.
RESEND_AFTER_NODE_DEATH_S = 15.0


def _import_failure(cause: BaseException) -> str | None:
    """What the workers could not import, if that is why the task failed. Ray reports a
    function its workers cannot unpickle as a RaySystemError around the ImportError."""
    if isinstance(cause, RaySystemError):
        inner = cause.client_exc
        if isinstance(inner, ImportError) or "No module named" in str(inner):
            return f"{type(inner).__name__}: {inner}" if isinstance(inner, ImportError) else inner
        return None
    return f"{type(cause).__name__}: {cause}" if isinstance(cause, ImportError) else None


_metrics: dict[str, Counter] = {}
_node_label: str | None = None


def _here() -> str:
    """This worker's node, as 'k8s-node-or-host/node-id-prefix' (cached per process)."""
    global _node_label
    if _node_label is None:
        ctx = WorkerContext.from_env()
        node_id = ray.get_runtime_context().get_node_id()
        _node_label = f"{ctx.node_name or ctx.hostname}/{node_id[:8]}"
    return _node_label


def _count(run_id: str, ok: int, failed: int) -> None:
    """Add to the ttg_params_processed metric (dashboard and Prometheus)."""
    counter = _metrics.get("processed")
    if counter is None:
        counter = Counter(
            "ttg_params_processed",
            description="Parameters processed by ttg_ray chunk tasks.",
            tag_keys=("run_id", "outcome"),
        )
        _metrics["processed"] = counter
    if ok:
        counter.inc(ok, tags={"run_id": run_id, "outcome": "ok"})
    if failed:
        counter.inc(failed, tags={"run_id": run_id, "outcome": "failed"})


BEAT_S = 1.0  # how often a running chunk reports where it is
WATCH_TICK_S = 0.05  # how often a chunk's watchdog checks its limits
# How often the driver reads the watch mailbox: often under a limit (a stopped chunk's
# worker is killed at once), else once a heartbeat.
TAKE_LIMITED_S = 0.2
# How long opening a sweep waits for a new watch actor. Its worker process takes about
# 0.7 CPU-s to start: inside the sweep's clock that was 7 % of a 5 s sweep on 2 cores.
# On a cluster slow to place it, the sweep goes on and heartbeats begin once it is up.
WATCH_READY_S = 10.0
KILL_WAIT_S = 300.0  # a stopped chunk's worker waits this long for the driver to kill it


@dataclass(frozen=True)
class _Limits:
    timeout_s: float | None = None
    max_memory_mb: float | None = None

    @property
    def any(self) -> bool:
        return self.timeout_s is not None or self.max_memory_mb is not None


@ray.remote(num_cpus=0)
class _Watch:
    """The driver's mailbox for its running chunks, one per Ray job (shared by its
    sweeps, each under its run id): where each chunk is (heartbeats), and the results of
    those whose watchdog stopped them at a limit."""

    def __init__(self):
        self._beats: dict[str, dict[str, dict]] = {}
        self._stopped: dict[str, list[ChunkResult]] = {}

    def beat(self, run_id: str, chunk_id: str, beat: dict) -> None:
        self._beats.setdefault(run_id, {})[chunk_id] = beat

    def stopped(self, result: ChunkResult) -> bool:
        self._stopped.setdefault(result.run_id, []).append(result)
        return True

    def take(self, run_id: str) -> tuple[dict[str, dict], list[ChunkResult]]:
        return self._beats.pop(run_id, {}), self._stopped.pop(run_id, [])

    def ready(self) -> bool:
        return True


# The watch actor of each Ray job this process has been: starting an actor is a new
# worker process (about 1 s here), which a warm Ray's later sweeps must not pay again.
_watches: dict[str, Any] = {}


def _shared_watch(renew: bool = False) -> Any:
    """This Ray job's watch actor, started on the driver's node (it goes only when the
    driver does); ``renew`` replaces one that died."""
    context = ray.get_runtime_context()
    node = context.get_node_id()
    job = f"{node}/{context.get_job_id()}"  # node ids are new with each Ray: no reuse
    if renew or job not in _watches:
        here = NodeAffinitySchedulingStrategy(node, soft=True)
        _watches.clear()  # a watch of an earlier job went with that job's Ray
        _watches[job] = _Watch.options(scheduling_strategy=here).remote()
    return _watches[job]


class _Watchdog:
    """A thread beside a chunk task: reports where the chunk is every BEAT_S, and when a
    parameter runs past timeout_s or the worker past max_memory_mb, hands the driver the
    chunk's finished part (see cut_short) for it to kill this worker. A thread cannot
    be stopped in Python; the worker process can."""

    def __init__(self, watch, chunk: Chunk, space: Space, limits: _Limits, worker: str):
        self.watch, self.chunk, self.space, self.limits = watch, chunk, space, limits
        self.worker = worker
        self.progress = Progress()
        self.main_thread = threading.get_ident()
        self.stopped = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ttg-watchdog")

    def __enter__(self) -> _Watchdog:
        # Under a limit, beat at once, so that a worker stopped from now on is noticed;
        # else the first beat comes after BEAT_S (an actor call costs a chunk of cheap
        # parameters more than Ray's own task overhead).
        if self.limits.any:
            self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self.stopped:
            # The driver has this chunk's result and is killing this worker, which must
            # not run anything else: wait for it here.
            time.sleep(KILL_WAIT_S)

    def _loop(self) -> None:
        tick_s = WATCH_TICK_S if self.limits.any else BEAT_S
        next_beat = time.monotonic() + BEAT_S
        while not self._done.wait(tick_s):
            stop = self._over_limit()
            if stop is not None:
                self._stop(*stop)
                return
            if time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + BEAT_S

    def _over_limit(self) -> tuple[str, str] | None:
        timeout_s, max_mb = self.limits.timeout_s, self.limits.max_memory_mb
        now = time.monotonic()
        started = self.progress.running_since(now)
        if timeout_s is not None and started is not None:
            ran_s = now - started
            if ran_s > timeout_s:
                return "TimeoutError", f"parameter ran past timeout_s={timeout_s:g} s; stopped"
        if max_mb is not None:
            rss = rss_mb()
            if rss is not None and rss > max_mb:
                return "MemoryError", (
                    f"worker grew to {rss:.0f} MB, over max_memory_mb={max_mb:g}; stopped"
                )
        return None

    def _stop(self, kind: str, message: str) -> None:
        p = self.progress
        done = p.position
        result = cut_short(
            self.chunk,
            self.space,
            done,
            p.values,
            p.failures,
            (kind, message),
            node=_here(),
            worker=self.worker,
        )
        log.warning("chunk %s: %s", self.chunk.chunk_id, message)
        self.stopped = True
        ray.get(self.watch.stopped.remote(result), timeout=30)
        if kind == "MemoryError":
            self._hold_memory()

    def _hold_memory(self) -> None:
        """Until the driver kills this worker: raise MemoryError in the chunk's thread
        (it ends a runaway Python loop, and the worker stays quick to kill), and should
        it grow on regardless (inside C code), freeze the process (SIGSTOP; SIGKILL
        still ends it, only later)."""
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self.main_thread), ctypes.py_object(MemoryError)
        )
        ceiling_mb = 1.25 * self.limits.max_memory_mb
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline:
            rss = rss_mb()
            if rss is not None and rss > ceiling_mb:
                os.kill(os.getpid(), signal.SIGSTOP)
            time.sleep(WATCH_TICK_S)

    def _beat(self) -> None:
        p = self.progress
        now = time.monotonic()
        position = p.position
        started = p.running_since(now)
        index = None
        if started is not None and position < self.chunk.size:
            indices = self.chunk.indices
            index = self.chunk.lo + position if indices is None else indices[position]
        self.watch.beat.remote(
            self.chunk.run_id,
            self.chunk.chunk_id,
            {
                "worker": f"{_here()} {self.worker}",
                "index": index,
                "param": None if index is None else self.space[index],
                "chunk_s": now - p.chunk_started,
                "param_s": 0.0 if started is None else now - started,
            },
        )


@ray.remote
def _chunk_task(
    fn: Callable[[Any], Any],
    space: Space,
    chunk: Chunk,
    watch: Any,
    limits: _Limits,
    encode_values: bool = False,
) -> ChunkResult:
    worker = f"pid-{os.getpid()}"
    with _Watchdog(watch, chunk, space, limits, worker) as dog:
        result = run_chunk(
            fn,
            space,
            chunk,
            node=_here(),
            worker=worker,
            encode_values=encode_values,
            progress=dog.progress,
        )
    _count(chunk.run_id, result.size - len(result.failures), len(result.failures))
    return result


@ray.remote
def _warm_up() -> str:
    return _here()


@dataclass(frozen=True)
class RayOptions(BackendOptions):
    """The Ray backend's options (``workers`` = CPUs of a local Ray)."""

    address: str | None = None  # cluster address, else RAY_ADDRESS, else a local Ray
    spread: bool = False  # SPREAD scheduling: chunks across nodes rather than packed
    include_dashboard: bool | None = None  # for a local Ray; None = Ray's default
    autoscale_cpus: int = 0  # ask the cluster's autoscaler for up to this many CPUs


class RayBackend(Backend):
    """Runs chunks as Ray tasks on a cluster: explicit address, else RAY_ADDRESS, else a
    local Ray started here and kept warm for later sweeps (see ray_session)."""

    name = "ray"
    Options = RayOptions
    options: RayOptions

    def __init__(self, options: RayOptions):
        super().__init__(options)
        self._pending: dict[ray.ObjectRef, Chunk] = {}
        self._refs: dict[str, ray.ObjectRef] = {}  # chunk id -> its pending task
        self._beats: dict[str, RunningChunk] = {}
        self._takeovers: dict[str, int] = {}  # planned chunk id -> silent workers replaced
        self._ready: list[ChunkResult] = []
        self._last_take = 0.0
        self._watch = None
        self._taking: ray.ObjectRef | None = None  # a take() not answered yet
        self._limits = _Limits(options.timeout_s, options.max_memory_mb)
        self._capacity = 1
        self._run_id = ""
        self._requested: int | None = None  # CPUs asked of the autoscaler
        self._requested_at = 0.0
        self._nodes: set[str] = set()
        self._node_lost_at: float | None = None
        self._sent_at: dict[ray.ObjectRef, float] = {}
        self._resent: set[str] = set()

    def _open(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> None:
        self._space = space
        self._run_id = run_id
        config = RayConfig.from_env(self.options.address)
        where = ray_session.connect(
            ray_session.RayWanted(
                address=config.address,
                num_cpus=self.options.workers,
                include_dashboard=self.options.include_dashboard,
            )
        )
        log.info("using %s", where)
        ray_cancel.kill_leftovers()
        try:
            self._fn = ray.put(fn)
        except Exception as err:  # cloudpickle raises many types for unpicklable closures
            raise InvalidFunction(
                f"the function cannot be sent to Ray workers: {err}; define it at module "
                "level or make what it captures picklable"
            ) from err
        self._space_ref = ray.put(space)
        self._capacity = self._cluster_cpus()
        self._nodes = self._alive_nodes()
        self._check_memory_limit()
        # Starting the worker processes (and the watch actor's) is start-up cost, not
        # sweep time. (No worker on an autoscaling cluster at zero: the sweep's demand
        # grows it.)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = ray.get([_warm_up.remote() for _ in range(cpus)])
        # The actor after the warm-up: created while the warm-up tasks waited for their
        # workers, it made a new Ray start a spare worker process (13 of 15 starts).
        self._watch = _shared_watch()
        watch_up, _ = ray.wait([self._watch.ready.remote()], timeout=WATCH_READY_S)
        if not watch_up:
            log.info("the watch actor is still starting: heartbeats begin once it is up")
        self._read_at = time.monotonic()  # start-up can take seconds: not stale at once
        log.info("Ray ready: %d CPUs on %d node(s)", self._capacity, len(set(nodes)))

    @staticmethod
    def _cluster_cpus() -> int:
        # At least 1: with no worker yet (an autoscaling cluster at zero), one chunk is
        # what makes the demand that the autoscaler sees.
        return max(1, int(ray.cluster_resources().get("CPU", 0)))

    def _check_memory_limit(self) -> None:
        """Ray schedules by the ``memory`` each task asks for; one that no node has would
        wait forever, so refuse it now."""
        if self.options.max_memory_mb is None:
            return
        largest = max(
            (n["Resources"].get("memory", 0) for n in ray.nodes() if n["Alive"]), default=0
        )
        if self.options.max_memory_mb * MB > largest:
            raise UsageError(
                f"max_memory_mb={self.options.max_memory_mb:g} is more than any Ray node offers "
                f"({largest / MB:.0f} MB); give a smaller --max-memory-mb"
            )

    @property
    def capacity(self) -> int:
        """The cluster's CPUs, read again every CAPACITY_REFRESH_S."""
        now = time.monotonic()
        if now - self._read_at >= CAPACITY_REFRESH_S:
            self._read_at = now
            cpus = self._cluster_cpus()
            self._watch_nodes(now)
            if cpus != self._capacity:
                log.info("the Ray cluster now has %d CPUs (was %d)", cpus, self._capacity)
            self._capacity = cpus
        return self._capacity

    @staticmethod
    def _alive_nodes() -> set[str]:
        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}

    def _watch_nodes(self, now: float) -> None:
        alive = self._alive_nodes()
        if self._nodes - alive:
            log.warning("Ray node(s) %s died", ", ".join(sorted(self._nodes - alive)))
            self._node_lost_at = now
        self._nodes = alive

    def _resend_stuck(self) -> None:
        """Send again each chunk that was in flight when a node died and is still out
        RESEND_AFTER_NODE_DEATH_S later (once per chunk)."""
        lost_at = self._node_lost_at
        if lost_at is None or time.monotonic() - lost_at < RESEND_AFTER_NODE_DEATH_S:
            return
        for ref, chunk in list(self._pending.items()):
            if self._sent_at.get(ref, lost_at) < lost_at and chunk.chunk_id not in self._resent:
                log.warning(
                    "chunk %s still out after a node died: sending it again", chunk.chunk_id
                )
                self._resent.add(chunk.chunk_id)
                self.submit(chunk)
        self._node_lost_at = None

    def want(self, chunks: int) -> None:
        """Ask the autoscaler for a CPU per chunk the sweep could run, up to
        autoscale_cpus: less as the tail approaches, nothing at the end."""
        cap = self.options.autoscale_cpus
        if cap <= 0:
            return
        target = min(cap, max(0, chunks))
        now = time.monotonic()
        if target == self._requested or (target and now - self._requested_at < REQUEST_EVERY_S):
            return
        self._request(target)
        self._requested_at = now

    def _request(self, cpus: int) -> None:
        from ray.autoscaler.sdk import request_resources

        log.info("asking the autoscaler for %d CPUs", cpus)
        request_resources(num_cpus=cpus)
        self._requested = cpus

    def submit(self, chunk: Chunk) -> None:
        options: dict[str, Any] = {
            "name": f"ttg {chunk.chunk_id} [{chunk.lo}:{chunk.hi}) of {self._run_id}",
            "max_retries": self.options.max_retries,
            "retry_exceptions": False,
        }
        if self.options.spread:
            options["scheduling_strategy"] = "SPREAD"
        if self.options.max_memory_mb is not None:
            options["memory"] = int(self.options.max_memory_mb * MB)
        ref = _chunk_task.options(**options).remote(
            self._fn, self._space_ref, chunk, self._watch, self._limits, self.options.encode_values
        )
        self._pending[ref] = chunk
        self._refs[chunk.chunk_id] = ref
        self._sent_at[ref] = time.monotonic()

    def poll(self, timeout_s: float) -> list[ChunkResult]:
        self._resend_stuck()
        self._take_reports()
        if self._ready:
            ready, self._ready = self._ready, []
            return ready
        if not self._pending:
            time.sleep(timeout_s)
            return []
        refs = list(self._pending)
        ready, _ = ray.wait(refs, num_returns=1, timeout=min(timeout_s, 0.25))
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._collect(ref) for ref in ready]

    def running(self) -> list[RunningChunk]:
        now = time.monotonic()
        return [beat.aged(now) for beat in self._beats.values()]

    def _take_reports(self) -> None:
        """Read the watch mailbox: heartbeats, and chunks a watchdog stopped at a limit,
        whose workers are killed here; with timeout_s, a chunk whose worker went silent
        (stopped, or stuck holding the interpreter) is taken over as well."""
        now = time.monotonic()
        if self._watch is None:
            return
        if self._taking is None:
            if now - self._last_take >= (TAKE_LIMITED_S if self._limits.any else BEAT_S):
                self._taking = self._watch.take.remote(self._run_id)
                self._last_take = now
            return
        # Never wait for the answer: a sweep shorter than the actor's start-up (a warm
        # Ray's small sweep) ends without it.
        ready, _ = ray.wait([self._taking], timeout=0)
        if not ready:
            return
        taking, self._taking = self._taking, None
        try:
            beats, stopped = ray.get(taking)
        except RayError as err:
            # Chunks already running report to the lost actor: their limits fall back
            # to the silence rule, and new chunks report to a new one.
            log.warning("lost the watch actor (%s); starting another", err)
            self._watch = _shared_watch(renew=True)
            return
        for chunk_id, beat in beats.items():
            if chunk_id in self._refs:
                self._beats[chunk_id] = RunningChunk(chunk_id, seen_at=now, **beat)
        for result in stopped:
            if result.chunk_id in self._refs:
                self._kill(result.chunk_id)
                self._ready.append(result)
        if self.options.timeout_s is not None:
            self._take_over_silent(now)

    def _take_over_silent(self, now: float) -> None:
        silent_s = self.options.timeout_s + 2 * BEAT_S
        for chunk_id, beat in list(self._beats.items()):
            if now - beat.seen_at <= silent_s:
                continue
            chunk = self._kill(chunk_id)
            root = chunk_id.split("@")[0]
            self._takeovers[root] = self._takeovers.get(root, 0) + 1
            reason = f"its worker sent no heartbeat for {now - beat.seen_at:.1f} s"
            log.warning("chunk %s: %s; taking it over", chunk_id, reason)
            if self._takeovers[root] > self.options.max_retries:
                self._ready.append(lost_chunk(chunk, self._space, "TimeoutError", reason))
            else:  # nothing of it is known to be done: it runs again, whole
                self._ready.append(cut_short(chunk, self._space, 0, [], [], worker=beat.worker))

    def _kill(self, chunk_id: str) -> Chunk:
        """Forget the chunk's task and kill the worker running it (not retried)."""
        ref = self._refs.pop(chunk_id)
        self._beats.pop(chunk_id, None)
        ray.cancel(ref, force=True)
        return self._pending.pop(ref)

    def _collect(self, ref: ray.ObjectRef) -> ChunkResult:
        chunk = self._pending.pop(ref)
        self._sent_at.pop(ref, None)
        self._refs.pop(chunk.chunk_id, None)
        self._beats.pop(chunk.chunk_id, None)
        try:
            return ray.get(ref)
        except _SYSTEM_FAILURES as err:
            reason = f"{type(err).__name__} after {self.options.max_retries} retries"
            log.warning("chunk %s lost: %s", chunk.chunk_id, reason)
            return lost_chunk(chunk, self._space, type(err).__name__, reason)
        except RayTaskError as err:
            cause = err.cause if isinstance(err.cause, BaseException) else err
            missing = _import_failure(cause)
            if missing is not None:  # the workers cannot load the function
                raise TtgError(
                    f"chunk {chunk.chunk_id} could not start on Ray: {missing}; install the "
                    "function's module on every node, or put it on the workers' PYTHONPATH"
                ) from err
            # Failed around the function, not in it (say, a value that cannot be
            # pickled): lost, so the runner narrows it down to the parameter responsible.
            reason = f"{type(cause).__name__}: {cause}"
            log.warning("chunk %s failed in Ray: %s", chunk.chunk_id, reason)
            return lost_chunk(chunk, self._space, type(cause).__name__, reason)
        except RayError as err:
            raise TtgError(f"Ray failed while running chunk {chunk.chunk_id}: {err}") from err

    def close(self) -> None:
        if self._requested and ray.is_initialized():
            self._request(0)  # give the cluster back, also after an error
        # The Ray itself stays up for the next sweep (ray_session); only this sweep's
        # tasks still in flight (an early stop) are cancelled.
        pending, self._pending = list(self._pending), {}
        if pending and ray.is_initialized():
            ray_cancel.cancel(pending)
        self._refs.clear()
        if self._watch is not None and ray.is_initialized():
            with contextlib.suppress(RayError, ValueError):
                self._watch.take.remote(self._run_id)  # drops what late chunks reported
        self._watch, self._taking = None, None
