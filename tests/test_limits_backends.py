"""Time and memory limits on the real backends (a local Ray, Redis, RabbitMQ): a hung
parameter, a runaway one, a worker stopped with SIGSTOP and a crafted giant chunk. Each
checks the result file index by index: nothing lost, nothing duplicated."""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from support.limits_fns import grows, hangs

import ttg_ray
from benchmarks.faults import At, worker_pids
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import encode_task
from ttg_ray.core.params import ParamRange
from ttg_ray.engine.store import read_store
from ttg_ray.queues import open_adapter
from ttg_ray.workloads import seed_placeholder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
BACKENDS = ["ray", "redis", "rabbitmq"]
BROKERS = ["redis", "rabbitmq"]


def options(request, backend: str) -> dict:
    if backend == "ray":  # a local Ray of the sweep's own, as a user's first call gets
        return {"backend": "ray", "include_dashboard": False}
    if backend == "redis":
        return {"backend": "redis", "redis_url": request.getfixturevalue("redis_url")}
    return {"backend": "rabbitmq", "amqp_url": request.getfixturevalue("amqp_url")}


def broker_flags(request, backend: str) -> list[str]:
    if backend == "redis":
        return ["--redis-url", request.getfixturevalue("redis_url")]
    if backend == "rabbitmq":
        return ["--amqp-url", request.getfixturevalue("amqp_url")]
    return ["--no-dashboard"]


def check_file(path, n: int, failed: set[int]) -> None:
    """Every index exactly once; the ``failed`` ones failed, the rest hold their value."""
    records = list(read_store(path))
    counts = collections.Counter(r["index"] for r in records)
    assert set(counts) == set(range(n)) and set(counts.values()) == {1}
    assert {r["index"] for r in records if "error" in r} == failed
    for r in records:
        if r["index"] not in failed:
            assert r["value"] == seed_placeholder(r["index"], 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_times_out_a_hung_parameter_and_names_it(request, backend, tmp_path):
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, "--params", "300"]
    cmd += ["--function", "support.limits_fns:hangs", "--kwargs", '{"at": [77], "work_ms": 1}']
    cmd += ["--timeout-s", "2", "--max-retries", "1", "--workers", "2", "--no-progress"]
    cmd += ["--output", str(out), *broker_flags(request, backend)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "index 77 param 77: TimeoutError: parameter ran past timeout_s=2 s" in proc.stdout
    check_file(out, 300, {77})


class FreeMemory:
    """Samples the machine's available memory in a thread; ``lowest_mb`` is the least seen."""

    def __init__(self):
        self.started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.lowest_mb = min(self.lowest_mb, psutil.virtual_memory().available / 2**20)

    def start(self) -> None:
        self.before_mb = self.lowest_mb = psutil.virtual_memory().available / 2**20
        self.started = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.started:
            self._thread.join()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_runaway_parameter_fails_alone_at_the_memory_limit(request, backend, tmp_path):
    out = tmp_path / "out.jsonl"
    fn = functools.partial(grows, at=[150], work_ms=1)
    kwargs = options(request, backend)
    memory = FreeMemory()

    def from_the_first_result(done: int, total: int) -> None:
        if not memory.started:  # the backend's start-up is not the function's doing
            memory.start()

    try:
        result = ttg_ray.compute(
            fn,
            400,
            workers=2,
            chunk_size=40,
            max_memory_mb=300,
            max_retries=1,
            on_error="record",
            output=out,
            progress=from_the_first_result,
            **kwargs,
        )
    finally:
        memory.stop()
    assert [(f.index, f.type) for f in result.failures] == [(150, "MemoryError")]
    assert "max_memory_mb=300" in result.failures[0].message
    check_file(out, 400, {150})
    assert memory.lowest_mb > memory.before_mb - 1024


def _stop_one_worker(backend: str, run_id: str, stopped: list[int]) -> None:
    """SIGSTOP one busy worker: a Ray worker running a chunk, or a queue worker with the
    child process running its chunk."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = worker_pids(backend, None if backend == "ray" else run_id)
        if pids:
            victim = psutil.Process(pids[0])
            group = [victim, *victim.children(recursive=True)]
            for proc in group:
                proc.send_signal(signal.SIGSTOP)
            stopped.extend(p.pid for p in group)
            return
        time.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_stopped_with_sigstop_has_its_chunk_taken_over(request, backend, run_id, tmp_path):
    out = tmp_path / "out.jsonl"
    stopped: list[int] = []
    at = At(0.3, lambda: _stop_one_worker(backend, run_id, stopped))
    try:
        sweep = ttg_ray.stream(
            functools.partial(seed_placeholder, work_ms=2),
            2000,
            workers=3,
            chunk_size=40,
            timeout_s=2,
            output=out,
            progress=at,
            run_id=run_id,
            **options(request, backend),
        )
        for _ in sweep.batches():
            pass
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert stopped, "no worker was stopped"
    assert sweep.ok
    check_file(out, 2000, set())


@pytest.mark.parametrize("backend", BROKERS)
def test_a_crafted_giant_chunk_is_dead_lettered_and_costs_no_memory(request, backend, run_id):
    url = request.getfixturevalue("redis_url" if backend == "redis" else "amqp_url")
    queue = open_adapter(backend, url, run_id)
    queue.declare(run_id)
    env = {**os.environ, "TTG_REDIS_URL" if backend == "redis" else "TTG_AMQP_URL": url}
    cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", backend, "--run-id", run_id]
    proc = subprocess.Popen(cmd, env=env)
    try:
        while queue.depth().consumers < 1:
            assert proc.poll() is None
            time.sleep(0.05)
        rss_before = psutil.Process(proc.pid).memory_info().rss
        fn = FunctionRef.parse("ttg_ray.workloads:seed_placeholder")
        queue.publish(encode_task(Chunk(run_id, "evil", 0, 10**11), ParamRange(10**11), fn))
        reasons: list[str] = []
        while not reasons:
            reasons = [reason for _, reason in queue.dead_letters()]
            time.sleep(0.05)
        assert "100,000,000,000 parameters" in reasons[0]
        assert proc.poll() is None  # the worker goes on
        grew = psutil.Process(proc.pid).memory_info().rss - rss_before
        assert grew < 20 * 2**20
        assert json.loads(queue.dead_letters()[0][0])["chunk_id"] == "evil"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        queue.purge(run_id)
        queue.close()


def test_the_functions_misbehave_only_where_told():
    assert hangs(3, at=[7], work_ms=0) == grows(3, at=[7], work_ms=0) == seed_placeholder(3, 0)
