"""Where the CPU goes during a sweep: the driver, the workers, Ray's own daemons, other
processes on the machine. For W3 (CPU-bound, as many workers as cores) every CPU second
the driver or a daemon takes is one a worker does not get.

    python -m benchmarks.cpu_share [--repeat 5] [--n 2000] [--work-ms 5]

Runs ttg_ray's Ray backend and plain Ray tasks (of 100, and of ttg_ray's chunk size)
alternated, in this process, while a sampler thread reads the CPU times of this process
tree and of the whole machine every 0.1 s; prints one row per run and the medians. The
CPU seconds each kind of process spends per 1,000 parameters are the system's own cost,
and hold on a busy machine too; the ratio to the ideal does not, and "other processes"
(cores kept busy by the rest of the machine) says how far to trust it.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
from collections import defaultdict
from multiprocessing.connection import Connection

import psutil

from benchmarks.systems import (
    Job,
    chunk_size_ttg_picks,
    cpu_work,
    local_ray,
    plain_ray_tasks,
    ttg_ray_backend,
    warm_ray_tasks,
)

KINDS = ("driver", "workers", "watch actor", "ray daemons", "other processes")


def kind(proc: psutil.Process, driver: int) -> str:
    if proc.pid == driver:
        return "driver"
    name = proc.name()
    if name.startswith("ray::_Watch"):
        return "watch actor"  # ttg_ray's heartbeat mailbox, one per Ray job
    if name.startswith("ray::") and "Agent" not in name:
        return "workers"  # ray::IDLE, ray::_chunk_task, ray::run_list
    if any("default_worker.py" in part for part in proc.cmdline()):
        return "workers"  # a worker that has not set its title yet
    return "ray daemons"  # raylet, gcs_server, agents, log monitor


Sample = tuple[float, dict[int, tuple[str, float]], float]  # time, pid -> (kind, CPU s), machine


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def _sample(driver: int, conn: Connection, interval_s: float) -> None:
    """In a process of its own, so that sampling costs the driver nothing: CPU times of
    the driver's process tree (rescanned each second) until told to stop."""
    me = os.getpid()
    procs: dict[int, tuple[psutil.Process, str]] = {}
    samples: list[Sample] = []
    scanned = 0.0
    while not conn.poll(interval_s):
        now = time.perf_counter()
        if now - scanned > 1.0:
            root = psutil.Process(driver)
            for proc in [root, *root.children(recursive=True)]:
                if proc.pid != me:  # (re)classified: a worker renames itself once started
                    with contextlib.suppress(psutil.Error):
                        procs[proc.pid] = (procs.get(proc.pid, (proc,))[0], kind(proc, driver))
            scanned = now
        cpu = {}
        for pid, (proc, what) in list(procs.items()):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                del procs[pid]
                continue
            cpu[pid] = (what, t.user + t.system)
        samples.append((now, cpu, _machine_busy_s()))
    conn.send(samples)


class Sampler:
    """CPU seconds by kind of process, from a sampling process, between two instants."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.samples: list[Sample] = []

    def __enter__(self) -> Sampler:
        context = multiprocessing.get_context("fork")  # before Ray starts: safe to fork
        self._conn, child = context.Pipe()
        self._proc = context.Process(
            target=_sample, args=(os.getpid(), child, self.interval_s), daemon=True
        )
        self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self.samples = self._conn.recv()
        self._proc.join()

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds by kind from the sample nearest t0 to the one nearest t1; a process
        born in between counts from zero."""
        _, a, busy_a = min(self.samples, key=lambda s: abs(s[0] - t0))
        _, b, busy_b = min(self.samples, key=lambda s: abs(s[0] - t1))
        out = dict.fromkeys(KINDS[:-1], 0.0)
        for pid, (what, cpu) in b.items():
            out[what] += cpu - a.get(pid, (what, 0.0))[1]
        out["other processes"] = busy_b - busy_a - sum(out.values())
        return out


SYSTEMS = {
    "ttg_ray ray": ttg_ray_backend("ray"),
    "plain Ray tasks of 100": plain_ray_tasks(100),
    "plain Ray tasks, chunked": plain_ray_tasks(None),
}


WARM = {
    "ttg_ray ray": ttg_ray_backend("ray"),  # finds the Ray already up and leaves it up
    "plain Ray tasks of 100": warm_ray_tasks(100),
    "plain Ray tasks, chunked": warm_ray_tasks(None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_share", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--work-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--warm",
        action="store_true",
        help="one Ray for the whole run, started before the first sweep (no start-up overlap)",
    )
    args = parser.parse_args(argv)
    systems = WARM if args.warm else SYSTEMS
    fn = cpu_work(args.work_ms)
    chunk = chunk_size_ttg_picks(fn, range(args.n), args.workers)
    job = Job(fn, range(args.n), args.workers, chunk)
    started = time.perf_counter()
    for i in range(100):
        fn(i)
    ideal = args.workers * 100 / (time.perf_counter() - started)
    cores = psutil.cpu_count()
    print(f"chunk {job.chunk_size}, ideal ~{ideal:,.0f} params/s, {cores} cores")
    head = KINDS[:-1]
    print(
        "| system | x ideal | sweep s | "
        + " | ".join(f"{k} CPU s / 1k params" for k in head)
        + " | other processes (cores busy) |"
    )
    print("|---|---:|---:|" + "---:|" * (len(head) + 1))
    rows: dict[str, list[tuple[float, dict[str, float]]]] = defaultdict(list)
    if args.warm:
        # Forking the sampler after Ray is up is safe: the child only reads /proc.
        _with_retries(lambda _job: local_ray(args.workers), job)
    for _ in range(args.repeat):
        for name, system in systems.items():
            with Sampler() as sampler:
                timing = _with_retries(system, job)
                time.sleep(0.25)  # one more sample after the end
            cpu = sampler.between(timing.ended_at - timing.sweep_s, timing.ended_at)
            cost = {k: 1000 * v / job.n for k, v in cpu.items()}
            # the rest of the machine, as cores kept busy on average during the sweep
            cost["other processes"] = cpu["other processes"] / timing.sweep_s
            cost["sweep s"] = timing.sweep_s
            rows[name].append((timing.rate / ideal, cost))
            print(_row(name, timing.rate / ideal, cost), flush=True)
    print("\nMedians:")
    for name, runs in rows.items():
        med = {k: statistics.median(r[1][k] for r in runs) for k in (*KINDS, "sweep s")}
        print(_row(name, statistics.median(r[0] for r in runs), med))
    return 0


def _with_retries(system, job: Job, attempts: int = 3):
    """On a crowded machine a local Ray can miss its 30 s start-up deadline: try again."""
    for attempt in range(attempts):
        try:
            return system(job)
        except Exception as err:
            if attempt == attempts - 1:
                raise
            print(f"  retrying after: {type(err).__name__}: {err}", file=sys.stderr)
    raise AssertionError("unreachable")


def _row(name: str, ratio: float, cost: dict[str, float]) -> str:
    cells = " | ".join(f"{cost[k]:.3f}" for k in KINDS)
    return f"| {name} | {ratio:.2f} | {cost['sweep s']:.1f} | {cells} |"


if __name__ == "__main__":
    sys.exit(main())
