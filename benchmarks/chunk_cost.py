"""What a chunk costs on Ray beyond its parameters: ttg_ray's Ray backend against plain
Ray tasks, both on many tiny chunks of a trivial function, on one warm local Ray.

    python -m benchmarks.chunk_cost [--repeat 5] [--n 4000] [--chunk 20]

Plain Ray tasks are the floor (one task submission, one result); what ttg_ray adds per
chunk is its bookkeeping: a bounded number of chunks in flight, the chunk's watchdog
thread, its statistics and its result record. Prints milliseconds per chunk (medians of
alternated rounds, with min-max).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import ttg_ray
from benchmarks.systems import Job, ttg_ray_backend, warm_ray_tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chunk_cost", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    # ttg_ray starts the local Ray and keeps it; the plain tasks run on the same one.
    ttg_ray.compute(abs, 2, workers=args.workers, include_dashboard=False, progress=False)
    job = Job(abs, range(args.n), args.workers, args.chunk)
    systems = {
        "ttg_ray ray": ttg_ray_backend("ray", chunk_size=args.chunk),
        "plain Ray tasks": warm_ray_tasks(args.chunk),
    }
    for run in systems.values():  # warm both: worker processes, imports
        run(job)
    times: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(args.repeat):
        for name, run in systems.items():
            times[name].append(run(job).sweep_s)
    chunks = -(-args.n // args.chunk)
    print(f"{chunks} chunks of {args.chunk} trivial parameters, {args.workers} workers")
    print("| system | ms per chunk (median) | min-max |\n|---|---:|---:|")
    for name, seconds in times.items():
        per = [1000 * s / chunks for s in seconds]
        print(f"| {name} | {statistics.median(per):.2f} | {min(per):.2f}-{max(per):.2f} |")
    ttg_ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
