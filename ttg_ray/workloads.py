"""Built-in functions: the seed's placeholder computation, one line of arithmetic, a
CPU-bound one, the benchmarks' heavy-tailed and array-valued ones, and a fault-injecting
wrapper so failure paths can be exercised from the CLI."""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from pathlib import Path
from typing import Any

# Loop iterations of cpu_bound per millisecond of work on the reference machine
# (a 2-core x86_64 VM, 2026-11); the value is deterministic, only the time varies.
CPU_ITERATIONS_PER_MS = 11000


def _as_int(param: Any) -> int:
    """Ints stay; anything else (a grid dict, a string) maps to a stable int."""
    if isinstance(param, int) and not isinstance(param, bool):
        return param
    if isinstance(param, float) and param.is_integer():
        return int(param)
    blob = json.dumps(param, sort_keys=True, default=repr)
    return zlib.crc32(blob.encode())


def seed_placeholder(param: Any, work_ms: float = 1.0) -> float:
    """The predecessor's placeholder: (p*7 + 13) % 1000 + 0.(p % 100), after
    ``work_ms`` of simulated work (a sleep), as its SIMULATE_WORK_MS did."""
    if work_ms > 0:
        time.sleep(work_ms / 1000.0)
    p = _as_int(param)
    return (p * 7 + 13) % 1000 + float(f"0.{p % 100}")


def arithmetic(param: Any) -> float:
    """One line of arithmetic (a tenth of a microsecond): what a sweep engine costs
    per parameter, with nothing to hide it."""
    return param * 0.5 + 1.0


def cpu_bound(param: Any, work_ms: float = 5.0) -> int:
    """About ``work_ms`` of real CPU work: a fixed-length integer hash chain, so the
    value is the same on every machine."""
    x = _as_int(param) & 0xFFFFFFFF
    for _ in range(int(work_ms * CPU_ITERATIONS_PER_MS)):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def heavy_tail(
    param: Any,
    n: int,
    fast_ms: float = 0.2,
    slow_ms: float = 50.0,
    slow_fraction: float = 0.05,
) -> float:
    """seed_placeholder with ``fast_ms`` of simulated work, except for the last
    ``slow_fraction`` of the ``n`` parameters, which take ``slow_ms``: the slow ones are
    clustered at the end of the space, where a static split hurts most."""
    slow = _as_int(param) >= n - round(n * slow_fraction)
    return seed_placeholder(param, slow_ms if slow else fast_ms)


def array_value(param: Any, size: int = 10_000) -> Any:
    """A numpy array of ``size`` float64 values, the same for a parameter on every
    machine (a seeded generator), so values can be checked bit for bit."""
    import numpy as np  # only this workload needs numpy

    return np.random.default_rng(_as_int(param)).standard_normal(size)


def faulty(
    param: Any,
    work_ms: float = 0.0,
    raise_rate: float = 0.0,
    crash_rate: float = 0.0,
    fail_params: list[Any] | None = None,
    crash_params: list[Any] | None = None,
    flaky_params: list[Any] | None = None,
    flaky_failures: int = 2,
    hang_params: list[Any] | None = None,
    hang_s: float = 60.0,
    state_dir: str | None = None,
) -> float:
    """seed_placeholder with faults injected, for tests, chaos runs and demos.

    - ``raise_rate``: chance that a call raises (drawn per call, so a retry may pass);
    - ``crash_rate``: chance that a call kills its worker process (os._exit);
    - ``fail_params``: parameters that always raise;
    - ``crash_params``: parameters that always kill their worker;
    - ``flaky_params``: parameters that raise on their first ``flaky_failures`` calls
      (counted in files under ``state_dir``, so across processes), then succeed;
    - ``hang_params``: on the first call only, write the worker's pid to
      ``state_dir/hang-<param>.pid`` and sleep ``hang_s``, so a test can kill it there.
    """
    if fail_params and param in fail_params:
        raise ValueError(f"parameter {param!r} is designed to fail")
    if crash_params and param in crash_params:
        os._exit(77)
    if flaky_params and param in flaky_params:
        calls = _count_call(state_dir, f"flaky-{param}")
        if calls <= flaky_failures:
            raise RuntimeError(f"flaky parameter {param!r}: failure {calls} of {flaky_failures}")
    if hang_params and param in hang_params:
        marker = _state_path(state_dir, f"hang-{param}.pid")
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(hang_s)
    if crash_rate and random.random() < crash_rate:
        os._exit(78)
    if raise_rate and random.random() < raise_rate:
        raise RuntimeError(f"injected fault at parameter {param!r}")
    return seed_placeholder(param, work_ms)


def _state_path(state_dir: str | None, name: str) -> Path:
    if not state_dir:
        raise ValueError("this fault needs state_dir (a directory shared by the workers)")
    return Path(state_dir) / name


def _count_call(state_dir: str | None, name: str) -> int:
    """Count calls with one file per call: O_EXCL makes it safe across processes."""
    base = _state_path(state_dir, name)
    n = 1
    while True:
        try:
            fd = os.open(f"{base}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return n
