"""The systems a benchmark compares, each timed the same way: start-up (cluster, pool,
broker connection, worker processes) apart, then from the first submission to the last
result. Each peer appears as a newcomer would use it (naive) and as its own documentation
says to run many small tasks (best practice): same work, same workers."""

from __future__ import annotations

import concurrent.futures
import functools
import math
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ttg_ray
from ttg_ray import workloads
from ttg_ray.core.chunks import ChunkPlanner

# Local clusters started here run without Ray 2.60's token authentication.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

Fn = Callable[[Any], Any]


@dataclass(frozen=True)
class Job:
    """``fn`` over ``params`` (a range: the whole space, or an evenly strided sample of it)
    on ``workers`` processes; ``chunk_size`` is what ttg_ray's planner cuts for this work,
    handed to the peers' chunked (best-practice) usage."""

    fn: Fn
    params: range
    workers: int
    chunk_size: int

    @property
    def n(self) -> int:
        return len(self.params)


@dataclass
class Timing:
    system: str
    n: int
    startup_s: float
    sweep_s: float
    checksum: float | int
    ended_at: float = 0.0  # time.perf_counter() at the last result, before any shutdown

    @property
    def rate(self) -> float:
        return self.n / self.sweep_s if self.sweep_s > 0 else 0.0


System = Callable[[Job], Timing]


class Unavailable(Exception):
    """A system that cannot run here (library missing, broker down)."""


class WrongValues(Exception):
    """A system returned values that are not the function's (say, an array as a list)."""


def digest(values: Iterable[Any]) -> float | int:
    """What the systems must agree on: the sum of numbers (orders differ only in the last
    bits), or for arrays an exact digest of dtype, shape and bytes, so an array that came
    back as a list, or with one bit changed, does not pass."""
    total: float | int = 0
    for value in values:
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            total += zlib.crc32(f"{value.dtype}{value.shape}".encode() + value.tobytes())
        elif isinstance(value, (list, tuple, dict, str)):
            raise WrongValues(f"a {type(value).__name__} came back where the function returned")
        else:
            total += value
    return total


def chunk_size_ttg_picks(fn: Fn, params: range, workers: int, budget_s: float = 1.0) -> int:
    """The chunk size ttg_ray's planner cuts once its first probe is back: the probe (the
    first ``probe_size`` parameters) is timed here as the planner would see it, stopping
    after ``budget_s`` when the work is long (W6: 16 x 2 s), which gives the same per-
    parameter time."""
    planner = ChunkPlanner("size", [(0, len(params))], workers=workers)
    probe = planner.next_chunk()
    started = time.perf_counter()
    done = 0
    for i in probe.iter_indices():
        fn(params[i])
        done += 1
        if time.perf_counter() - started >= budget_s:
            break
    planner.observe(probe.chunk_id, done, time.perf_counter() - started)
    return planner.next_size()


def chunks_of(params: range, size: int) -> list[range]:
    return [params[lo : lo + size] for lo in range(0, len(params), size)]


def run_list(fn: Fn, params: Iterable[Any]) -> list[Any]:
    return [fn(p) for p in params]


def serial(job: Job) -> Timing:
    started = time.perf_counter()
    values = [job.fn(p) for p in job.params]
    return Timing("serial loop", job.n, 0.0, time.perf_counter() - started, digest(values))


def _compute_share(fn: Fn, part: range) -> tuple[float, float | int]:
    started = time.perf_counter()
    values = [fn(p) for p in part]
    return time.perf_counter() - started, digest(values)


def compute_only(job: Job) -> Timing:
    """What the machine allows: each worker process computes its contiguous share and
    keeps it (no parameters sent, no values returned, no scheduling), timed inside the
    workers; the slowest share is the sweep. No system can beat it on the same cores;
    the "ideal" (workers x the serial loop) assumes the cores scale perfectly."""
    t0 = time.perf_counter()
    share = -(-job.n // job.workers)
    parts = [job.params[i : i + share] for i in range(0, job.n, share)]
    with multiprocessing.get_context("fork").Pool(job.workers) as pool:
        pool.map(abs, range(job.workers))  # start the worker processes
        started = time.perf_counter()
        shares = pool.starmap(_compute_share, [(job.fn, part) for part in parts], chunksize=1)
    sweep_s = max(seconds for seconds, _ in shares)
    return Timing("compute only", job.n, started - t0, sweep_s, sum(d for _, d in shares))


def pool_map(job: Job) -> Timing:
    """multiprocessing.Pool.map with its default chunksize (a static split into 4 chunks
    per worker)."""
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(job.workers) as pool:
        pool.map(abs, range(job.workers))  # start the worker processes
        started = time.perf_counter()
        values = pool.map(job.fn, job.params)
        sweep_s = time.perf_counter() - started
    return Timing("Pool.map", job.n, started - t0, sweep_s, digest(values))


def process_pool(chunked: bool) -> System:
    """concurrent.futures.ProcessPoolExecutor.map: chunksize 1 (its default) or ttg_ray's."""

    def run(job: Job) -> Timing:
        chunksize = job.chunk_size if chunked else 1
        t0 = time.perf_counter()
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(job.workers, mp_context=context) as ex:
            list(ex.map(abs, range(job.workers)))
            started = time.perf_counter()
            values = list(ex.map(job.fn, job.params, chunksize=chunksize))
            sweep_s = time.perf_counter() - started
        return Timing("ProcessPoolExecutor.map", job.n, started - t0, sweep_s, digest(values))

    return run


def joblib_loky(job: Job) -> Timing:
    """joblib.Parallel on loky with batch_size='auto' (its default): joblib times its
    batches and grows them until each takes a fraction of a second."""
    try:
        from joblib import Parallel, delayed
    except ImportError as err:
        raise Unavailable("joblib is not installed (pip install joblib)") from err
    t0 = time.perf_counter()
    parallel = Parallel(n_jobs=job.workers, backend="loky", batch_size="auto")
    with parallel:
        parallel(delayed(abs)(i) for i in range(job.workers))
        started = time.perf_counter()
        values = parallel(delayed(job.fn)(p) for p in job.params)
        sweep_s = time.perf_counter() - started
    return Timing("joblib", job.n, started - t0, sweep_s, digest(values))


def ttg_ray_backend(backend: str, **options: Any) -> System:
    """ttg_ray on ``backend``; the summary times start-up and the sweep apart."""

    def run(job: Job) -> Timing:
        extra = {"include_dashboard": False} if backend == "ray" else {}
        sweep = ttg_ray.stream(
            job.fn, job.params, backend=backend, workers=job.workers, **extra, **options
        )
        values: list[Any] = [None] * job.n
        ended_at = 0.0
        for batch in sweep.batches():
            at = batch.indices
            if isinstance(at, range) and at.step == 1:
                values[at.start : at.stop] = batch.values
            else:
                for i, value in zip(at, batch.values):
                    values[i] = value
            ended_at = time.perf_counter()
        s = sweep.summary
        if s.processed != job.n or s.failed:
            first = sweep.failures[0] if sweep.failures else None
            why = f": {first.type}: {first.message}" if first else ""
            raise RuntimeError(f"{s.processed} of {job.n} processed, {s.failed} failed{why}")
        return Timing(
            f"ttg_ray {backend}", job.n, s.startup_s, s.duration_s, digest(values), ended_at
        )

    return run


def local_ray(workers: int) -> Any:
    import ray

    # ttg_ray keeps its local Ray warm between calls: a peer gets a fresh one of its own.
    ttg_ray.shutdown()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    return ray


def ray_tasks(ray: Any, batch: Any, fn: Fn, parts: Iterable[range]) -> tuple[list, float, float]:
    """``fn`` over each part as one task of ``batch`` (run_list made remote), all sent at
    once and gathered with one ray.get: the values in order, and perf_counter() when the
    function was sent and when the last result was in."""
    started = time.perf_counter()
    ref = ray.put(fn)
    done = ray.get([batch.remote(ref, part) for part in parts])
    return [v for part in done for v in part], started, time.perf_counter()


def plain_ray_tasks(per_task: int | None = 100) -> System:
    """What a user writes by hand: one Ray task per ``per_task`` parameters (None: the
    chunk size ttg_ray picks), then one ray.get of them all."""

    def run(job: Job) -> Timing:
        size = per_task or job.chunk_size
        t0 = time.perf_counter()
        ray = local_ray(job.workers)
        try:
            batch = ray.remote(run_list)
            ray.get([batch.remote(abs, [1]) for _ in range(job.workers)])
            values, started, ended_at = ray_tasks(ray, batch, job.fn, chunks_of(job.params, size))
        finally:
            ray.shutdown()
        return Timing(
            "plain Ray tasks", job.n, started - t0, ended_at - started, digest(values), ended_at
        )

    return run


def warm_ray_tasks(per_task: int | None) -> System:
    """Plain Ray tasks of ``per_task`` parameters (None: ttg_ray's chunk) on the Ray this
    process already has up, for timing without Ray's start-up in the way."""

    def run(job: Job) -> Timing:
        import ray

        parts = chunks_of(job.params, per_task or job.chunk_size)
        values, started, ended_at = ray_tasks(ray, ray.remote(run_list), job.fn, parts)
        return Timing("plain Ray tasks", job.n, 0.0, ended_at - started, digest(values), ended_at)

    return run


def ray_pool(chunked: bool) -> System:
    """ray.util.multiprocessing.Pool.map, the drop-in for Pool.map: its default chunksize
    (a static split, as Pool's) or ttg_ray's."""

    def run(job: Job) -> Timing:
        from ray.util.multiprocessing import Pool

        t0 = time.perf_counter()
        ray = local_ray(job.workers)
        try:
            pool = Pool(processes=job.workers)
            pool.map(abs, range(job.workers))
            started = time.perf_counter()
            values = pool.map(job.fn, job.params, chunksize=job.chunk_size if chunked else None)
            sweep_s = time.perf_counter() - started
            pool.terminate()
        finally:
            ray.shutdown()
        return Timing("ray.util Pool.map", job.n, started - t0, sweep_s, digest(values))

    return run


def dask_available() -> bool:
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return False
    return True


def dask(usage: str) -> System:
    """Dask distributed on a LocalCluster of one-thread worker processes: ``map`` is one
    future per parameter (client.map), ``chunks`` client.map over chunks of ttg_ray's size,
    ``bag`` dask.bag with partitions of that size (Dask's advice for many tiny tasks)."""

    def run(job: Job) -> Timing:
        if not dask_available():
            raise Unavailable("dask[distributed] is not installed")
        import dask.bag
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=job.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        try:
            client.gather(client.map(abs, range(job.workers)))
            started = time.perf_counter()
            if usage == "map":
                values = client.gather(client.map(job.fn, job.params))
            elif usage == "chunks":
                parts = chunks_of(job.params, job.chunk_size)
                futures = client.map(run_list, [job.fn] * len(parts), parts)
                values = [v for part in client.gather(futures) for v in part]
            else:
                parts = math.ceil(job.n / job.chunk_size)
                bag = dask.bag.from_sequence(job.params, npartitions=parts).map(job.fn)
                values = bag.compute(scheduler=client)
            sweep_s = time.perf_counter() - started
        finally:
            client.close()
            cluster.close()
        return Timing(f"Dask {usage}", job.n, started - t0, sweep_s, digest(values))

    return run


def work(work_ms: float) -> Fn:
    """The seed's placeholder with ``work_ms`` of simulated work (a sleep)."""
    return functools.partial(workloads.seed_placeholder, work_ms=work_ms)


def cpu_work(work_ms: float) -> Fn:
    """About ``work_ms`` of real CPU work per parameter."""
    return functools.partial(workloads.cpu_bound, work_ms=work_ms)
