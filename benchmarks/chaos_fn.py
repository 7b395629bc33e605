"""The chaos runs' function: workloads.faulty, plus a log of every call, so the ledger
counts re-executions from what really ran rather than from the driver's summary."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import Any

from ttg_ray import workloads

_logs: dict[str, Any] = {}


SAFETY_STOP_MB = 800  # a runaway parameter stops here, should the memory limit fail


def counted(
    param: Any,
    count_dir: str | None = None,
    hang_forever: list[Any] | None = None,
    grow: list[Any] | None = None,
    **faults: Any,
) -> float:
    """workloads.faulty(param, **faults), after appending ``param`` to this process's
    call log in ``count_dir``. The line is flushed before the call, so a call whose
    worker is killed in the middle of it is counted too. Parameters in ``hang_forever``
    sleep until stopped; those in ``grow`` allocate 10 MB at a time until stopped (or
    SAFETY_STOP_MB)."""
    if count_dir:
        log = _logs.get(count_dir)
        if log is None or log.closed:
            path = Path(count_dir) / f"calls-{os.getpid()}.log"
            log = _logs[count_dir] = open(path, "a", buffering=1)  # noqa: SIM115 (process-long)
        log.write(f"{param}\n")
    if hang_forever and param in hang_forever:
        while True:
            time.sleep(1)
    if grow and param in grow:
        held = [b"x" * (10 * 1024 * 1024) for _ in range(SAFETY_STOP_MB // 10)]
        return float(len(held))
    return workloads.faulty(param, **faults)


def call_counts(count_dir: str | os.PathLike) -> collections.Counter:
    """How many times each parameter was called, over every process's log."""
    counts: collections.Counter = collections.Counter()
    for path in Path(count_dir).glob("calls-*.log"):
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):  # a torn last line is a call cut off mid-write
                    counts[int(line)] += 1
    return counts
