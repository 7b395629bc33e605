"""Fault injection for the chaos runs: find and kill this process's own workers, fire
an action at a given progress, and brokers of our own (Redis, RabbitMQ) to restart.

Everything killed here is a descendant of this process, so a chaos run never touches
another user's Ray cluster, queue worker or broker.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def descendants(root: int | None = None) -> list[psutil.Process]:
    try:
        return psutil.Process(root or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def worker_pids(backend: str, run_id: str | None = None) -> list[int]:
    """Pids of this process's workers that are running (Ray: a ttg chunk task) now."""
    marker = "ray::ttg " if backend == "ray" else "ttg_ray.worker"
    pids = []
    for proc in descendants():
        line = _cmdline(proc)
        if marker in line and (run_id is None or run_id in line):
            pids.append(proc.pid)
    return pids


def kill_one(backend: str, run_id: str | None = None, wait_s: float = 10.0) -> int | None:
    """SIGKILL one busy worker, waiting up to ``wait_s`` for one to be busy."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        pids = worker_pids(backend, run_id)
        if pids:
            pid = random.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return pid
        time.sleep(0.05)
    return None


def stop_one(backend: str, run_id: str | None = None, wait_s: float = 10.0) -> list[int]:
    """SIGSTOP one busy worker and its children (a queue worker's chunk process); the
    pids stopped, for kill_pids() afterwards."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for pid in top_level(worker_pids(backend, None if backend == "ray" else run_id)):
            try:
                victim = psutil.Process(pid)
                group = [victim, *victim.children(recursive=True)]
                for proc in group:
                    proc.send_signal(signal.SIGSTOP)
            except psutil.NoSuchProcess:
                continue
            return [p.pid for p in group]
        time.sleep(0.05)
    return []


def top_level(pids: list[int]) -> list[int]:
    """``pids`` without those whose parent is among them (a queue worker's chunk
    process has the worker's command line)."""
    parents = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            parents[pid] = psutil.Process(pid).ppid()
    return [pid for pid, parent in parents.items() if parent not in parents]


def kill_pids(pids: list[int]) -> None:
    """SIGKILL what is left of ``pids`` (processes this run stopped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def rss_mb(pids: list[int]) -> float:
    """The resident memory of ``pids`` and their children, in MiB."""
    total = 0
    for pid in top_level(pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += p.memory_info().rss
    return total / 2**20


def kill_tree_leftovers(procs: list[psutil.Process], grace_s: float = 5.0) -> None:
    """After a driver was killed, give its children ``grace_s`` to notice and exit,
    then SIGKILL those still alive."""
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


class At:
    """A progress callback that calls ``action`` once, when ``fraction`` is done."""

    def __init__(self, fraction: float, action: Callable[[], None]):
        self.fraction, self.action = fraction, action
        self.fired_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.fired_at is None and done >= self.fraction * total:
            self.fired_at = time.monotonic()
            self.action()


class Every:
    """A thread that calls ``action`` every ``interval_s`` until stopped."""

    def __init__(self, interval_s: float, action: Callable[[], object]):
        self.interval_s, self.action = interval_s, action
        self.results: list[object] = []
        self.first_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.first_at = self.first_at or time.monotonic()
            self.results.append(self.action())

    def __enter__(self) -> Every:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A port nothing listens on, above Ray's worker ports (10002-19999) and below the
    kernel's ephemeral range. A port from bind(0) is ephemeral: any outgoing connection
    (Ray opens many) may take it between this pick and the server's bind, or while a
    server of ours restarts on it (seen in CI: RabbitMQ's boot failed, exit 0)."""
    low = max(_ephemeral_low(), 20_100)
    for _ in range(200):
        port = random.randrange(20_000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in 20000-{low - 1} after 200 tries")


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {timeout_s} s") from None
            time.sleep(0.1)


class OwnRedis:
    """A redis-server of our own with the append-only file on, in ``workdir``."""

    def __init__(self, workdir: Path):
        self.port, self.dir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--appendonly", "yes"]
        cmd += ["--appendfsync", "always", "--dir", str(self.dir), "--save", ""]
        cmd += ["--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _wait_port(self.port, 30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis writes out its AOF and exits
            self.proc.wait(30)

    def close(self) -> None:
        self.stop()

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class OwnRabbit:
    """A RabbitMQ node of our own (own node name, ports and data directory), so that
    restarting it disturbs nobody. Durable queues and persistent messages survive.
    Its data lives in a directory of its own that the rabbitmq user can reach."""

    def __init__(self):
        self.port, self.dir = free_port(), Path(tempfile.mkdtemp(prefix="ttg-chaos-rabbit-"))
        workdir = self.dir
        self.node = f"ttgchaos{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.proc: subprocess.Popen | None = None
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (workdir / "rabbitmq-env.conf").write_text("")
        (workdir / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:  # rabbitmq-server drops to the rabbitmq user when root
            for path in (workdir, *workdir.iterdir()):
                shutil.chown(path, "rabbitmq", "rabbitmq")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["rabbitmq-server"],
            env=self._env(),
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.port, 120)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, "stop"],
            env=self._env(),
            capture_output=True,
            timeout=120,
        )
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
