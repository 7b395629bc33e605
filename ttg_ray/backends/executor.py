"""Runs a queue worker's chunks in a child process, so that a parameter past its time or
memory limit can be stopped (by killing the child) and the rest of its chunk run in a
fresh one. The child streams what it finishes to its parent as it goes, so nothing
finished before the stop is computed again."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.reduction import ForkingPickler
from typing import Any

from ttg_ray.backends.limits import cap_address_space, rss_mb
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import Progress, run_chunk
from ttg_ray.core.params import Space
from ttg_ray.core.results import ParamFailure

log = logging.getLogger(__name__)

FLUSH_S = 0.1  # how often the child sends what it finished


class ChunkProcess:
    """One child process that runs chunks, one at a time: ``start()`` a chunk, then
    ``pump()`` until ``finished``; ``kill()`` stops it wherever it is. What it reported
    is in ``values`` / ``failures`` (one value per finished parameter, in order),
    ``position`` (parameters finished) and ``param_started`` (time.monotonic(), shared by
    the processes of a machine, when its current parameter began)."""

    def __init__(self, max_memory_mb: float | None = None):
        methods = multiprocessing.get_all_start_methods()
        # fork: the child starts in milliseconds with the function already imported.
        self._ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.max_memory_mb = max_memory_mb
        self._proc: Any = None
        self._conn: Any = None
        self._reset()

    def _reset(self) -> None:
        self.values: list[Any] = []
        self.failures: list[ParamFailure] = []
        self.position = 0
        self.param_started: float | None = None
        self.finished = False
        self.compute_s = 0.0
        self.heard_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self, fn: Callable[[Any], Any], space: Space, chunk: Chunk) -> None:
        if not self.alive:
            self._spawn()
        self._reset()
        self._conn.send((fn, space, chunk))

    def _spawn(self) -> None:
        self.kill()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_serve, args=(child, self.max_memory_mb), name="ttg-chunk", daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent

    def pump(self, wait_s: float) -> None:
        """Take in what the child reported, waiting up to ``wait_s`` for news."""
        try:
            if not self._conn.poll(wait_s):
                return
            while self._conn.poll():
                self._apply(self._conn.recv())
        except (EOFError, OSError):  # the child is gone; ``alive`` says so
            return

    def _apply(self, message: tuple) -> None:
        self.heard_at = time.monotonic()
        kind, values, failures, position, started = message[:5]
        self.values.extend(values)
        self.failures.extend(self._named(f) for f in failures)
        self.position, self.param_started = position, started
        if kind == "done":
            self.finished = True
            self.compute_s = message[5]

    def _named(self, failure: ParamFailure) -> ParamFailure:
        """A MemoryError the child raised under its address-space cap says which limit
        it hit, as the RSS watch's stop does."""
        if failure.type != "MemoryError" or failure.message or self.max_memory_mb is None:
            return failure
        limit = f"max_memory_mb={self.max_memory_mb:g}"
        return replace(failure, message=f"the parameter ran out of memory under {limit}")

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid) if self.alive else None

    def kill(self) -> None:
        """Stop the child at once (also a stopped one), wherever it is."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        self.kill()


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when its parent dies, so a killed worker leaves no
    chunk running behind it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _serve(conn: Any, max_memory_mb: float | None) -> None:
    """The child: run each chunk the parent sends, reporting progress every FLUSH_S."""
    _die_with_parent()
    # The parent decides when to stop (it hands back or finishes the chunk).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reporter = _Reporter(conn)
    reporter.start()
    if max_memory_mb is not None:  # after the reporter's thread has its stack and arena
        cap_address_space(max_memory_mb)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fn, space, chunk = job
        progress = Progress()
        reporter.follow(progress, chunk, space)
        result = run_chunk(fn, space, chunk, progress=progress)
        reporter.finish(result.compute_s)


class _Reporter:
    """The child's thread that sends the parent what the chunk finished since last time
    (it runs while the function does, unless the function holds the interpreter)."""

    def __init__(self, conn: Any):
        self.conn = conn
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._sent = (0, 0)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True, name="ttg-reporter").start()

    def follow(self, progress: Progress, chunk: Chunk, space: Space) -> None:
        with self._lock:
            self._progress, self._sent = progress, (0, 0)
            self._indices = list(chunk.iter_indices())
            self._space, self._attempt = space, chunk.attempt

    def finish(self, compute_s: float) -> None:
        with self._lock:
            self._send("done", compute_s)
            self._progress = None

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            with self._lock:
                if self._progress is not None:
                    self._send("part")

    def _send(self, kind: str, *extra: Any) -> None:
        p = self._progress
        position, n_failures = p.position, len(p.failures)
        values = p.values[self._sent[0] : position]
        failures = p.failures[self._sent[1] : n_failures]
        first = self._sent[0]
        self._sent = (position, n_failures)
        started = None if kind == "done" else p.running_since(time.monotonic())
        try:
            data = ForkingPickler.dumps((kind, values, failures, position, started, *extra))
        except Exception:  # a value that cannot leave this process fails its parameter
            values, failures = self._sendable(first, values, failures)
            data = ForkingPickler.dumps((kind, values, failures, position, started, *extra))
        self.conn.send_bytes(data)

    def _sendable(self, first: int, values: list, failures: list) -> tuple[list, list]:
        values, failures = list(values), list(failures)
        for k, value in enumerate(values):
            try:
                ForkingPickler.dumps(value)
            except Exception as err:
                index = self._indices[first + k]
                values[k] = None
                message = f"the value ({type(value).__name__}) cannot be sent back: {err}"
                failures.append(
                    ParamFailure(
                        index, self._space[index], "TypeError", message, attempts=self._attempt
                    )
                )
        return values, failures
