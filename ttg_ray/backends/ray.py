"""The Ray backend: chunks become Ray tasks. The only module that imports ray.

Fault tolerance is Ray's: a task whose worker process or node dies is retried
(``max_retries``), and a result lost with its node is rebuilt from lineage. Each chunk
task is named after its chunk, so the dashboard's task view reads as the sweep does.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
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

from ttg_ray.backends.base import Backend
from ttg_ray.config import RayConfig, WorkerContext
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import lost_chunk, run_chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ChunkResult
from ttg_ray.errors import BackendUnavailable, InvalidFunction, TtgError

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


@ray.remote
def _chunk_task(fn: Callable[[Any], Any], space: Space, chunk: Chunk) -> ChunkResult:
    result = run_chunk(fn, space, chunk, node=_here(), worker=f"pid-{os.getpid()}")
    _count(chunk.run_id, result.size - len(result.failures), len(result.failures))
    return result


@ray.remote
def _warm_up() -> str:
    return _here()


class RayBackend(Backend):
    """Runs chunks as Ray tasks on a cluster: explicit address, else RAY_ADDRESS, else a
    local Ray started here (and stopped at close)."""

    name = "ray"

    def start(self, fn: Callable[[Any], Any], space: Space, run_id: str) -> None:
        self._space = space
        self._run_id = run_id
        self._pending: dict[ray.ObjectRef, Chunk] = {}
        self._owns_ray = False
        if ray.is_initialized():
            log.info("using the Ray this process already started or joined")
        else:
            self._connect(RayConfig.from_env(self.options.address))
        try:
            self._fn = ray.put(fn)
        except Exception as err:  # cloudpickle raises many types for unpicklable closures
            raise InvalidFunction(
                f"the function cannot be sent to Ray workers: {err}; define it at module "
                "level or make what it captures picklable"
            ) from err
        self._space_ref = ray.put(space)
        self._capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Starting the worker processes is start-up cost, not sweep time.
        nodes = ray.get([_warm_up.remote() for _ in range(self._capacity)])
        log.info("Ray ready: %d CPUs on %d node(s)", self._capacity, len(set(nodes)))

    def _connect(self, config: RayConfig) -> None:
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if config.address:
            where = f"the Ray cluster at {config.address}"
            kwargs["address"] = config.address
        else:
            where = "a local Ray"
            kwargs["address"] = "local"  # never join a cluster that happens to run here
            if self.options.workers:
                kwargs["num_cpus"] = self.options.workers
            if self.options.include_dashboard is not None:
                kwargs["include_dashboard"] = self.options.include_dashboard
        log.info("connecting to %s", where)
        started = time.monotonic()
        try:
            context = ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            raise BackendUnavailable(
                f"cannot reach {where}: {err}; check --address / RAY_ADDRESS (and "
                "RAY_AUTH_TOKEN if the cluster uses token authentication), or give neither "
                "to run on a local Ray"
            ) from err
        self._owns_ray = True
        dashboard = getattr(context, "dashboard_url", None)
        log.info(
            "connected to %s in %.1f s%s",
            where,
            time.monotonic() - started,
            f"; dashboard at http://{dashboard}" if dashboard else "",
        )

    @property
    def capacity(self) -> int:
        return self._capacity

    def submit(self, chunk: Chunk) -> None:
        options: dict[str, Any] = {
            "name": f"ttg {chunk.chunk_id} [{chunk.lo}:{chunk.hi}) of {self._run_id}",
            "max_retries": self.options.max_retries,
            "retry_exceptions": False,
        }
        if self.options.spread:
            options["scheduling_strategy"] = "SPREAD"
        ref = _chunk_task.options(**options).remote(self._fn, self._space_ref, chunk)
        self._pending[ref] = chunk

    def poll(self, timeout_s: float) -> list[ChunkResult]:
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
        if getattr(self, "_owns_ray", False) and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
