"""The queue monitor: snapshot numbers, throughput and ETA, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from ttg_ray.cli.monitor import Rates, Sampler, render
from ttg_ray.queues import QueueStats, open_adapter

pytestmark = pytest.mark.timeout(60)


def test_render_shows_every_figure():
    url = f"memory://{uuid.uuid4().hex}"
    queue = open_adapter("memory", url, "run1")
    for i in range(4):
        queue.publish(b"%d" % i)
    queue.consume("worker-a", timeout_s=1)
    view = render("title", queue.depth(), Rates(2.0, 1.5))
    assert "waiting      3" in view
    assert "in flight    1  (worker-a: 1)" in view
    assert "2.0 chunks/s" in view and "ETA          2 s" in view


def test_sampler_rate_and_eta_from_acked_counts():
    sampler = Sampler(smoothing=1.0)
    first = sampler.update(QueueStats(waiting=10, in_flight=2, acked=0), now=100.0)
    assert first.chunks_per_s is None and first.eta_s is None
    second = sampler.update(QueueStats(waiting=6, in_flight=2, acked=4), now=102.0)
    assert second.chunks_per_s == 2.0 and second.eta_s == 4.0
    done = sampler.update(QueueStats(waiting=0, in_flight=0, acked=12), now=104.0)
    assert done.eta_s == 0.0


def test_sampler_without_acked_counts_uses_the_drain():
    sampler = Sampler(smoothing=1.0)
    sampler.update(QueueStats(waiting=10, in_flight=None), now=0.0)
    rates = sampler.update(QueueStats(waiting=7, in_flight=None), now=1.0)
    assert rates.chunks_per_s == 3.0


def monitor(*args: str, url_env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **(url_env or {})}
    cmd = [sys.executable, "-m", "ttg_ray.monitor", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, **kw)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_once_json_counts_a_live_namespace(request, backend, run_id):
    url = request.getfixturevalue("redis_url" if backend == "redis" else "amqp_url")
    queue = open_adapter(backend, url, run_id)
    queue.declare(run_id)
    try:
        for i in range(3):
            queue.publish(b"task %d" % i)
        held = []
        while not held:
            held = queue.consume("w-test", timeout_s=0.2)
        env = {"TTG_REDIS_URL": url, "TTG_AMQP_URL": url}
        proc = monitor("--backend", backend, "--run-id", run_id, "--once", "--json", url_env=env)
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(proc.stdout)
        assert stats["waiting"] == 2 and stats["dead_letters"] == 0
        if backend == "redis":
            assert stats["in_flight_by_consumer"] == {"w-test": 1}
        else:
            assert stats["in_flight"] is None and stats["consumers"] == 1
        text = monitor("--backend", backend, "--run-id", run_id, "--once", url_env=env)
        assert f"run {run_id}" in text.stdout and "waiting      2" in text.stdout
        queue.ack(held[0])
    finally:
        queue.purge(run_id)
        queue.close()


@pytest.mark.integration
def test_live_view_prints_throughput(redis_url, run_id):
    queue = open_adapter("redis", redis_url, run_id)
    queue.declare(run_id)
    cmd = [sys.executable, "-m", "ttg_ray.monitor", "--backend", "redis"]
    cmd += ["--run-id", run_id, "--interval-s", "0.2"]
    env = {**os.environ, "TTG_REDIS_URL": redis_url}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for i in range(20):
            queue.publish(b"%d" % i)
        views = 0
        for line in proc.stdout:
            if line.startswith("  throughput"):
                views += 1
                for d in queue.consume("w", timeout_s=0.2):
                    queue.ack(d)
                if "chunks/s" in line:
                    break
        assert views >= 2
        assert "chunks/s" in line
    finally:
        proc.terminate()
        proc.wait(10)
        queue.purge(run_id)
        queue.close()


def test_unreachable_broker_exits_3_with_a_masked_url():
    proc = monitor("--backend", "redis", "--redis-url", "redis://:s3cret@127.0.0.1:1/0", "--once")
    assert proc.returncode == 3
    assert "cannot reach Redis" in proc.stderr and "s3cret" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_render_lists_running_chunks_and_marks_a_stalled_one():
    beats = [
        {"chunk_id": "c1", "worker": "h w1", "index": 12, "param": 12, "chunk_s": 2, "param_s": 0},
        {
            "chunk_id": "c7",
            "worker": "h w2",
            "index": 77,
            "param": 77,
            "chunk_s": 45,
            "param_s": 44,
        },
    ]
    text = render("t", QueueStats(running=beats), Rates())
    lines = [line for line in text.splitlines() if "running" in line]
    assert "STALLED c7 45 s, on parameter 77 (77) for 44 s, h w2" in lines[0]
    assert "c1 2 s, on parameter 12 (12) for 0 s, h w1" in lines[1]


def test_snapshot_reads_worker_heartbeats_where_the_broker_keeps_them():
    from ttg_ray.cli.monitor import snapshot
    from ttg_ray.core.messages import encode_beat

    queue = open_adapter("memory", f"memory://{uuid.uuid4().hex}", "run")
    beat = {"chunk_id": "c7", "worker": "w", "index": 1, "param": 1, "chunk_s": 1, "param_s": 1}
    queue.note_running("w", encode_beat(beat))
    assert snapshot(queue, "run").running == [beat]
    queue.note_running("w", None)
    assert snapshot(queue, "run").running == []
