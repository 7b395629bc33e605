"""The queue worker: runs allowed chunks, refuses everything else, stops gracefully."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support.memory_queue import memory_broker, results
from ttg_ray.backends.queue_worker import QueueWorker, WorkerSettings
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import encode_task
from ttg_ray.core.params import ParamList, ParamRange
from ttg_ray.queues import open_adapter
from ttg_ray.workloads import seed_placeholder

pytestmark = pytest.mark.timeout(60)
PLACEHOLDER = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 0})


@pytest.fixture
def broker(run_id):
    """A private in-memory broker, the worker settings for it, and a driver handle."""
    return memory_broker(run_id)


def run_in_thread(worker: QueueWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_runs_a_chunk_and_acks_it(broker, run_id):
    settings, driver = broker
    driver.publish(encode_task(Chunk(run_id, "c1", 0, 50), ParamRange(100), PLACEHOLDER))
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    (result,) = results(driver, run_id)
    worker.stop()
    thread.join(10)
    assert result.values == [seed_placeholder(i, 0) for i in range(50)]
    assert result.worker == worker.id and not result.failures
    assert driver.depth().waiting == 0 and driver.depth().in_flight == 0


def test_function_off_the_allowlist_is_dead_lettered_not_run(broker, run_id, tmp_path):
    settings, driver = broker
    victim = tmp_path / "pwned"
    ref = FunctionRef.parse("os:system")
    space = ParamList([f"touch {victim}"])
    driver.publish(encode_task(Chunk(run_id, "evil", 0, 1), space, ref))
    driver.publish(encode_task(Chunk(run_id, "ok", 0, 5), ParamRange(5), PLACEHOLDER))
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    got = {r.chunk_id: r for r in results(driver, run_id, 2)}
    worker.stop()
    thread.join(10)
    assert not victim.exists()
    ((body, reason),) = driver.dead_letters()
    assert b"os:system" in body and "not allowed" in reason
    assert [f.type for f in got["evil"].failures] == ["InvalidFunction"]
    assert got["ok"].values == [seed_placeholder(i, 0) for i in range(5)]


SETUP_FNS = "support.setup_fns"
REPORT = FunctionRef.parse(f"{SETUP_FNS}:report")
COUNTED = FunctionRef.parse(f"{SETUP_FNS}:counted_setup")


def test_setup_runs_once_in_the_chunk_process_for_every_chunk_of_the_run(broker, run_id):
    settings, driver = broker
    settings = dataclasses.replace(settings, allow_modules=(SETUP_FNS,))
    for k in range(4):
        chunk = Chunk(run_id, f"c{k}", 5 * k, 5 * k + 5)
        driver.publish(encode_task(chunk, ParamRange(20), REPORT, setup=COUNTED))
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    got = results(driver, run_id, 4)
    worker.stop()
    thread.join(10)
    values = sorted(v for r in got for v in r.values)
    assert [v[0] for v in values] == list(range(20))
    # One process ran every chunk, its setup once: count 1, loaded where it ran.
    assert {(v[1], v[2], v[3]) for v in values} == {(values[0][3], 1, values[0][3])}
    assert values[0][3] != os.getpid()  # in the chunk process, not the worker's own


def test_setup_off_the_allowlist_is_dead_lettered_not_run(broker, run_id):
    settings, driver = broker
    setup = FunctionRef.parse("os:getpid")
    driver.publish(
        encode_task(Chunk(run_id, "evil", 0, 2), ParamRange(2), PLACEHOLDER, setup=setup)
    )
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    (result,) = results(driver, run_id)
    worker.stop()
    thread.join(10)
    ((body, reason),) = driver.dead_letters()
    assert b"os:getpid" in body and "function os:getpid is not allowed" in reason
    assert [f.type for f in result.failures] == ["InvalidFunction"] * 2


def test_malformed_message_is_dead_lettered_and_the_worker_goes_on(broker, run_id):
    settings, driver = broker
    driver.publish(b"\x80\x04not json at all")
    driver.publish(b'{"v": 1, "run_id": "x"}')
    driver.publish(encode_task(Chunk(run_id, "ok", 0, 3), ParamRange(3), PLACEHOLDER))
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    (result,) = results(driver, run_id)
    worker.stop()
    thread.join(10)
    assert result.chunk_id == "ok"
    reasons = [reason for _, reason in driver.dead_letters()]
    assert len(reasons) == 2
    assert "not valid JSON" in reasons[0] and "lacks" in reasons[1]


def test_quarantined_chunk_comes_back_lost(broker, run_id):
    settings, driver = broker
    driver.publish(encode_task(Chunk(run_id, "poison", 0, 4), ParamRange(4), PLACEHOLDER))
    for name in ("dies-1", "dies-2"):  # max_retries=1: two deliveries that never finish
        victim = open_adapter("memory", settings.url, run_id, visibility_timeout_s=0.3)
        while not victim.consume(name, timeout_s=0.2):
            pass
        victim.close()
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    (result,) = results(driver, run_id)
    worker.stop()
    thread.join(10)
    assert result.chunk_id == "poison"
    assert "delivered 3 times" in result.lost
    assert {f.type for f in result.failures} == {"WorkerCrashedError"}
    assert len(driver.dead_letters()) == 1


def test_idle_timeout_ends_the_worker(broker):
    settings, _ = broker
    worker = QueueWorker(WorkerSettings(**{**settings.__dict__, "idle_timeout_s": 0.5}))
    assert worker.run() == 0
    assert worker.chunks_done == 0


def test_stop_finishes_the_current_chunk(broker, run_id):
    settings, driver = broker
    slow = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 100})
    driver.publish(encode_task(Chunk(run_id, "slow", 0, 10), ParamRange(10), slow))
    driver.publish(encode_task(Chunk(run_id, "next", 10, 20), ParamRange(20), slow))
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    while driver.depth().in_flight == 0:
        time.sleep(0.02)
    worker.stop()
    thread.join(20)
    (result,) = results(driver, run_id)
    assert result.chunk_id == "slow" and len(result.values) == 10
    assert driver.depth().waiting == 1  # the next chunk was left for another worker
    assert driver.depth().in_flight == 0


def test_second_stop_hands_the_chunk_back(broker, run_id):
    settings, driver = broker
    slow = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 1000})
    driver.publish(encode_task(Chunk(run_id, "slow", 0, 10), ParamRange(10), slow))
    worker = QueueWorker(settings)
    thread = run_in_thread(worker)
    while driver.depth().in_flight == 0:
        time.sleep(0.02)
    worker.stop()
    worker.stop()
    thread.join(20)
    assert not thread.is_alive()
    assert results(driver, run_id, timeout_s=0.5) == []  # heartbeats aside, nothing
    stats = driver.depth()
    assert stats.in_flight == 0 and stats.waiting + stats.retrying == 1


@pytest.mark.integration
def test_sigterm_to_a_worker_process_loses_nothing(redis_url, run_id):
    driver = open_adapter("redis", redis_url, run_id)
    driver.declare(run_id)
    try:
        slow = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 50})
        driver.publish(encode_task(Chunk(run_id, "c1", 0, 20), ParamRange(20), slow))
        env = {**os.environ, "TTG_REDIS_URL": redis_url}
        cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", "redis", "--run-id", run_id]
        proc = subprocess.Popen(cmd, env=env)
        while driver.depth().in_flight == 0:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        (result,) = results(driver, run_id)
        assert result.values == [seed_placeholder(i, 0) for i in range(20)]
        assert driver.depth().in_flight == 0
    finally:
        driver.purge(run_id)
        driver.close()


@pytest.mark.integration
def test_worker_cli_exits_3_when_the_broker_is_unreachable():
    env = {**os.environ, "TTG_AMQP_URL": "amqp://guest:hunter2@127.0.0.1:1/%2F"}
    cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", "rabbitmq"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    assert "cannot reach RabbitMQ" in proc.stderr and "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_a_worker_whose_driver_dies_exits_by_itself(redis_url, run_id):
    """--parent-pid: a worker left behind by a killed driver does not run forever."""
    import psutil

    driver = open_adapter("redis", redis_url, run_id)
    driver.declare(run_id)
    spawn = (
        "import os, subprocess, sys, time\n"
        "cmd = [sys.executable, '-m', 'ttg_ray.worker', '--backend', 'redis',\n"
        f"       '--run-id', {run_id!r}, '--parent-pid', str(os.getpid())]\n"
        "print(subprocess.Popen(cmd).pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    env = {**os.environ, "TTG_REDIS_URL": redis_url}
    parent = subprocess.Popen([sys.executable, "-c", spawn], env=env, stdout=subprocess.PIPE)
    worker = psutil.Process(int(parent.stdout.readline()))
    try:
        deadline = time.monotonic() + 30
        while driver.depth().consumers < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert driver.depth().consumers == 1, "the worker never started consuming"
        assert worker.is_running()
        parent.kill()  # the driver dies without stopping its worker
        parent.wait()
        gone, _ = psutil.wait_procs([worker], timeout=30)
        assert gone == [worker], "the orphaned worker is still running"
    finally:
        if worker.is_running():
            worker.kill()
        driver.purge(run_id)
        driver.close()
