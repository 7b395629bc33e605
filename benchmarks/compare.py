"""ttg_ray against its peers, side by side, on the same work (issue 5).

    python -m benchmarks.compare [--repeat 3] [--quick] [--workloads W0,W1,W2,W3,Scale]
                                 [--systems serial,pool,ray,redis,rabbitmq,ray-tasks,ray-pool,dask]

Systems alternate within one run (A B C A B C ...); each is repeated ``--repeat`` times.
Tables give medians with min-max, the ratio to the ideal (workers x the serial loop's
rate, measured in the same run) and to ttg_ray's Ray backend; start-up is apart. Writes
``<out-dir>/<date>-<host>.md`` and PNG plots next to it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import report
from benchmarks.report import ScalePoint, WorkloadResult
from benchmarks.systems import (
    Fn,
    System,
    Unavailable,
    cpu_work,
    dask_available,
    dask_map,
    plain_ray_tasks,
    pool_map,
    ray_pool,
    serial,
    ttg_ray_backend,
    work,
)

SYSTEMS: dict[str, tuple[str, System]] = {
    "serial": ("serial loop", serial),
    "pool": ("multiprocessing.Pool.map", pool_map),
    "ray": ("ttg_ray ray", ttg_ray_backend("ray")),
    "redis": ("ttg_ray redis", ttg_ray_backend("redis")),
    "rabbitmq": ("ttg_ray rabbitmq", ttg_ray_backend("rabbitmq")),
    "ray-tasks": ("plain Ray tasks of 100", plain_ray_tasks),
    "ray-pool": ("ray.util.multiprocessing.Pool", ray_pool),
    "dask": ("Dask client.map", dask_map),
}
BACKENDS = ("ray", "redis", "rabbitmq")


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    fn: Fn
    n: int
    n_quick: int
    workers: int
    # Systems timed on the first N parameters only (a rate is per parameter): a full
    # serial pass of W2 takes 100 s per round, and Dask's client.map of 1M futures ran
    # for over 25 minutes with a 7 GB driver on the reference machine.
    caps: tuple[tuple[str, int], ...] = ()

    def size(self, system: str, n: int) -> int:
        return min(n, dict(self.caps).get(system, n))


WORKLOADS = (
    Workload(
        "W0",
        "1,000,000 trivial parameters, 2 workers",
        work(0.0),
        1_000_000,
        20_000,
        2,
        (("dask", 20_000),),
    ),
    Workload(
        "W1",
        "10,000 parameters x 1 ms sleep, 3 workers",
        work(1.0),
        10_000,
        300,
        3,
        (("serial", 3_000),),
    ),
    Workload(
        "W2",
        "10,000 parameters x 10 ms sleep, 3 workers",
        work(10.0),
        10_000,
        90,
        3,
        (("serial", 600),),
    ),
    Workload(
        "W3",
        "2,000 parameters x ~5 ms CPU, 2 workers",
        cpu_work(5.0),
        2_000,
        60,
        2,
        (("serial", 600),),
    ),
)
SCALE_SIZES = (100_000, 1_000_000, 10_000_000)
SCALE_SIZES_QUICK = (2_000, 20_000)


def run_workload(w: Workload, n: int, systems: list[str], repeat: int) -> WorkloadResult:
    labels = {key: SYSTEMS[key][0] for key in systems}
    result = WorkloadResult(w.key, w.title.replace(f"{w.n:,}", f"{n:,}"), w.workers, {})
    result.runs = {labels[key]: [] for key in systems}
    skipped: set[str] = set()
    for round_ in range(repeat):
        for key in systems:  # alternate: A B C A B C ...
            if key in skipped:
                continue
            size = w.size(key, n)
            print(f"  {w.key} round {round_ + 1}/{repeat}: {labels[key]} ...", file=sys.stderr)
            try:
                timing = SYSTEMS[key][1](w.fn, size, w.workers)
            except Exception as err:  # a missing library or broker skips the system
                skipped.add(key)
                reason = (
                    str(err) if isinstance(err, Unavailable) else f"{type(err).__name__}: {err}"
                )
                result.notes.append(f"{labels[key]} skipped: {reason}")
                continue
            result.runs[labels[key]].append(timing)
    for key in systems:
        if w.size(key, n) < n:
            result.notes.append(f"{labels[key]} timed on the first {w.size(key, n):,} parameters.")
    _check_same_values(result, n)
    return result


def _check_same_values(result: WorkloadResult, n: int) -> None:
    """Every system computed the same values (sums differ only in the last bits)."""
    sums = {name: runs[0].checksum for name, runs in result.runs.items() if runs and runs[0].n == n}
    first = next(iter(sums.values()), None)
    if not all(math.isclose(s, first, rel_tol=1e-9) for s in sums.values()):
        raise AssertionError(f"{result.key}: systems disagree on the values: {sums}")


DRIVER = """
import json, functools, ttg_ray
from ttg_ray import workloads
fn = functools.partial(workloads.seed_placeholder, work_ms=0)
options = {{"include_dashboard": False}} if {backend!r} == "ray" else {{}}
sweep = ttg_ray.stream(fn, {n}, backend={backend!r}, output={out!r}, workers=2, **options)
for _ in sweep.batches():
    pass
s = sweep.summary
assert s.processed == s.total, s.to_dict()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
peak_mb = int(hwm.split()[1]) / 1024
print(json.dumps({{"peak_mb": peak_mb, "rate": s.params_per_second}}))
"""


def driver_run(backend: str, n: int) -> tuple[float, float]:
    """Peak RSS (MB) of a driver process streaming n trivial parameters to a file, and
    its rate; the file is checked to hold n lines."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.jsonl")
        code = DRIVER.format(backend=backend, n=n, out=out)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=3600
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
        with open(out, "rb") as f:
            lines = sum(1 for _ in f) - 1  # the header line
        if lines != n:
            raise AssertionError(f"{backend}: {lines} lines for {n} parameters")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        return data["peak_mb"], data["rate"]


def run_scale(backends: list[str], sizes: tuple[int, ...], repeat: int) -> tuple[list, list]:
    points = {(b, n): ScalePoint(b, n, [], []) for n in sizes for b in backends}
    notes, skipped = [], set()
    for round_ in range(repeat):
        for n in sizes:
            for backend in backends:
                if backend in skipped:
                    continue
                print(f"  Scale round {round_ + 1}: {backend} {n:,} ...", file=sys.stderr)
                try:
                    peak, rate = driver_run(backend, n)
                except Exception as err:
                    skipped.add(backend)
                    notes.append(f"ttg_ray {backend} skipped in Scale: {err}")
                    continue
                points[(backend, n)].peaks_mb.append(peak)
                points[(backend, n)].rates.append(rate)
    return [p for p in points.values() if p.rates], notes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "--repeat", type=int, default=3, help="rounds of each system (>= 3 for a report)"
    )
    p.add_argument("--scale-repeat", type=int, help="rounds of the Scale sizes (default --repeat)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    p.add_argument("--workloads", default="W0,W1,W2,W3,Scale")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--backends", default=",".join(BACKENDS), help="ttg_ray backends for Scale")
    p.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    known = {w.key for w in WORKLOADS} | {"Scale"}
    for name, given, allowed in (
        ("workload", args.workloads, known),
        ("system", args.systems, set(SYSTEMS)),
        ("backend", args.backends, set(BACKENDS)),
    ):
        unknown = set(given) - allowed
        if unknown:
            p.error(f"unknown {name}(s) {sorted(unknown)}; choose from {sorted(allowed)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    date, host = time.strftime("%Y-%m-%d"), platform.node()
    given = sys.argv[1:] if argv is None else argv
    header = [
        f"## ttg_ray against its peers, {date} on {host}",
        "",
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}. "
        f"Command: `python -m benchmarks.compare {' '.join(given)}`. "
        f"{args.repeat} round(s), systems alternated; medians with min-max.",
        "",
    ]
    systems = list(args.systems)
    if "dask" in systems and not dask_available():
        systems.remove("dask")
        header.append(
            "Dask skipped: dask[distributed] is not installed (pip install 'dask[distributed]').\n"
        )
    results: dict[str, WorkloadResult] = {}
    sections = []
    for w in WORKLOADS:
        if w.key in args.workloads:
            results[w.key] = run_workload(w, w.n_quick if args.quick else w.n, systems, args.repeat)
            sections.append(report.workload_table(results[w.key]))
            print(sections[-1])
    points: list[ScalePoint] = []
    if "Scale" in args.workloads:
        sizes = SCALE_SIZES_QUICK if args.quick else SCALE_SIZES
        points, notes = run_scale(args.backends, sizes, args.scale_repeat or args.repeat)
        sections.append(report.scale_table(points) + "".join(f"\n{n}\n" for n in notes))
        print(sections[-1])
    sections.append(report.targets(results, points))
    print(sections[-1])
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{date}-{host}{'-quick' if args.quick else ''}"
    pngs = [] if args.no_plots else report.plot(results, points, stem)
    images = "".join(f"\n![{p.stem}]({p.name})\n" for p in pngs)
    raw = {
        key: {name: [asdict(t) for t in runs] for name, runs in w.runs.items()}
        for key, w in results.items()
    }
    raw["Scale"] = [asdict(p) for p in points]
    stem.with_name(stem.name + ".json").write_text(json.dumps(raw, indent=1) + "\n")
    md = stem.with_name(stem.name + ".md")
    md.write_text("\n".join(header) + "\n" + "\n".join(sections) + images)
    print(f"wrote {md}" + "".join(f", {p}" for p in pngs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
