"""The Ray backend: chunks become Ray tasks.

Fault tolerance is Ray's: a task whose worker process or node dies is retried
(``max_retries``), and a result lost with its node is rebuilt from lineage. Each chunk
task is named after its chunk, so the dashboard's task view reads as the sweep does.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
    RayTaskError,
    TaskUnschedulableError,
    WorkerCrashedError,
)
from ray.util.metrics import Counter

from ttg_ray.backends import ray_session
from ttg_ray.backends.base import Backend, BackendOptions
from ttg_ray.config import RayConfig, WorkerContext
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import lost_chunk, run_chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult
from ttg_ray.errors import InvalidFunction, TtgError

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


@ray.remote
def _chunk_task(
    fn: Callable[[Any], Any], space: Space, chunk: Chunk, encode_values: bool = False
) -> ChunkResult:
    result = run_chunk(
        fn, space, chunk, node=_here(), worker=f"pid-{os.getpid()}", encode_values=encode_values
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
        try:
            self._fn = ray.put(fn)
        except Exception as err:  # cloudpickle raises many types for unpicklable closures
            raise InvalidFunction(
                f"the function cannot be sent to Ray workers: {err}; define it at module "
                "level or make what it captures picklable"
            ) from err
        self._space_ref = ray.put(space)
        self._capacity = self._cluster_cpus()
        self._read_at = time.monotonic()
        self._nodes = self._alive_nodes()
        # Starting the worker processes is start-up cost, not sweep time.
        # (None on an autoscaling cluster with no worker yet: the sweep's demand grows it.)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = ray.get([_warm_up.remote() for _ in range(cpus)])
        log.info("Ray ready: %d CPUs on %d node(s)", self._capacity, len(set(nodes)))

    @staticmethod
    def _cluster_cpus() -> int:
        # At least 1: with no worker yet (an autoscaling cluster at zero), one chunk is
        # what makes the demand that the autoscaler sees.
        return max(1, int(ray.cluster_resources().get("CPU", 0)))

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
        ref = _chunk_task.options(**options).remote(
            self._fn, self._space_ref, chunk, self.options.encode_values
        )
        self._pending[ref] = chunk
        self._sent_at[ref] = time.monotonic()

    def poll(self, timeout_s: float) -> list[ChunkResult]:
        self._resend_stuck()
        if not self._pending:
            time.sleep(timeout_s)
            return []
        refs = list(self._pending)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref: ray.ObjectRef) -> ChunkResult:
        chunk = self._pending.pop(ref)
        self._sent_at.pop(ref, None)
        try:
            return ray.get(ref)
        except _SYSTEM_FAILURES as err:
            reason = f"{type(err).__name__} after {self.options.max_retries} retries"
            log.warning("chunk %s lost: %s", chunk.chunk_id, reason)
            return lost_chunk(chunk, self._space, type(err).__name__, reason)
        except RayTaskError as err:
            cause = err.cause if isinstance(err.cause, BaseException) else err
            if isinstance(cause, ImportError):  # the workers cannot load the function
                raise TtgError(
                    f"chunk {chunk.chunk_id} could not start on Ray: "
                    f"{type(cause).__name__}: {cause}; install the function's module on "
                    "every node, or put it on the workers' PYTHONPATH"
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
            for ref in pending:
                with contextlib.suppress(RayError, ValueError):
                    ray.cancel(ref)
