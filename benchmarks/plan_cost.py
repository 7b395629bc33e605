"""What ttg_ray's automatic chunk plan costs on a short sweep, apart from what its chunks
cost on Ray: W5 (2,000 arrays of 80 KB, about 0.3 s) unless told otherwise.

    python -m benchmarks.plan_cost [--repeat 8] [--workload W5] [--fresh]

Alternated rounds of four sweeps of the same work: ttg_ray with its automatic plan;
plain Ray tasks cut exactly as that plan cut the same round's sweep; ttg_ray with a fixed
chunk (the size the planner picks after its probe); plain Ray tasks of that size. ttg_ray
against plain tasks of the same cut is what ttg_ray adds per chunk; the two plain rows
against each other are what the plan's probe round and shrinking tail cost. Every round
runs on the one warm Ray unless ``--fresh`` starts a new one for each sweep, as
``benchmarks.compare`` does. Prints milliseconds per sweep (medians, with min-max).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from typing import Any

import ttg_ray
from benchmarks.compare import WORKLOADS
from benchmarks.systems import chunk_size_ttg_picks, chunks_of, local_ray, ray_tasks, run_list

ROWS = ("ttg_ray, automatic plan", "plain Ray tasks, the same cut", "ttg_ray, fixed chunk",
        "plain Ray tasks, fixed chunk")  # fmt: skip


def ttg_sweep(fn: Any, n: int, workers: int, chunk_size: int | None) -> tuple[float, list[int]]:
    """ttg_ray's sweep time, and the sizes of the chunks it ran, in index order."""
    sweep = ttg_ray.stream(
        fn, n, workers=workers, chunk_size=chunk_size, include_dashboard=False, progress=False
    )
    starts = sorted((b.indices[0], len(b.indices)) for b in sweep.batches() if len(b.indices))
    s = sweep.summary
    if s.processed != n or s.failed:
        raise RuntimeError(f"ttg_ray processed {s.processed} of {n}, {s.failed} failed")
    return s.duration_s, [size for _, size in starts]


def plain_sweep(fn: Any, sizes: list[int], workers: int, fresh: bool) -> float:
    """Plain Ray tasks of the given sizes, in index order (see systems.ray_tasks)."""
    import ray

    batch = ray.remote(run_list)
    if fresh:  # a Ray of its own, workers up before the clock starts (ttg_ray's warm-up)
        local_ray(workers)
        ray.get([batch.remote(abs, [1]) for _ in range(workers)])
    ends = list(itertools.accumulate(sizes))
    parts = [range(end - size, end) for size, end in zip(sizes, ends)]
    values, started, ended_at = ray_tasks(ray, batch, fn, parts)
    if len(values) != sum(sizes):
        raise RuntimeError("plain Ray tasks lost values")
    if fresh:
        ray.shutdown()
    return ended_at - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_cost", description=__doc__)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--workload", default="W5", choices=[w.key for w in WORKLOADS])
    parser.add_argument("--fresh", action="store_true", help="a new Ray for every sweep")
    args = parser.parse_args(argv)
    w = next(w for w in WORKLOADS if w.key == args.workload)
    chunk = chunk_size_ttg_picks(w.fn, range(w.n), w.workers)
    fixed = [len(part) for part in chunks_of(range(w.n), chunk)]
    print(f"{w.key}: {w.title}; fixed chunk {chunk}; {'a new' if args.fresh else 'one warm'} Ray")
    if not args.fresh:
        ttg_ray.compute(abs, 2, workers=w.workers, include_dashboard=False, progress=False)
    times: dict[str, list[float]] = {row: [] for row in ROWS}
    cuts: list[int] = []
    for _ in range(args.repeat):
        if args.fresh:
            ttg_ray.shutdown()
        took, cut = ttg_sweep(w.fn, w.n, w.workers, None)
        times[ROWS[0]].append(took)
        cuts.append(len(cut))
        times[ROWS[1]].append(plain_sweep(w.fn, cut, w.workers, args.fresh))
        if args.fresh:
            ttg_ray.shutdown()
        times[ROWS[2]].append(ttg_sweep(w.fn, w.n, w.workers, chunk)[0])
        times[ROWS[3]].append(plain_sweep(w.fn, fixed, w.workers, args.fresh))
    print(f"the automatic plan cut {min(cuts)}-{max(cuts)} chunks; the fixed one {len(fixed)}")
    print("| sweep | ms (median) | min-max |\n|---|---:|---:|")
    for row, runs in times.items():
        ms = [1000 * t for t in runs]
        print(f"| {row} | {statistics.median(ms):.0f} | {min(ms):.0f}-{max(ms):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
