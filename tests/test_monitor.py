"""The queue monitor: snapshot numbers, throughput and ETA, and the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest
from conftest import missing_service
from rich.console import Console

from ttg_ray.cli.monitor import Rates, Sampler, as_json, figures, render
from ttg_ray.queues import QueueStats, open_adapter
from ttg_ray.queues import rabbitmq_management as management
from ttg_ray.queues.rabbitmq_management import (
    ManagementAPI,
    ManagementUnavailable,
    QueueInfo,
    in_flight_by_consumer,
)

pytestmark = pytest.mark.timeout(60)


def test_render_shows_every_figure():
    url = f"memory://{uuid.uuid4().hex}"
    queue = open_adapter("memory", url, "run1")
    for i in range(4):
        queue.publish(b"%d" % i)
    queue.consume("worker-a", timeout_s=1)
    view = shown(render("title", queue.depth(), Rates(2.0, 1.5)))
    assert has_row(view, "waiting", "3")
    assert has_row(view, "in flight", r"1  \(worker-a: 1\)")
    assert has_row(view, "throughput", "2.0 chunks/s") and has_row(view, "ETA", "2 s")


def shown(view) -> str:
    """What the Rich view prints, as plain text."""
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(view)
    return console.file.getvalue()


def has_row(text: str, name: str, value: str) -> bool:
    """A line of the view reads ``name value`` (the column width is Rich's business)."""
    return re.search(rf"^\s*{name}\s+{value}\s*$", text, re.MULTILINE) is not None


def test_json_line_has_the_counts_the_rate_and_the_time():
    line = json.loads(as_json(QueueStats(waiting=4, in_flight=2), Rates(1.5, 4.0), 123.0))
    assert (line["waiting"], line["in_flight"], line["chunks_per_s"], line["eta_s"]) == (
        4,
        2,
        1.5,
        4.0,
    )
    assert line["time"] == 123.0


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


def management_or_skip(amqp_url: str) -> ManagementAPI:
    """The management API of the test broker; missing, it skips locally and fails in CI
    (.ci/run enables the plugin)."""
    api = ManagementAPI.from_amqp_url(amqp_url)
    try:
        api.unacked_by_channel()
    except ManagementUnavailable as err:
        missing_service(f"the RabbitMQ management API ({err})")
    return api


def monitor_json_until(args: list[str], env: dict, done, timeout_s: float = 20.0) -> dict:
    """Run ``--once --json`` until ``done(stats)``: the management API's figures lag the
    queue by its statistics interval (5 s by default)."""
    deadline = time.monotonic() + timeout_s
    while True:
        proc = monitor(*args, "--once", "--json", url_env=env)
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(proc.stdout)
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_once_json_counts_in_flight_per_consumer(request, backend, run_id):
    url = request.getfixturevalue("redis_url" if backend == "redis" else "amqp_url")
    if backend == "rabbitmq":
        management_or_skip(url)
    queue = open_adapter(backend, url, run_id)
    queue.declare(run_id)
    try:
        for i in range(3):
            queue.publish(b"task %d" % i)
        held = []
        while not held:
            held = queue.consume("w-test", timeout_s=0.2)
        env = {"TTG_REDIS_URL": url, "TTG_AMQP_URL": url}
        args = ["--backend", backend, "--run-id", run_id]
        stats = monitor_json_until(args, env, lambda s: s["in_flight"] == 1)
        assert stats["waiting"] == 2 and stats["dead_letters"] == 0
        assert stats["in_flight"] == 1 and stats["in_flight_by_consumer"] == {"w-test": 1}
        assert stats["consumers"] == 1
        text = monitor(*args, "--once", url_env=env).stdout
        assert f"run {run_id}" in text and has_row(text, "waiting", "2")
        assert has_row(text, "in flight", r"1  \(w-test: 1\)")
        queue.ack(held[0])
    finally:
        queue.purge(run_id)
        queue.close()


@pytest.mark.integration
def test_rabbitmq_without_the_management_api_falls_back_to_amqp(amqp_url, run_id, monkeypatch):
    monkeypatch.setattr(management, "HTTP_PORT", 1)  # nothing listens there
    queue = open_adapter("rabbitmq", amqp_url, run_id)
    queue.declare(run_id)
    try:
        queue.publish(b"task")
        held = []
        while not held:
            held = queue.consume("w-test", timeout_s=0.2)
        stats = queue.depth(run_id)
        assert stats.in_flight is None and stats.waiting == 0 and stats.consumers == 1
        assert "n/a" in shown(render("t", stats, Rates()))
        queue.ack(held[0])
    finally:
        queue.purge(run_id)
        queue.close()


def test_management_api_is_found_from_the_amqp_url():
    api = ManagementAPI.from_amqp_url("amqp://u:p%40ss@broker:5672/%2F")
    assert (api.base_url, api.user, api.password, api.vhost) == (
        "http://broker:15672/api",
        "u",
        "p@ss",
        "/",
    )
    tls = ManagementAPI.from_amqp_url("amqps://broker/sweeps")
    assert (tls.base_url, tls.vhost, tls.user) == ("https://broker:15671/api", "sweeps", "guest")


def test_in_flight_per_consumer_is_its_channel_count():
    info = QueueInfo(3, 2, 2, 10, {"w-a": "conn-1 (1)", "w-b": "conn-2 (1)"})
    counts = {"conn-1 (1)": 1, "conn-2 (1)": 1, "driver (1)": 7}
    assert in_flight_by_consumer(info, counts) == {"w-a": 1, "w-b": 1}


def test_unreachable_management_api_says_how_to_enable_it():
    api = ManagementAPI("http://127.0.0.1:1/api", "guest", "s3cret", "/", timeout_s=1)
    with pytest.raises(ManagementUnavailable, match="rabbitmq-plugins enable"):
        api.queue("ttg.tasks")


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


@pytest.mark.integration
def test_json_without_once_prints_one_object_per_refresh(redis_url, run_id):
    cmd = [sys.executable, "-m", "ttg_ray.monitor", "--backend", "redis", "--json"]
    cmd += ["--run-id", run_id, "--interval-s", "0.2"]
    env = {**os.environ, "TTG_REDIS_URL": redis_url}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(10)
        open_adapter("redis", redis_url, run_id).purge(run_id)
    assert all({"waiting", "in_flight", "chunks_per_s", "eta_s", "time"} <= set(x) for x in lines)
    assert lines[0]["time"] < lines[1]["time"] < lines[2]["time"]


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
    rows = figures(QueueStats(running=beats), Rates())
    lines = [f"{name} {value}" for name, value in rows if name == "running"]
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
