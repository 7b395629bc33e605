"""The chaos scenarios: each runs one sweep of ``chaos_fn.counted`` while injecting
one fault, and says which parameters were designed to fail."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

import ttg_ray
from benchmarks import faults
from benchmarks.chaos_fn import counted

QUEUES = ("redis", "rabbitmq")


class ScenarioTimeout(Exception):
    pass


@dataclass
class Ctx:
    """One scenario on one backend: sizes, a scratch directory, the broker."""

    backend: str
    n: int
    work_ms: float
    workers: int
    chunk_size: int
    tmp: Path
    timeout_s: float
    kill_every_s: float
    broker_url: str | None = None

    def calls_dir(self, name: str = "calls") -> Path:
        """Where the function logs its calls; a fault-free warm-up run uses another."""
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fn(self, calls: str = "calls", **faults_: Any) -> Callable[[Any], Any]:
        return functools.partial(
            counted, count_dir=str(self.calls_dir(calls)), work_ms=self.work_ms, **faults_
        )

    def broker_options(self, url: str | None = None) -> dict[str, Any]:
        url = url or self.broker_url
        if self.backend == "redis":
            return {"redis_url": url}
        if self.backend == "rabbitmq":
            return {"amqp_url": url}
        return {"include_dashboard": False}

    def broker_flags(self, url: str | None = None) -> list[str]:
        url = url or self.broker_url
        if self.backend == "redis":
            return ["--redis-url", url] if url else []
        if self.backend == "rabbitmq":
            return ["--amqp-url", url] if url else []
        return ["--no-dashboard"]


@dataclass
class Outcome:
    output: Path
    wall_s: float
    sweep_s: float  # what recovery_s compares: the sweep alone, start-up excluded
    designed_to_fail: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # The fault-free run recovery_s is measured against, when not the in-process one.
    baseline_s: float | None = None


def new_run_id() -> str:
    return f"chaos-{uuid.uuid4().hex[:10]}"


def sweep(ctx: Ctx, fn, *, progress=None, url: str | None = None, **kwargs: Any) -> Outcome:
    """Run ``fn`` over 0..n-1 to ``ctx.tmp/out.jsonl``; abort after ``ctx.timeout_s``."""
    out = ctx.tmp / "out.jsonl"
    deadline = time.monotonic() + ctx.timeout_s

    def watch(done: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise ScenarioTimeout(f"{done:,} of {total:,} done after {ctx.timeout_s:.0f} s")
        if progress is not None:
            progress(done, total)

    options = {"workers": ctx.workers, "chunk_size": ctx.chunk_size}
    options.update(ctx.broker_options(url), **kwargs)
    started = time.monotonic()
    result = ttg_ray.stream(
        fn, ctx.n, backend=ctx.backend, output=out, progress=watch, on_error="record", **options
    )
    for _ in result.batches():
        pass
    return Outcome(out, time.monotonic() - started, result.summary.duration_s)


def baseline(ctx: Ctx) -> Outcome:
    return sweep(ctx, ctx.fn())


def kill_worker(ctx: Ctx) -> Outcome:
    run_id = new_run_id()
    victims: list[int | None] = []
    at = faults.At(0.3, lambda: victims.append(faults.kill_one(ctx.backend, run_id)))
    outcome = sweep(ctx, ctx.fn(), progress=at, run_id=run_id)
    if not victims or victims[0] is None:
        outcome.problems.append("no worker was killed")
    return outcome


def kill_random(ctx: Ctx) -> Outcome:
    run_id = new_run_id()
    with faults.Every(ctx.kill_every_s, lambda: faults.kill_one(ctx.backend, run_id, 1.0)) as e:
        outcome = sweep(ctx, ctx.fn(), run_id=run_id)
    killed = [pid for pid in e.results if pid]
    if len(killed) < 2:
        outcome.problems.append(f"only {len(killed)} worker(s) killed; make the run longer")
    return outcome


def remove_node(ctx: Ctx) -> Outcome:
    """Ray only: a head with no CPUs and three one-CPU nodes; one node goes at 30%."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(3)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="ERROR")
        fault_free = sweep(ctx, ctx.fn("calls-baseline"), spread=True)
        fault_free.output.rename(ctx.tmp / "baseline.jsonl")
        removed: list[float] = []
        at = faults.At(0.3, lambda: (cluster.remove_node(nodes[0]), removed.append(1)))
        outcome = sweep(ctx, ctx.fn(), progress=at, spread=True)
        outcome.baseline_s = fault_free.sweep_s
        if not removed:
            outcome.problems.append("the node was never removed")
        return outcome
    finally:
        ray.shutdown()
        cluster.shutdown()


def always_raises(ctx: Ctx) -> Outcome:
    bad = ctx.n // 3 + 7
    outcome = sweep(ctx, ctx.fn(fail_params=[bad]))
    outcome.designed_to_fail = [bad]
    return outcome


def flaky(ctx: Ctx) -> Outcome:
    state = ctx.tmp / "state"
    state.mkdir(exist_ok=True)
    return sweep(ctx, ctx.fn(flaky_params=[ctx.n // 2 + 3], state_dir=str(state)))


def poison_chunk(ctx: Ctx) -> Outcome:
    """A parameter that kills its worker every time: its chunk is quarantined (split
    down to that one parameter) after max_retries=1 crashes per attempt."""
    poison = ctx.n // 4 + 1
    outcome = sweep(ctx, ctx.fn(crash_params=[poison]), max_retries=1)
    outcome.designed_to_fail = [poison]
    return outcome


def bad_messages(ctx: Ctx) -> Outcome:
    """Queues only: a message that is not JSON and one naming os:system arrive in the
    run's task queue at 30%; both must be dead-lettered and nothing else disturbed."""
    from ttg_ray.core.chunks import Chunk
    from ttg_ray.core.functions import FunctionRef
    from ttg_ray.core.messages import encode_task
    from ttg_ray.core.params import ParamList
    from ttg_ray.queues import open_adapter

    run_id, victim = new_run_id(), ctx.tmp / "pwned"
    queue = open_adapter(ctx.backend, ctx.broker_url, run_id)
    evil = encode_task(
        Chunk(run_id, "evil", 0, 1), ParamList([f"touch {victim}"]), FunctionRef("os", "system")
    )
    seen: list[str] = []
    last_look = [0.0]

    def inject() -> None:
        queue.publish(b"{this is not a task message")
        queue.publish(evil)

    at = faults.At(0.3, inject)

    def progress(done: int, total: int) -> None:
        at(done, total)
        if at.fired_at and len(seen) < 2 and time.monotonic() - last_look[0] > 0.2:
            last_look[0] = time.monotonic()
            seen[:] = [reason for _, reason in queue.dead_letters()]

    try:
        outcome = sweep(ctx, ctx.fn(), progress=progress, run_id=run_id)
    finally:
        queue.close()
    if victim.exists():
        outcome.problems.append("os:system ran")
    if len(seen) < 2:
        outcome.problems.append(f"dead letters seen during the run: {seen}")
    return outcome


def _cli(ctx: Ctx, out: Path, *extra: str, calls: str = "calls") -> list[str]:
    kwargs = {"work_ms": ctx.work_ms, "count_dir": str(ctx.calls_dir(calls))}
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", ctx.backend]
    cmd += ["--params", str(ctx.n), "--function", "benchmarks.chaos_fn:counted"]
    cmd += ["--kwargs", json.dumps(kwargs), "--workers", str(ctx.workers)]
    cmd += ["--chunk-size", str(ctx.chunk_size), "--output", str(out)]
    cmd += ["--no-progress", "--log-level", "WARNING", *ctx.broker_flags(), *extra]
    return cmd


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def driver_killed_resume(ctx: Ctx) -> Outcome:
    """The CLI driver is SIGKILLed when half the results are in its file, then rerun
    with --resume. Compared with a fault-free CLI run, wall to wall (start-ups in)."""
    return _stop_driver_then_resume(ctx, signal.SIGKILL)


def driver_ctrl_c_resume(ctx: Ctx) -> Outcome:
    """Ctrl-C at a terminal (SIGINT to the driver's whole process group) when half the
    results are in its file: it must exit 130 naming --resume and leave no process
    behind; then rerun with --resume."""
    return _stop_driver_then_resume(ctx, signal.SIGINT)


def _stop_driver_then_resume(ctx: Ctx, sig: signal.Signals) -> Outcome:
    plain = ctx.tmp / "baseline.jsonl"
    started = time.monotonic()
    cmd = _cli(ctx, plain, calls="calls-baseline")
    subprocess.run(cmd, check=True, capture_output=True, timeout=ctx.timeout_s)
    baseline_s = time.monotonic() - started
    out = ctx.tmp / "out.jsonl"
    outcome = Outcome(out, 0.0, 0.0)
    started = time.monotonic()
    proc = subprocess.Popen(
        _cli(ctx, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    while _lines(out) < ctx.n // 2 and proc.poll() is None:
        if time.monotonic() - started > ctx.timeout_s:
            break
        time.sleep(0.05)
    children = faults.descendants(proc.pid)
    run_ids = {
        arg.split()[0]
        for c in children
        for arg in " ".join(faults._cmdline(c)).split("--run-id ")[1:]
    }
    if proc.poll() is not None:
        outcome.problems.append(f"the driver ended (code {proc.returncode}) before 50%")
    if sig == signal.SIGKILL:
        os.kill(proc.pid, sig)
        proc.wait()
        faults.kill_tree_leftovers(children)
        _purge(ctx, run_ids)
    else:
        os.killpg(proc.pid, sig)
        outcome.problems += _check_interrupted(proc, children)
    resumed = subprocess.run(
        _cli(ctx, out, "--resume"), capture_output=True, text=True, timeout=ctx.timeout_s
    )
    outcome.wall_s = outcome.sweep_s = time.monotonic() - started
    if resumed.returncode != 0:
        outcome.problems.append(f"--resume exited {resumed.returncode}: {resumed.stderr[-300:]}")
    outcome.baseline_s = baseline_s
    return outcome


def _check_interrupted(proc: subprocess.Popen, children: list[psutil.Process]) -> list[str]:
    """What an interrupted driver did wrong: its exit code and message, and the
    processes it left running (killed here so the resume runs alone)."""
    problems = []
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        problems.append("the driver was still running 60 s after Ctrl-C")
    text = stderr.decode(errors="replace")
    if proc.returncode != 130 or "--resume" not in text:
        got = f"exit {proc.returncode}"
        problems.append(f"Ctrl-C: {got}, wanted 130 naming --resume: {text[-300:]}")
    _, alive = psutil.wait_procs(children, timeout=10)
    if alive:
        problems.append(f"Ctrl-C left {len(alive)} process(es) running: {alive[0].name()}")
        faults.kill_tree_leftovers(alive, grace_s=0)
    return problems


def _purge(ctx: Ctx, run_ids: set[str]) -> None:
    """Delete the queues a killed driver could not clean up (only its own run's)."""
    if ctx.backend not in QUEUES:
        return
    from ttg_ray.queues import open_adapter

    for run_id in run_ids:
        with open_adapter(ctx.backend, ctx.broker_url, run_id) as queue:
            queue.purge(run_id)


def broker_restart(ctx: Ctx) -> Outcome:
    """Queues only: a broker of our own, with persistence on, restarted at 30%."""
    server_dir = ctx.tmp / "broker"
    server_dir.mkdir()
    server = faults.OwnRedis(server_dir) if ctx.backend == "redis" else faults.OwnRabbit()
    try:
        server.start()
        at = faults.At(0.3, server.restart)
        outcome = sweep(ctx, ctx.fn(), progress=at, url=server.url)
        if at.fired_at is None:
            outcome.problems.append("the broker was never restarted")
        return outcome
    finally:
        server.close()


def param_hangs(ctx: Ctx) -> Outcome:
    """A parameter that sleeps forever, with timeout_s=2: it fails (TimeoutError) after
    its retries, and its chunk's other parameters complete."""
    bad = ctx.n // 3 + 7
    outcome = sweep(ctx, ctx.fn(hang_forever=[bad]), timeout_s=2)
    outcome.designed_to_fail = [bad]
    return outcome


def _available_mb() -> float:
    return psutil.virtual_memory().available / 2**20


def param_runaway_memory(ctx: Ctx) -> Outcome:
    """A parameter that allocates without bound, with max_memory_mb=300: it fails
    (MemoryError) alone, and the machine's free memory never drops by 1 GB."""
    bad = ctx.n // 3 + 7
    # Measured from the first result on, so the backend's start-up (a local Ray's own
    # processes) is not counted against the limit.
    start: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:
        if not start:
            start.append((_available_mb(), len(sampler.results)))

    with faults.Every(0.02, _available_mb) as sampler:
        outcome = sweep(ctx, ctx.fn(grow=[bad]), max_memory_mb=300, progress=progress)
    before, first = start[0] if start else (_available_mb(), 0)
    lowest = min([before, *sampler.results[first:]])
    print(
        f"free memory: {before:.0f} MB at the first result, lowest {lowest:.0f} MB", file=sys.stderr
    )
    if lowest < before - 1024:
        outcome.problems.append(f"free memory fell from {before:.0f} to {lowest:.0f} MB")
    outcome.designed_to_fail = [bad]
    return outcome


def worker_sigstop(ctx: Ctx) -> Outcome:
    """One busy worker is stopped (SIGSTOP, with its chunk process) at 30%, timeout_s=2:
    its chunk is taken over; nothing is lost or duplicated."""
    run_id = new_run_id()
    stopped: list[int] = []
    at = faults.At(0.3, lambda: stopped.extend(faults.stop_one(ctx.backend, run_id)))
    try:
        outcome = sweep(ctx, ctx.fn(), progress=at, run_id=run_id, timeout_s=2)
    finally:
        faults.kill_pids(stopped)
    if not stopped:
        outcome.problems.append("no worker was stopped")
    return outcome


def giant_chunk(ctx: Ctx) -> Outcome:
    """Queues only: a crafted message with an allowed function and 10^11 parameters
    arrives at 30%; it must be dead-lettered within 1 s, the workers' memory unchanged."""
    from ttg_ray.core.chunks import Chunk
    from ttg_ray.core.functions import FunctionRef
    from ttg_ray.core.messages import encode_task
    from ttg_ray.core.params import ParamRange
    from ttg_ray.queues import open_adapter

    run_id = new_run_id()
    queue = open_adapter(ctx.backend, ctx.broker_url, run_id)
    seen: dict[str, float] = {}

    def inject() -> None:
        rss_before = faults.rss_mb(faults.worker_pids(ctx.backend, run_id))
        fn = FunctionRef.parse("benchmarks.chaos_fn:counted", {"work_ms": ctx.work_ms})
        started = time.monotonic()
        queue.publish(encode_task(Chunk(run_id, "giant", 0, 10**11), ParamRange(10**11), fn))
        while not queue.dead_letters() and time.monotonic() - started < 30:
            time.sleep(0.01)
        seen["dead_lettered_s"] = time.monotonic() - started
        time.sleep(0.5)
        seen["rss_growth_mb"] = faults.rss_mb(faults.worker_pids(ctx.backend, run_id)) - rss_before

    at = faults.At(0.3, inject)
    try:
        outcome = sweep(ctx, ctx.fn(), progress=at, run_id=run_id)
    finally:
        queue.close()
    if seen.get("dead_lettered_s", 99.0) > 1.0:
        outcome.problems.append(f"dead-lettered after {seen.get('dead_lettered_s')} s")
    if seen.get("rss_growth_mb", 99.0) > 20:
        outcome.problems.append(f"workers grew by {seen.get('rss_growth_mb')} MB")
    print(f"giant chunk: {seen}", file=sys.stderr)
    return outcome


# name -> (scenario, backends it applies to)
SCENARIOS: dict[str, tuple[Callable[[Ctx], Outcome], tuple[str, ...]]] = {
    "kill-worker-30pct": (kill_worker, ("ray", *QUEUES)),
    "kill-random-workers": (kill_random, ("ray", *QUEUES)),
    "remove-node-30pct": (remove_node, ("ray",)),
    "param-always-raises": (always_raises, ("ray", *QUEUES)),
    "param-flaky": (flaky, ("ray", *QUEUES)),
    "poison-chunk": (poison_chunk, ("ray", *QUEUES)),
    "bad-messages": (bad_messages, QUEUES),
    "driver-killed-resume": (driver_killed_resume, ("ray", *QUEUES)),
    "driver-ctrl-c-resume": (driver_ctrl_c_resume, ("ray", *QUEUES)),
    "broker-restart": (broker_restart, QUEUES),
    "param-hangs": (param_hangs, ("ray", *QUEUES)),
    "param-runaway-memory": (param_runaway_memory, ("ray", *QUEUES)),
    "worker-sigstop": (worker_sigstop, ("ray", *QUEUES)),
    "giant-chunk": (giant_chunk, QUEUES),
}
