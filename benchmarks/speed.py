"""The core speed benchmark (issue 2): serial loop, multiprocessing.Pool.map and
ttg_ray's Ray backend on (a) 1,000,000 trivial parameters and (b) 10,000 parameters of
1 ms simulated work with 3 workers; plus the driver's peak memory when streaming 1M and
10M parameters to --output.

    python -m benchmarks.speed [--repeat 3] [--quick]

Systems alternate within one run (A B A B ...); medians with min-max are printed as a
Markdown table. Start-up (local Ray, pool) is reported apart from the sweep.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

from benchmarks.compare import driver_run
from benchmarks.systems import (
    Job,
    Timing,
    chunk_size_ttg_picks,
    plain_ray_tasks,
    pool_map,
    serial,
    ttg_ray_backend,
    work,
)

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # the local clusters started here


def median_row(name: str, runs: list[Timing], reference: float | None) -> str:
    rates = [t.rate for t in runs]
    med = statistics.median(rates)
    startup = statistics.median(t.startup_s for t in runs)
    ratio = f"{med / reference:.2f}" if reference else "-"
    return (
        f"| {name} | {med:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | {ratio} | {startup:.2f} |"
    )


def run_workload(title, fn, n, workers, systems, repeat, reference_name, ceiling=None):
    runs: dict[str, list[Timing]] = {name: [] for name, _ in systems}
    job = Job(fn, range(n), workers, chunk_size_ttg_picks(fn, range(n), workers))
    for _ in range(repeat):
        for name, system in systems:  # alternate: A B C A B C ...
            timing = system(job)
            runs[name].append(timing)
    checks = {name: runs[name][0].checksum for name in runs}
    first = next(iter(checks.values()))
    # Sums taken in another order differ in the last bits, nothing more.
    assert all(math.isclose(c, first, rel_tol=1e-12) for c in checks.values()), checks
    lines = [f"### {title}", ""]
    ref = statistics.median(t.rate for t in runs[reference_name])
    if ceiling is not None:
        serial_rate = statistics.median(t.rate for t in runs["serial loop"])
        ceiling_rate = serial_rate * workers
        lines.append(
            f"Zero-overhead ceiling: {workers} x the serial rate = {ceiling_rate:,.0f} params/s."
        )
        lines.append("")
        ref = ceiling_rate
        head = "| system | params/s (median) | min-max | of ceiling | start-up s |"
    else:
        head = f"| system | params/s (median) | min-max | x {reference_name} | start-up s |"
    lines += [head, "|---|---:|---:|---:|---:|"]
    lines += [median_row(name, runs[name], ref) for name in runs]
    return "\n".join(lines) + "\n"


def driver_peak_mb(n: int) -> tuple[float, float]:
    """Peak RSS (MB) of a driver streaming n trivial parameters to a file, and its rate."""
    return driver_run("ray", n)


def lazy_space_s() -> float:
    """Seconds to build two 10M-point spaces, index their last point and write their
    specs: a space that materialised its points would take seconds and gigabytes."""
    from ttg_ray.core.params import Grid, ParamRange

    started = time.perf_counter()
    spaces = [ParamRange(10_000_000), Grid({"a": range(10_000), "b": range(1_000)})]
    for space in spaces:
        space[len(space) - 1]
        space.to_spec()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    n_trivial, n_work = (20_000, 300) if args.quick else (1_000_000, 10_000)
    sizes = (10_000, 100_000) if args.quick else (1_000_000, 10_000_000)
    print(f"# ttg_ray core speed, {time.strftime('%Y-%m-%d')} on {platform.node()}")
    print(f"{os.cpu_count()} cores, Python {platform.python_version()}\n")
    print(f"Two lazy 10M-point spaces (build, index, spec): {lazy_space_s() * 1000:.2f} ms\n")
    systems = [
        ("serial loop", serial),
        ("multiprocessing.Pool.map", pool_map),
        ("ttg_ray ray", ttg_ray_backend("ray")),
        ("plain Ray tasks of 100", plain_ray_tasks()),
    ]
    print(
        run_workload(
            f"(a) {n_trivial:,} trivial parameters, 2 workers",
            work(0.0),
            n_trivial,
            2,
            systems,
            args.repeat,
            "multiprocessing.Pool.map",
        )
    )
    print(
        run_workload(
            f"(b) {n_work:,} parameters x 1 ms, 3 workers",
            work(1.0),
            n_work,
            3,
            systems,
            args.repeat,
            "serial loop",
            ceiling=True,
        )
    )
    if not args.skip_memory:
        print("### Driver peak memory, streaming trivial parameters to --output\n")
        print("| parameters | driver peak RSS MB | params/s |\n|---:|---:|---:|")
        for n in sizes:
            peak, rate = driver_peak_mb(n)
            print(f"| {n:,} | {peak:,.0f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
