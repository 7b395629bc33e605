"""Where the CPU goes during a sweep: the driver, the workers, Ray's own daemons, other
processes on the machine. For W3 (CPU-bound, as many workers as cores) every CPU second
the driver or a daemon takes is one a worker does not get.

    python -m benchmarks.cpu_share [--repeat 5] [--n 2000] [--work-ms 5]

Runs ttg_ray's Ray backend and plain Ray tasks (of 100, and of ttg_ray's chunk size)
alternated, in this process, while a sampler thread reads the CPU times of this process
tree and of the whole machine every 0.1 s; prints one row per run and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil

from benchmarks.systems import (
    Job,
    chunk_size_ttg_picks,
    cpu_work,
    plain_ray_tasks,
    ttg_ray_backend,
)

KINDS = ("driver", "workers", "ray daemons", "other processes")


def kind(proc: psutil.Process, me: int) -> str:
    if proc.pid == me:
        return "driver"
    name = proc.name()
    if name.startswith("ray::") and "Agent" not in name:
        return "workers"  # ray::IDLE, ray::_chunk_task, ray::_run_list
    return "ray daemons"  # raylet, gcs_server, agents, log monitor


@dataclass
class Sampler:
    """CPU seconds by kind, sampled every ``interval_s`` until stopped."""

    interval_s: float = 0.1
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _read(self) -> dict[str, float]:
        me = os.getpid()
        totals: dict[str, float] = defaultdict(float)
        for proc in [psutil.Process(me), *psutil.Process(me).children(recursive=True)]:
            try:
                t = proc.cpu_times()
                totals[kind(proc, me)] += t.user + t.system
            except psutil.Error:
                continue
        machine = psutil.cpu_times()
        busy = machine.user + machine.system + machine.nice + getattr(machine, "irq", 0)
        totals["machine"] = busy + getattr(machine, "softirq", 0)
        return totals

    def run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._read()))
            time.sleep(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds by kind from the sample nearest t0 to the one nearest t1."""
        a = min(self.samples, key=lambda s: abs(s[0] - t0))[1]
        b = min(self.samples, key=lambda s: abs(s[0] - t1))[1]
        out = {k: b.get(k, 0.0) - a.get(k, 0.0) for k in ("driver", "workers", "ray daemons")}
        out["other processes"] = b["machine"] - a["machine"] - sum(out.values())
        return out


SYSTEMS = {
    "ttg_ray ray": ttg_ray_backend("ray"),
    "plain Ray tasks of 100": plain_ray_tasks(100),
    "plain Ray tasks, chunked": plain_ray_tasks(None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_share", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--work-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    fn = cpu_work(args.work_ms)
    chunk = chunk_size_ttg_picks(fn, range(args.n), args.workers)
    job = Job(fn, range(args.n), args.workers, chunk)
    started = time.perf_counter()
    for i in range(100):
        fn(i)
    ideal = args.workers * 100 / (time.perf_counter() - started)
    cores = psutil.cpu_count()
    print(f"chunk {job.chunk_size}, ideal ~{ideal:,.0f} params/s, {cores} cores")
    print("| system | x ideal | " + " | ".join(f"{k} (cores)" for k in KINDS) + " |")
    print("|---|---:|" + "---:|" * len(KINDS))
    rows: dict[str, list[tuple[float, dict[str, float]]]] = defaultdict(list)
    for _ in range(args.repeat):
        for name, system in SYSTEMS.items():
            with Sampler() as sampler:
                timing = system(job)
                end = time.perf_counter()
                time.sleep(0.25)  # one more sample after the end
            cpu = sampler.between(end - timing.sweep_s, end)
            # CPU seconds per second of sweep = cores kept busy, on average
            cores_busy = {k: v / timing.sweep_s for k, v in cpu.items()}
            rows[name].append((timing.rate / ideal, cores_busy))
            cells = " | ".join(f"{cores_busy[k]:.2f}" for k in KINDS)
            print(f"| {name} | {timing.rate / ideal:.2f} | {cells} |", flush=True)
    print("\nMedians:")
    for name, runs in rows.items():
        med = {k: statistics.median(r[1][k] for r in runs) for k in KINDS}
        ratio = statistics.median(r[0] for r in runs)
        print(f"| {name} | {ratio:.2f} | " + " | ".join(f"{med[k]:.2f}" for k in KINDS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
