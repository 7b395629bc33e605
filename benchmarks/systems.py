"""The systems a benchmark compares, each timed the same way: start-up (cluster, pool,
broker connection) apart, then from the first submission to the last result."""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ttg_ray
from ttg_ray import workloads

# Local clusters started here run without Ray 2.60's token authentication.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

Fn = Callable[[Any], Any]
System = Callable[[Fn, int, int], "Timing"]


@dataclass
class Timing:
    system: str
    n: int
    startup_s: float
    sweep_s: float
    checksum: float

    @property
    def rate(self) -> float:
        return self.n / self.sweep_s if self.sweep_s > 0 else 0.0


class Unavailable(Exception):
    """A system that cannot run here (library missing, broker down)."""


def serial(fn: Fn, n: int, workers: int) -> Timing:
    started = time.perf_counter()
    total = 0.0
    for i in range(n):
        total += fn(i)
    return Timing("serial loop", n, 0.0, time.perf_counter() - started, total)


def pool_map(fn: Fn, n: int, workers: int) -> Timing:
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(abs, range(workers))  # start the worker processes
        started = time.perf_counter()
        values = pool.map(fn, range(n))
        sweep_s = time.perf_counter() - started
    return Timing("multiprocessing.Pool.map", n, started - t0, sweep_s, sum(values))


def ttg_ray_backend(backend: str, **options: Any) -> System:
    """ttg_ray on ``backend``; the summary times start-up and the sweep apart."""

    def run(fn: Fn, n: int, workers: int) -> Timing:
        extra = {"include_dashboard": False} if backend == "ray" else {}
        sweep = ttg_ray.stream(fn, n, backend=backend, workers=workers, **extra, **options)
        total = 0.0
        for batch in sweep.batches():
            total += sum(batch.values)
        s = sweep.summary
        if s.processed != n or s.failed:
            raise RuntimeError(f"ttg_ray {backend}: {s.processed} of {n}, {s.failed} failed")
        return Timing(f"ttg_ray {backend}", n, s.startup_s, s.duration_s, total)

    return run


def _local_ray(workers: int) -> Any:
    import ray

    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    return ray


def plain_ray_tasks(fn: Fn, n: int, workers: int, per_task: int = 100) -> Timing:
    """What a user writes by hand: one Ray task per 100 parameters, then ray.get."""
    t0 = time.perf_counter()
    ray = _local_ray(workers)
    try:

        @ray.remote
        def batch(lo: int, hi: int) -> list[Any]:
            return [fn(i) for i in range(lo, hi)]

        ray.get([batch.remote(0, 1) for _ in range(workers)])
        started = time.perf_counter()
        refs = [batch.remote(lo, min(n, lo + per_task)) for lo in range(0, n, per_task)]
        total = sum(sum(part) for part in ray.get(refs))
        sweep_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    return Timing(f"plain Ray tasks of {per_task}", n, started - t0, sweep_s, total)


def ray_pool(fn: Fn, n: int, workers: int) -> Timing:
    """ray.util.multiprocessing.Pool: the drop-in replacement for Pool.map."""
    from ray.util.multiprocessing import Pool

    t0 = time.perf_counter()
    ray = _local_ray(workers)
    try:
        pool = Pool(processes=workers)
        pool.map(abs, range(workers))
        started = time.perf_counter()
        values = pool.map(fn, range(n))
        sweep_s = time.perf_counter() - started
        pool.terminate()
    finally:
        ray.shutdown()
    return Timing("ray.util.multiprocessing.Pool", n, started - t0, sweep_s, sum(values))


def dask_available() -> bool:
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return False
    return True


def dask_map(fn: Fn, n: int, workers: int) -> Timing:
    """Dask distributed: client.map on a LocalCluster of one-thread worker processes."""
    if not dask_available():
        raise Unavailable("dask[distributed] is not installed")
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    try:
        client.gather(client.map(abs, range(workers)))
        started = time.perf_counter()
        values = client.gather(client.map(fn, range(n)))
        sweep_s = time.perf_counter() - started
    finally:
        client.close()
        cluster.close()
    return Timing("Dask client.map", n, started - t0, sweep_s, sum(values))


def work(work_ms: float) -> Fn:
    """The seed's placeholder with ``work_ms`` of simulated work (a sleep)."""
    return functools.partial(workloads.seed_placeholder, work_ms=work_ms)


def cpu_work(work_ms: float) -> Fn:
    """About ``work_ms`` of real CPU work per parameter."""
    return functools.partial(workloads.cpu_bound, work_ms=work_ms)
