"""The systems a benchmark compares, each timed the same way: start-up apart, then
from the first submission to the last result."""

from __future__ import annotations

import functools
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ttg_ray
from ttg_ray import workloads


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


def serial(fn: Callable[[Any], Any], n: int, workers: int) -> Timing:
    started = time.perf_counter()
    total = 0.0
    for i in range(n):
        total += fn(i)
    return Timing("serial loop", n, 0.0, time.perf_counter() - started, total)


def pool_map(fn: Callable[[Any], Any], n: int, workers: int) -> Timing:
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(abs, range(workers))  # start the worker processes
        started = time.perf_counter()
        values = pool.map(fn, range(n))
        sweep_s = time.perf_counter() - started
    return Timing("multiprocessing.Pool.map", n, started - t0, sweep_s, sum(values))


def ttg_ray_backend(backend: str) -> Callable[[Callable[[Any], Any], int, int], Timing]:
    def run(fn: Callable[[Any], Any], n: int, workers: int) -> Timing:
        options = {"include_dashboard": False} if backend == "ray" else {}
        sweep = ttg_ray.stream(fn, n, backend=backend, workers=workers, **options)
        total = 0.0
        for batch in sweep.batches():
            total += sum(batch.values)
        s = sweep.summary
        return Timing(f"ttg_ray {backend}", n, s.startup_s, s.duration_s, total)

    return run


def plain_ray_tasks(fn: Callable[[Any], Any], n: int, workers: int, per_task: int = 100) -> Timing:
    """What a user writes by hand: one Ray task per 100 parameters, then ray.get."""
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
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


def work(work_ms: float) -> Callable[[Any], Any]:
    return functools.partial(workloads.seed_placeholder, work_ms=work_ms)
