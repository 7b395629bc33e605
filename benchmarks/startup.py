"""Start-up and footprint, every system in one table: time to the first result of a tiny
sweep, cold (the first call in a fresh process, imports included) and warm (the second
call in that process), and the memory of the whole process tree (the driver and every
process it started: pools, Ray's daemons and workers, Dask's nannies, queue workers)
while the system is up and idle. Brokers are shared services, not counted.

Each system is used as its users keep it between calls: a Pool or executor per call
(``with``), Ray initialised once and left up, one Dask client kept, joblib's loky
executor reused by joblib itself, ttg_ray's compute() as it is.

    python -m benchmarks.startup [--repeat 3] [--systems ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OnFirst = Callable[[], None]
WORKERS = 2
TINY = 4 * WORKERS  # parameters of the tiny sweep
SETTLE_S = 2.0  # after the first result, before the footprint: let pools and daemons idle


def _fn() -> Callable[[Any], Any]:
    from ttg_ray import workloads

    return functools.partial(workloads.seed_placeholder, work_ms=0)


def serial(on_first: OnFirst) -> None:
    fn = _fn()
    fn(0)
    on_first()
    [fn(i) for i in range(1, TINY)]


def pool(on_first: OnFirst) -> None:
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(WORKERS) as p:
        values = p.imap(_fn(), range(TINY))
        next(values)
        on_first()
        list(values)


def process_pool(on_first: OnFirst) -> None:
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=context) as ex:
        values = ex.map(_fn(), range(TINY))
        next(values)
        on_first()
        list(values)


def joblib_loky(on_first: OnFirst) -> None:
    from joblib import Parallel, delayed

    fn = _fn()
    values = Parallel(n_jobs=WORKERS, backend="loky", return_as="generator")(
        delayed(fn)(i) for i in range(TINY)
    )
    next(values)
    on_first()
    list(values)


def ttg(backend: str) -> Callable[[OnFirst], None]:
    def run(on_first: OnFirst) -> None:
        import ttg_ray

        extra = {"include_dashboard": False} if backend == "ray" else {}
        sweep = ttg_ray.stream(_fn(), TINY, backend=backend, workers=WORKERS, **extra)
        for i, _batch in enumerate(sweep.batches()):
            if i == 0:
                on_first()

    return run


def _ray() -> Any:
    import ray

    if not ray.is_initialized():  # as a user's script does: once, then left up
        ray.init(address="local", num_cpus=WORKERS, include_dashboard=False, logging_level="ERROR")
    return ray


def _one(i: int) -> Any:
    return _fn()(i)


def ray_tasks(on_first: OnFirst) -> None:
    ray = _ray()
    task = ray.remote(_one)  # a Ray task per parameter: ray.remote needs a function
    refs = [task.remote(i) for i in range(TINY)]
    ready, _ = ray.wait(refs, num_returns=1)
    ray.get(ready)
    on_first()
    ray.get(refs)


def ray_pool(on_first: OnFirst) -> None:
    _ray()
    from ray.util.multiprocessing import Pool

    p = Pool(processes=WORKERS)
    try:
        values = p.imap(_fn(), range(TINY))
        next(values)
        on_first()
        list(values)
    finally:
        p.terminate()


_dask_client: list[Any] = []


def dask(on_first: OnFirst) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    if not _dask_client:  # one client kept for the process, as Dask's docs use it
        cluster = LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
        )
        _dask_client.append(Client(cluster))
    client = _dask_client[0]
    futures = client.map(_fn(), range(TINY))
    next(as_completed(futures)).result()
    on_first()
    client.gather(futures)


def _teardown() -> None:
    """Stop what the calls left up (Ray, the Dask cluster), so no process outlives us."""
    for client in _dask_client:
        cluster = client.cluster
        client.close()
        cluster.close()
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()


SYSTEMS: dict[str, tuple[str, Callable[[OnFirst], None]]] = {
    "serial": ("python alone (serial loop)", serial),
    "pool": ("multiprocessing.Pool", pool),
    "ppe": ("ProcessPoolExecutor", process_pool),
    "joblib": ("joblib (loky)", joblib_loky),
    "ray": ("ttg_ray ray", ttg("ray")),
    "redis": ("ttg_ray redis", ttg("redis")),
    "rabbitmq": ("ttg_ray rabbitmq", ttg("rabbitmq")),
    "ray-tasks": ("plain Ray tasks", ray_tasks),
    "ray-pool": ("ray.util.multiprocessing.Pool", ray_pool),
    "dask": ("Dask (LocalCluster)", dask),
}


def tree_memory_mb() -> tuple[float, float, int]:
    """RSS and PSS (shared pages split between the processes that share them) of this
    process and all its descendants, in MB, and how many processes that is."""
    import psutil

    me = psutil.Process()
    rss = pss = 0
    procs = [me, *me.children(recursive=True)]
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20, len(procs)


def child(key: str) -> dict:
    """In a fresh process: two calls, the footprint measured during the first."""
    run = SYSTEMS[key][1]
    out: dict = {}

    def first(name: str, t0: float, measure: bool) -> OnFirst:
        def on_first() -> None:
            out[name] = time.perf_counter() - t0
            if measure:
                time.sleep(SETTLE_S)
                out["rss_mb"], out["pss_mb"], out["processes"] = tree_memory_mb()

        return on_first

    run(first("cold_s", time.perf_counter(), measure=True))
    run(first("warm_s", time.perf_counter(), measure=False))
    return out


@dataclass
class StartupRow:
    system: str
    cold_s: list[float]
    warm_s: list[float]
    rss_mb: list[float]
    pss_mb: list[float]
    processes: int = 0

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


def measure(systems: list[str], repeat: int) -> tuple[list[StartupRow], list[str]]:
    """Each system in a fresh process, ``repeat`` times, alternated."""
    rows = {key: StartupRow(SYSTEMS[key][0], [], [], [], []) for key in systems}
    notes, skipped = [], set()
    for round_ in range(repeat):
        for key in systems:
            if key in skipped:
                continue
            print(f"  Startup round {round_ + 1}/{repeat}: {SYSTEMS[key][0]} ...", file=sys.stderr)
            try:
                data = _in_fresh_process(key, attempts=2)
            except RuntimeError as err:
                skipped.add(key)
                notes.append(f"{SYSTEMS[key][0]} skipped in Startup: {err}")
                continue
            row = rows[key]
            row.cold_s.append(data["cold_s"])
            row.warm_s.append(data["warm_s"])
            row.rss_mb.append(data["rss_mb"])
            row.pss_mb.append(data["pss_mb"])
            row.processes = data["processes"]
    return [r for r in rows.values() if r.cold_s], notes


def _in_fresh_process(key: str, attempts: int) -> dict:
    """The child's numbers; tried again after a failure (on a crowded machine a local Ray
    can miss its fixed 30 s start-up wait)."""
    cmd = [sys.executable, "-m", "benchmarks.startup", "--child", key]
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    for attempt in range(attempts):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        lines = [line for line in proc.stdout.splitlines() if line.startswith('{"cold_s"')]
        if proc.returncode == 0 and lines:
            return json.loads(lines[-1])
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  attempt {attempt + 1} failed: {tail}", file=sys.stderr)
    raise RuntimeError(tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--child", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    args = parser.parse_args(argv)
    if args.child:
        data = child(args.child)
        print(json.dumps({"cold_s": data.pop("cold_s"), **data}), flush=True)
        _teardown()
        return 0
    from benchmarks import report

    rows, notes = measure([s.strip() for s in args.systems.split(",") if s.strip()], args.repeat)
    print(report.startup_table(rows) + "".join(f"\n{n}\n" for n in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
