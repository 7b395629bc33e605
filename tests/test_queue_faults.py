"""Real faults on real brokers: killed workers, a chunk that kills every worker, a
message naming os:system, and a Redis restart in the middle of a run."""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import missing_service

import ttg_ray
from tests.support.brokers import free_port
from tests.support.tools import find_tool
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import encode_task
from ttg_ray.core.params import ParamList
from ttg_ray.engine.store import read_store
from ttg_ray.errors import BackendUnavailable
from ttg_ray.queues import open_adapter
from ttg_ray.workloads import faulty, seed_placeholder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
BROKERS = ["redis", "rabbitmq"]


def broker_kwargs(request, backend: str) -> dict:
    if backend == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {"amqp_url": request.getfixturevalue("amqp_url")}


def assert_exactly_once(path, n: int, fn) -> None:
    counts = collections.Counter(record["index"] for record in read_store(path))
    assert set(counts) == set(range(n))
    assert set(counts.values()) == {1}
    assert all(r["value"] == fn(r["index"]) for r in read_store(path))


class KillWhenBusy:
    """A progress callback that SIGKILLs the worker running ``hang_at`` (the parameter
    writes its pid, then sleeps), recording how far the run was at that moment."""

    def __init__(self, marker: Path):
        self.marker = marker
        self.pid: int | None = None
        self.parent: int | None = None  # the queue worker whose chunk process it is
        self.done_at_kill: int | None = None
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        if self.pid is None and self.marker.exists() and self.marker.read_text():
            self.pid = int(self.marker.read_text())
            self.parent = psutil.Process(self.pid).ppid()
            os.kill(self.pid, signal.SIGKILL)
            self.done_at_kill = done


@pytest.mark.parametrize("backend", BROKERS)
def test_sigkill_of_a_busy_worker_mid_run_is_redelivered_and_replaced(
    request, backend, run_id, tmp_path, caplog
):
    n, hang_at = 3000, 1200
    fn = functools.partial(
        faulty, work_ms=2.0, hang_params=[hang_at], state_dir=str(tmp_path), hang_s=120
    )
    killer = KillWhenBusy(tmp_path / f"hang-{hang_at}.pid")
    caplog.set_level(logging.WARNING, logger="ttg_ray.backends.queue")
    out = tmp_path / "out.jsonl"
    result = ttg_ray.compute(
        fn, n, backend=backend, workers=3, chunk_size=50, run_id=run_id, output=out,
        progress=killer, **broker_kwargs(request, backend),
    )  # fmt: skip
    assert killer.pid is not None, "the busy worker was never killed"
    assert 0 < killer.done_at_kill < n, "the kill did not land inside the run"
    assert _is_gone(killer.pid)
    # The killed worker never reported index 1200: its value proves the redelivery.
    assert result.values == [seed_placeholder(i, 0) for i in range(n)]
    assert result.summary.failed == 0
    # The parameter runs in the worker's chunk process: killed, it takes its worker down
    # (exit 70), so the broker redelivers the chunk, and a new worker is started.
    assert f"worker pid {killer.parent} exited (70); starting another" in caplog.messages
    assert_exactly_once(out, n, lambda i: seed_placeholder(i, 0))


def _is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("backend", BROKERS)
def test_chunk_that_kills_every_worker_is_quarantined(request, backend, run_id):
    n, poison = 64, 17
    fn = functools.partial(faulty, crash_params=[poison])
    result = ttg_ray.compute(
        fn,
        n,
        backend=backend,
        workers=2,
        max_retries=1,
        chunk_size=8,
        run_id=run_id,
        on_error="record",
        **broker_kwargs(request, backend),
    )
    assert [f.index for f in result.failures] == [poison]
    assert result.failures[0].type == "WorkerCrashedError"
    assert "quarantined" in result.failures[0].message
    expected = [None if i == poison else seed_placeholder(i, 0) for i in range(n)]
    assert result.values == expected


@pytest.mark.parametrize("backend", BROKERS)
def test_cli_exit_code_1_names_the_poison_chunk(request, backend, tmp_path):
    kw = broker_kwargs(request, backend)
    url_flag = ["--redis-url", kw["redis_url"]] if "redis_url" in kw else []
    url_flag = url_flag or ["--amqp-url", kw["amqp_url"]]
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, *url_flag]
    cmd += ["--params", "40", "--function", "ttg_ray.workloads:faulty", "--chunk-size", "4"]
    cmd += ["--kwargs", '{"crash_params": [9], "fail_params": [30]}', "--max-retries", "1"]
    cmd += ["--workers", "2", "--no-progress", "--log-level", "WARNING"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "index 9" in proc.stdout and "WorkerCrashedError" in proc.stdout
    assert "chunk c" in proc.stdout and "quarantined" in proc.stdout
    assert "index 30" in proc.stdout and "designed to fail" in proc.stdout


@pytest.mark.parametrize("backend", BROKERS)
def test_os_system_message_is_dead_lettered_not_run(request, backend, run_id, tmp_path):
    url = next(iter(broker_kwargs(request, backend).values()))
    victim = tmp_path / "pwned"
    queue = open_adapter(backend, url, run_id)
    queue.declare(run_id)
    try:
        space = ParamList([f"touch {victim}"])
        queue.publish(encode_task(Chunk(run_id, "evil", 0, 1), space, FunctionRef("os", "system")))
        env = {**os.environ, "TTG_REDIS_URL": url, "TTG_AMQP_URL": url}
        cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", backend]
        cmd += ["--run-id", run_id, "--idle-timeout-s", "2", "--allow-module", "json"]
        assert subprocess.run(cmd, env=env, timeout=60).returncode == 0
        assert not victim.exists()
        ((body, reason),) = queue.dead_letters()
        assert b'"fn":"os:system"' in body
        assert "os:system is not allowed" in reason
    finally:
        queue.purge(run_id)
        queue.close()


class OwnRedis:
    """A redis-server of the test's own, with AOF, on a free port, in a temp dir."""

    def __init__(self, workdir):
        self.port, self.dir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--appendonly", "yes"]
        cmd += ["--dir", str(self.dir), "--save", "", "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis flushes its AOF and exits
            self.proc.wait(30)


def sweep_through_a_restart(backend: str, server, run_id: str, tmp_path, pause_s: float) -> None:
    """A sweep on a broker of the test's own (persistence on), restarted from another
    thread at 30 % while the driver keeps polling for results: driver and workers
    reconnect, and every index arrives exactly once. Progress is recorded when the
    broker went down, to prove the outage hit the middle of the run."""
    n, fn = 4000, functools.partial(seed_placeholder, work_ms=4.0)
    seen = [0]
    due, down_at = threading.Event(), []

    def watch(done: int, total: int) -> None:
        seen[0] = done
        if done >= 0.3 * total:
            due.set()

    def restart() -> None:
        due.wait()
        server.stop()
        down_at.append(seen[0])
        time.sleep(pause_s)
        server.start()

    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    out = tmp_path / "out.jsonl"
    url = {"redis_url" if backend == "redis" else "amqp_url": server.url}
    result = ttg_ray.compute(
        fn, n, backend=backend, workers=2, chunk_size=50, run_id=run_id, output=out,
        progress=watch, **url,
    )  # fmt: skip
    restarter.join(timeout=120)
    assert len(down_at) == 1 and 0 < down_at[0] < n, down_at
    assert result.values == [seed_placeholder(i, 0) for i in range(n)]
    assert result.summary.failed == 0
    assert_exactly_once(out, n, lambda i: seed_placeholder(i, 0))


def require_binary(name: str) -> None:
    if find_tool(name) is None:
        missing_service(f"the {name} binary")


def test_redis_restart_mid_run_loses_nothing(tmp_path, run_id):
    require_binary("redis-server")
    server = OwnRedis(tmp_path)
    server.start()
    try:
        sweep_through_a_restart("redis", server, run_id, tmp_path, pause_s=1.0)
    finally:
        server.stop()


class OwnRabbit:
    """A RabbitMQ node of the test's own (own name, port and data dir), so restarting
    it disturbs nobody. rabbitmq-server drops to the rabbitmq user: the dir is 0777."""

    def __init__(self):
        # not under pytest's tmp_path: the rabbitmq user cannot traverse its 0700 parents
        self.dir = Path(tempfile.mkdtemp(prefix="ttg-rabbit-"))
        self.dir.chmod(0o777)
        (self.dir / "plugins").write_text("[].")
        (self.dir / "rabbitmq.conf").write_text("")
        for name in ("plugins", "rabbitmq.conf"):
            (self.dir / name).chmod(0o666)
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": f"ttg{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        (self.dir / "pid").unlink(missing_ok=True)
        boot_log = self.dir / "boot.log"
        with boot_log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["rabbitmq-server"],
                env={**self.env, "RABBITMQ_DIST_PORT": str(free_port())},
                stdout=out,
                start_new_session=True,
            )
        while True:
            try:
                open_adapter("rabbitmq", self.url, connect_timeout_s=2).close()
                return
            except Exception:
                tail = boot_log.read_text(errors="replace")[-2000:]
                assert self.proc.poll() is None, f"rabbitmq-server exited during start:\n{tail}"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        beam = int((self.dir / "pid").read_text().strip())
        os.kill(beam, signal.SIGTERM)  # the node itself: a clean, persistent shutdown
        self.proc.wait(60)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_rabbitmq_restart_mid_run_loses_nothing(tmp_path, run_id):
    require_binary("rabbitmq-server")
    server = OwnRabbit()
    server.start()
    try:
        sweep_through_a_restart("rabbitmq", server, run_id, tmp_path, pause_s=0.0)
    finally:
        server.remove()


def test_rabbitmq_results_pushed_to_the_driver_survive_a_restart(run_id):
    """Pins the bug fixed in 46ce516 (results auto-acked on arrival): results the broker
    has already pushed towards the driver, but the driver has not read yet, are lost
    with auto-ack when the broker restarts; with acks on hand-over they come back."""
    require_binary("rabbitmq-server")
    server = OwnRabbit()
    server.start()
    n, blob = 400, "x" * 20_000  # 8 MB in flight: more than the sockets buffer
    try:
        driver = open_adapter("rabbitmq", server.url, run_id)
        assert driver.consume_results(run_id, timeout_s=0.0) == []  # the consumer is on
        with open_adapter("rabbitmq", server.url, run_id) as worker:
            for i in range(n):
                worker.publish_result(run_id, f"{i}:{blob}".encode())
        time.sleep(1.0)  # the broker pushes them to the driver, which does not read
        server.stop()
        server.start()
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(set(got)) < n and time.monotonic() < deadline:
            with contextlib.suppress(BackendUnavailable):
                got += driver.consume_results(run_id, timeout_s=0.5, count=1000)
        received = {int(body.split(b":", 1)[0]) for body in got}
        assert received == set(range(n)), f"{n - len(received)} of {n} results lost"
        driver.purge(run_id)
        driver.close()
    finally:
        server.remove()
