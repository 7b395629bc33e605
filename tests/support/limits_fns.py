"""Functions that misbehave on given parameters, for the time and memory limit tests
(imported by Ray and queue workers through PYTHONPATH)."""

from __future__ import annotations

import time
from typing import Any

from ttg_ray.workloads import seed_placeholder

SAFETY_STOP_MB = 800  # a runaway parameter stops here should the limit ever fail


def hangs(param: Any, at: tuple[int, ...] = (), work_ms: float = 1.0) -> float:
    """seed_placeholder, except that the parameters ``at`` sleep forever."""
    if param in at:
        while True:
            time.sleep(1)
    return seed_placeholder(param, work_ms)


def grows(param: Any, at: tuple[int, ...] = (), work_ms: float = 1.0) -> float:
    """seed_placeholder, except that the parameters ``at`` allocate (and touch) memory
    10 MB at a time until stopped, or SAFETY_STOP_MB at the most."""
    if param in at:
        held = []
        for _ in range(SAFETY_STOP_MB // 10):
            held.append(b"x" * (10 * 1024 * 1024))
            time.sleep(0.005)
        return -1.0
    return seed_placeholder(param, work_ms)
