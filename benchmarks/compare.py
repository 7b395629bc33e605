"""ttg_ray against its peers, side by side, on the same work (issues 5 and 13).

    python -m benchmarks.compare [--repeat 3] [--quick] [--workloads W0,...,W7,Startup,Scale]
                                 [--systems serial,pool,ppe,ppe-chunks,joblib,ray,...]

Each peer runs as a newcomer would use it (naive) and as its own documentation says to
run many small tasks (best practice), chunked at the size ttg_ray's planner picks for the
same work. Systems alternate within one run (A B C A B C ...); each is repeated
``--repeat`` times. Tables give medians with min-max, the ratio to the ideal (workers x
the serial loop's rate, measured in the same run) and to ttg_ray's Ray backend; start-up
is apart, and compared across systems in the Startup table (time to first result, cold
and warm, and the idle footprint of the whole process tree). Writes
``<out-dir>/<date>-<host>.md``, the raw numbers as JSON and one PNG per family.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import report, startup
from benchmarks.report import ScalePoint, WorkloadResult
from benchmarks.systems import (
    Fn,
    Job,
    System,
    Timing,
    Unavailable,
    WrongValues,
    chunk_size_ttg_picks,
    compute_only,
    cpu_work,
    dask,
    dask_available,
    digest,
    joblib_loky,
    plain_ray_tasks,
    pool_map,
    process_pool,
    ray_pool,
    serial,
    ttg_ray_backend,
    work,
)
from ttg_ray import workloads


@dataclass(frozen=True)
class Peer:
    label: str
    usage: str
    run: System
    same_as_at_chunk_1: str | None = None  # the naive system it equals when ttg_ray picks 1


SYSTEMS: dict[str, Peer] = {
    "serial": Peer("serial loop", "reference: one process", serial),
    "compute-only": Peer(
        "parallel compute only",
        "reference: each worker computes its share in place, nothing sent",
        compute_only,
    ),
    "pool": Peer("multiprocessing.Pool.map", "default chunksize (static: 4 per worker)", pool_map),
    "ppe": Peer("ProcessPoolExecutor.map", "naive: chunksize=1 (default)", process_pool(False)),
    "ppe-chunks": Peer(
        "ProcessPoolExecutor.map, chunked",
        "best: chunksize = ttg_ray's chunk",
        process_pool(True),
        "ppe",
    ),
    "joblib": Peer("joblib (loky)", "best: batch_size='auto' (default)", joblib_loky),
    "ray": Peer("ttg_ray ray", "adaptive chunks", ttg_ray_backend("ray")),
    "redis": Peer("ttg_ray redis", "adaptive chunks", ttg_ray_backend("redis")),
    "rabbitmq": Peer("ttg_ray rabbitmq", "adaptive chunks", ttg_ray_backend("rabbitmq")),
    "ray-tasks": Peer("plain Ray tasks of 100", "naive: 100 parameters a task", plain_ray_tasks()),
    "ray-tasks-chunks": Peer(
        "plain Ray tasks, chunked", "best: ttg_ray's chunk a task", plain_ray_tasks(None)
    ),
    "ray-pool": Peer(
        "ray.util.multiprocessing.Pool", "default chunksize (static: 4 per worker)", ray_pool(False)
    ),
    "ray-pool-chunks": Peer(
        "ray.util Pool, chunked", "best: chunksize = ttg_ray's chunk", ray_pool(True)
    ),
    "dask": Peer("Dask client.map", "naive: one future a parameter", dask("map")),
    "dask-chunks": Peer(
        "Dask client.map over chunks", "best: ttg_ray's chunk a future", dask("chunks"), "dask"
    ),
    "dask-bag": Peer("dask.bag", "best: partitions of ttg_ray's chunk", dask("bag"), "dask"),
}
BACKENDS = ("ray", "redis", "rabbitmq")
DASK = ("dask", "dask-chunks", "dask-bag")


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    fn: Fn
    n: int
    n_quick: int
    workers: int
    # Systems timed on an evenly strided sample of N parameters (a rate is per parameter,
    # and a strided sample keeps a heavy tail's mix): a full serial pass of W2 takes 100 s
    # per round, and Dask's client.map of 1M futures ran for over 25 minutes with a 7 GB
    # driver on the reference machine.
    caps: tuple[tuple[str, int], ...] = ()
    fn_quick: Fn | None = None  # lighter work for --quick, when the real work is long
    title_quick: str | None = None
    skip: tuple[tuple[str, str], ...] = ()  # systems not timed here, and why
    exact: bool = False  # values checked bit for bit against the function's own

    def params(self, system: str, n: int) -> range:
        cap = dict(self.caps).get(system, n)
        return range(0, n, max(1, n // cap)) if cap < n else range(n)


WORKLOADS = (
    Workload(
        "W0",
        "1,000,000 trivial parameters, 2 workers",
        work(0.0),
        1_000_000,
        20_000,
        2,
        (("dask", 20_000), ("ppe", 20_000)),
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
    Workload(
        "W4",
        "10,000 parameters, heavy tail: 95 % x 0.2 ms, the last 5 % x 50 ms (sleep), 3 workers",
        functools.partial(workloads.heavy_tail, n=10_000),
        10_000,
        400,
        3,
        (("serial", 2_000),),
        fn_quick=functools.partial(workloads.heavy_tail, n=400),
    ),
    Workload(
        "W5",
        "2,000 parameters, each returns a numpy array of 10,000 float64, 2 workers",
        functools.partial(workloads.array_value, size=10_000),
        2_000,
        40,
        2,
        exact=True,
    ),
    Workload(
        "W6",
        "200 parameters x 2 s sleep, 8 workers (few long tasks)",
        work(2000.0),
        200,
        16,
        8,
        (("serial", 5),),
        fn_quick=work(100.0),
        title_quick="16 parameters x 0.1 s sleep, 8 workers (few long tasks, made short)",
        skip=(
            (
                "ray-tasks",
                "plain Ray tasks of 100 would run the 200 parameters as 2 tasks on 2 of the "
                "8 workers (200 s a round); not timed",
            ),
        ),
    ),
    Workload(
        "W7",
        "1,000,000 parameters of one line of arithmetic (~0.1 us), 2 workers",
        workloads.arithmetic,
        1_000_000,
        20_000,
        2,
        (("dask", 20_000), ("ppe", 20_000)),
    ),
)
SCALE_SIZES = (100_000, 1_000_000, 10_000_000)
SCALE_SIZES_QUICK = (2_000, 20_000)


def run_workload(w: Workload, quick: bool, systems: list[str], repeat: int) -> WorkloadResult:
    n, fn = (w.n_quick, w.fn_quick or w.fn) if quick else (w.n, w.fn)
    chunk = chunk_size_ttg_picks(fn, range(n), w.workers)
    title = (w.title_quick if quick else None) or w.title.replace(f"{w.n:,}", f"{n:,}")
    result = WorkloadResult(w.key, title, w.workers, {}, chunk_size=chunk)
    keys = _systems_for(w, systems, chunk, result.notes)
    result.runs = {SYSTEMS[key].label: [] for key in keys}
    result.usage = {SYSTEMS[key].label: SYSTEMS[key].usage for key in keys}
    skipped: set[str] = set()
    for round_ in range(repeat):
        for key in keys:  # alternate: A B C A B C ...
            if key in skipped:
                continue
            peer = SYSTEMS[key]
            job = Job(fn, w.params(key, n), w.workers, chunk)
            print(f"  {w.key} round {round_ + 1}/{repeat}: {peer.label} ...", file=sys.stderr)
            try:
                timing = _run_twice(peer, job)
            except Exception as err:  # a missing library or broker skips the system
                skipped.add(key)
                result.notes.append(f"{peer.label} skipped: {_why(err)}")
                continue
            result.runs[peer.label].append(timing)
    for key in keys:
        size = len(w.params(key, n))
        if size < n:
            result.notes.append(
                f"{SYSTEMS[key].label} timed on {size:,} parameters evenly spread over the {n:,}."
            )
    _check_values(result, n, fn if w.exact else None)
    return result


def _run_twice(peer: Peer, job: Job) -> Timing:
    """A second try after a failure that may pass (on a crowded machine a local Ray can
    miss its fixed 30 s start-up wait); a missing library or wrong values fail at once."""
    try:
        return peer.run(job)
    except (Unavailable, WrongValues):
        raise
    except Exception as err:
        print(f"  {peer.label} failed ({_why(err)}); trying once more", file=sys.stderr)
        return peer.run(job)


def _systems_for(w: Workload, systems: list[str], chunk: int, notes: list[str]) -> list[str]:
    """The systems timed on ``w``: a chunked usage that equals its naive one at chunks of
    one is left out, and so is what the workload skips, each with a note."""
    keys = []
    skip = dict(w.skip)
    for key in systems:
        same = SYSTEMS[key].same_as_at_chunk_1
        if key in skip:
            notes.append(f"{SYSTEMS[key].label}: {skip[key]}.")
        elif same and chunk == 1 and same in systems:
            notes.append(f"{SYSTEMS[key].label}: at chunks of 1 the same as {SYSTEMS[same].label}.")
        else:
            keys.append(key)
    return keys


def _why(err: Exception) -> str:
    if isinstance(err, (Unavailable, WrongValues)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _check_values(result: WorkloadResult, n: int, fn: Fn | None) -> None:
    """Every system computed the same values: sums of numbers agree but for the last bits,
    digests of arrays exactly; with ``fn``, also the function's own values, computed here."""
    sums = {name: runs[0].checksum for name, runs in result.runs.items() if runs and runs[0].n == n}
    if fn is not None:
        sums["the function itself"] = digest(fn(i) for i in range(n))
    first = next(iter(sums.values()), None)
    for value in sums.values():
        if isinstance(first, int) and isinstance(value, int):
            same = value == first
        else:
            same = math.isclose(value, first, rel_tol=1e-9)
        if not same:
            raise AssertionError(f"{result.key}: systems disagree on the values: {sums}")
    result.values_checked = sorted(sums)


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
    p.add_argument("--workloads", default=",".join([*(w.key for w in WORKLOADS), *EXTRA]))
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--backends", default=",".join(BACKENDS), help="ttg_ray backends for Scale")
    p.add_argument(
        "--startup-systems",
        default=",".join(startup.SYSTEMS),
        help="systems of the Startup table",
    )
    p.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    for name in ("workloads", "systems", "backends", "startup_systems"):
        setattr(args, name, [x.strip() for x in getattr(args, name).split(",") if x.strip()])
    known = {w.key for w in WORKLOADS} | set(EXTRA)
    for name, given, allowed in (
        ("workload", args.workloads, known),
        ("system", args.systems, set(SYSTEMS)),
        ("backend", args.backends, set(BACKENDS)),
        ("start-up system", args.startup_systems, set(startup.SYSTEMS)),
    ):
        unknown = set(given) - allowed
        if unknown:
            p.error(f"unknown {name}(s) {sorted(unknown)}; choose from {sorted(allowed)}")
    return args


EXTRA = ("Startup", "Scale")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    machine = report.Machine.here()
    given = sys.argv[1:] if argv is None else argv
    header = [
        f"## ttg_ray against its peers, {machine.date} on {machine.host}",
        "",
        f"{machine.cores} cores, Python {machine.python}, {platform.platform()}. "
        f"Command: `python -m benchmarks.compare {' '.join(given)}`. "
        f"{args.repeat} round(s), systems alternated; medians with min-max.",
        "",
    ]
    systems = list(args.systems)
    if not dask_available() and set(DASK) & set(systems):
        systems = [s for s in systems if s not in DASK]
        header.append(
            "Dask skipped: dask[distributed] is not installed (pip install 'dask[distributed]').\n"
        )
    results: dict[str, WorkloadResult] = {}
    sections = []
    for w in WORKLOADS:
        if w.key in args.workloads:
            results[w.key] = run_workload(w, args.quick, systems, args.repeat)
            sections.append(report.workload_table(results[w.key]))
            print(sections[-1])
    rows: list[startup.StartupRow] = []
    if "Startup" in args.workloads:
        rows, notes = startup.measure(args.startup_systems, args.repeat)
        sections.append(report.startup_table(rows) + "".join(f"\n{n}\n" for n in notes))
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
    stem = out_dir / f"{machine.date}-{machine.host}{'-quick' if args.quick else ''}"
    pngs = [] if args.no_plots else report.plot(results, points, rows, stem, machine)
    images = "".join(f"\n![{p.stem}]({p.name})\n" for p in pngs)
    raw: dict = {
        key: {
            "chunk_size": w.chunk_size,
            "runs": {name: [asdict(t) for t in runs] for name, runs in w.runs.items()},
        }
        for key, w in results.items()
    }
    raw["Startup"] = [asdict(r) for r in rows]
    raw["Scale"] = [asdict(p) for p in points]
    stem.with_name(stem.name + ".json").write_text(json.dumps(raw, indent=1) + "\n")
    md = stem.with_name(stem.name + ".md")
    md.write_text("\n".join(header) + "\n" + "\n".join(sections) + images)
    print(f"wrote {md}" + "".join(f", {p}" for p in pngs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
