"""The Redis and RabbitMQ backends end to end, through compute() and the CLI."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys

import pytest

import ttg_ray
import ttg_ray.errors
from ttg_ray.core.params import Grid, ParamList
from ttg_ray.engine.store import read_store
from ttg_ray.queues import open_adapter
from ttg_ray.workloads import cpu_bound, faulty, seed_placeholder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
BROKERS = ["redis", "rabbitmq"]


def broker(request, backend: str) -> dict:
    if backend == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {"amqp_url": request.getfixturevalue("amqp_url")}


def checksum(values) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


@pytest.mark.parametrize("backend", BROKERS)
def test_values_equal_the_serial_loop(request, backend, run_id):
    fn = functools.partial(cpu_bound, work_ms=0.05)
    result = ttg_ray.compute(
        fn, 3000, backend=backend, workers=2, run_id=run_id, **broker(request, backend)
    )
    assert result.values == [fn(i) for i in range(3000)]
    assert result.summary.failed == 0 and result.summary.backend == backend


@pytest.mark.parametrize("backend", BROKERS)
def test_grid_and_list_spaces(request, backend, run_id):
    fn = functools.partial(seed_placeholder, work_ms=0)
    for i, space in enumerate(
        [Grid({"x": range(20), "y": ["a", "b", "c"]}), ParamList([f"p{k}" for k in range(500)])]
    ):
        result = ttg_ray.compute(
            fn,
            space,
            backend=backend,
            workers=2,
            chunk_size=37,
            run_id=f"{run_id}-{i}",
            **broker(request, backend),
        )
        assert result.values == [fn(space[k]) for k in range(len(space))]


def test_same_checksum_on_ray_redis_and_rabbitmq(request, run_id):
    fn = functools.partial(cpu_bound, work_ms=0.02)
    n = 2000
    sums = {}
    for backend in ("redis", "rabbitmq"):
        result = ttg_ray.compute(
            fn,
            n,
            backend=backend,
            workers=2,
            run_id=f"{run_id}-{backend}",
            **broker(request, backend),
        )
        sums[backend] = checksum(result.values)
    ray_result = ttg_ray.compute(fn, n, backend="ray", workers=2, include_dashboard=False)
    sums["ray"] = checksum(ray_result.values)
    assert len(set(sums.values())) == 1, sums


@pytest.mark.parametrize("backend", BROKERS)
def test_a_raising_parameter_is_failed_with_its_traceback(request, backend, run_id):
    fn = functools.partial(faulty, fail_params=[5, 77])
    result = ttg_ray.compute(
        fn,
        100,
        backend=backend,
        workers=2,
        max_retries=1,
        run_id=run_id,
        on_error="record",
        **broker(request, backend),
    )
    assert sorted(f.index for f in result.failures) == [5, 77]
    failure = result.failures[0]
    assert failure.type == "ValueError" and "designed to fail" in failure.message
    assert "Traceback" in failure.traceback and failure.attempts == 2
    assert [v for i, v in enumerate(result.values) if i not in (5, 77)] == [
        seed_placeholder(i, 0) for i in range(100) if i not in (5, 77)
    ]


@pytest.mark.parametrize("backend", BROKERS)
def test_publishing_is_streamed_not_all_at_once(request, backend, run_id):
    kw = broker(request, backend)
    queue = open_adapter(backend, next(iter(kw.values())), run_id)
    depths = []

    def sample(done, total):
        stats = queue.depth()
        depths.append(stats.waiting + (stats.in_flight or 0))

    fn = functools.partial(seed_placeholder, work_ms=0.5)
    ttg_ray.compute(
        fn, 400, backend=backend, workers=2, chunk_size=4, run_id=run_id, progress=sample, **kw
    )
    queue.close()
    # The runner keeps 2 x capacity chunks out; a worker acks its task just after it
    # publishes the result, so each of the 2 workers may hold one more for that instant.
    # Published all at once, the 100 chunks would all be there.
    assert depths and max(depths) <= 2 * 2 + 2


@pytest.mark.parametrize("backend", BROKERS)
def test_run_leaves_no_keys_or_queues_behind(request, backend, run_id):
    kw = broker(request, backend)
    fn = functools.partial(seed_placeholder, work_ms=0)
    ttg_ray.compute(fn, 200, backend=backend, workers=1, run_id=run_id, **kw)
    url = next(iter(kw.values()))
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(url)
        assert list(client.scan_iter(match=f"ttg:*{run_id}*")) == []
        client.close()
    else:
        queue = open_adapter(backend, url, run_id)
        # a passive declare of a deleted queue is refused: the count comes back empty
        stats = queue.depth(run_id)
        assert (stats.waiting, stats.consumers, stats.results_waiting) == (0, 0, 0)
        queue.close()


@pytest.mark.parametrize("backend", BROKERS)
def test_external_workers(request, backend, run_id):
    kw = broker(request, backend)
    url = next(iter(kw.values()))
    env = {**os.environ, "TTG_REDIS_URL": url, "TTG_AMQP_URL": url}
    cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", backend, "--idle-timeout-s", "5"]
    worker = subprocess.Popen(cmd, env=env)
    try:
        fn = functools.partial(seed_placeholder, work_ms=0)
        result = ttg_ray.compute(
            fn, 500, backend=backend, workers=1, external_workers=True, run_id=run_id, **kw
        )
        assert result.values == [fn(i) for i in range(500)]
        assert set(result.summary.chunks_per_node) and result.summary.failed == 0
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.parametrize("backend", BROKERS)
def test_cli_run_writes_the_store(request, backend, tmp_path):
    kw = broker(request, backend)
    flag = "--redis-url" if backend == "redis" else "--amqp-url"
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, flag, next(iter(kw.values()))]
    cmd += ["--params", "1000", "--work-ms", "0", "--workers", "2", "--output", str(out)]
    cmd += ["--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = sorted(read_store(out), key=lambda r: r["index"])
    assert [r["value"] for r in records] == [seed_placeholder(i, 0) for i in range(1000)]


@pytest.mark.parametrize(
    "backend,flag,url,needle",
    [
        ("redis", "--redis-url", "redis://:pa55word@127.0.0.1:1/0", "cannot reach Redis"),
        (
            "rabbitmq",
            "--amqp-url",
            "amqp://guest:pa55word@127.0.0.1:1/%2F",
            "cannot reach RabbitMQ",
        ),
    ],
)
def test_cli_unreachable_broker_exit_3(backend, flag, url, needle):
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, flag, url, "--params", "10"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert needle in proc.stderr and "pa55word" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_wrong_rabbitmq_credentials_exit_3(amqp_url):
    bad = amqp_url.replace("guest:guest", "guest:not-the-password")
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", "rabbitmq", "--amqp-url", bad]
    proc = subprocess.run([*cmd, "--params", "10"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "credentials" in proc.stderr and "not-the-password" not in proc.stderr


def set_at_five(p):
    return {p} if p == 5 else seed_placeholder(p, 0)


def huge_at_three(p):
    return "x" * (17 * 1024 * 1024) if p == 3 else seed_placeholder(p, 0)


@pytest.mark.parametrize("backend", BROKERS)
def test_a_value_that_is_not_json_fails_only_its_parameter(request, backend, run_id):
    result = ttg_ray.compute(
        set_at_five, 20, backend=backend, workers=1, chunk_size=10, run_id=run_id,
        on_error="record", **broker(request, backend),
    )  # fmt: skip
    assert [(f.index, f.type) for f in result.failures] == [(5, "Unencodable")]
    assert "value is a set" in result.failures[0].message
    assert result.values == [None if i == 5 else seed_placeholder(i, 0) for i in range(20)]


@pytest.mark.parametrize("backend", BROKERS)
def test_a_result_over_the_message_limit_is_split_down_to_its_parameter(request, backend, run_id):
    result = ttg_ray.compute(
        huge_at_three, 8, backend=backend, workers=1, chunk_size=8, max_retries=0,
        run_id=run_id, on_error="record", **broker(request, backend),
    )  # fmt: skip
    assert [(f.index, f.type) for f in result.failures] == [(3, "ResultTooLarge")]
    assert [v for i, v in enumerate(result.values) if i != 3] == [
        seed_placeholder(i, 0) for i in range(8) if i != 3
    ]


def test_parameters_that_are_not_json_are_refused_up_front(redis_url, run_id):
    from decimal import Decimal

    with pytest.raises(ttg_ray.errors.InvalidSpace, match="cannot travel in a queue message"):
        ttg_ray.compute(
            seed_placeholder, [Decimal("1.5")], backend="redis", workers=1, run_id=run_id,
            redis_url=redis_url,
        )  # fmt: skip


def exits_at_three(p):
    if p == 3:
        raise SystemExit(4)
    return seed_placeholder(p, 0)


@pytest.mark.parametrize("backend", BROKERS)
def test_system_exit_in_the_function_fails_only_its_parameter(request, backend, run_id):
    result = ttg_ray.compute(
        exits_at_three, 10, backend=backend, workers=1, chunk_size=5, max_retries=1,
        run_id=run_id, on_error="record", **broker(request, backend),
    )  # fmt: skip
    assert [(f.index, f.type, f.attempts) for f in result.failures] == [(3, "SystemExit", 2)]
    assert result.values == [None if i == 3 else seed_placeholder(i, 0) for i in range(10)]


@pytest.mark.parametrize("code", [2, 3])
def test_a_local_worker_exiting_with_a_usage_or_service_code_aborts_the_run(redis_url, code):
    # Exit codes 2 and 3 mean a worker can never work (bad arguments, no broker):
    # respawning it would loop forever, so the run stops with the reason.
    from ttg_ray.backends.queue import QueueOptions, RedisBackend
    from ttg_ray.errors import BackendUnavailable

    backend = RedisBackend(QueueOptions(workers=1, redis_url=redis_url))
    dead = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    dead.wait()
    backend.procs = [dead]
    with pytest.raises(BackendUnavailable) as err:
        backend._replace_dead_workers()
    assert str(err.value) == f"a redis worker exited with code {code}; see its log above"
    assert backend.procs == []


@pytest.mark.parametrize("backend", BROKERS)
def test_stopping_a_stream_early_stops_its_workers_and_cleans_up(request, backend, run_id):
    import psutil

    kw = broker(request, backend)
    fn = functools.partial(seed_placeholder, work_ms=1)
    sweep = ttg_ray.stream(fn, 5000, backend=backend, workers=2, run_id=run_id, **kw)
    pairs = iter(sweep)
    index, param, value = next(pairs)
    assert value == seed_placeholder(param, 0) and param == index
    workers = [
        p for p in psutil.Process().children() if run_id in " ".join(p.cmdline())
    ]  # fmt: skip
    assert len(workers) == 2
    pairs.close()  # the caller stops early: the backend closes
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in workers)
    assert sweep.summary.processed < 5000
    url = next(iter(kw.values()))
    queue = open_adapter(backend, url, run_id)
    try:
        stats = queue.depth(run_id)
        assert (stats.waiting, stats.consumers, stats.results_waiting) == (0, 0, 0)
    finally:
        queue.purge(run_id)
        queue.close()
