"""A private in-memory broker for queue-worker tests, and the results a driver reads
back from it (heartbeats left out)."""

from __future__ import annotations

import time
import uuid

from ttg_ray.backends.queue_worker import WorkerSettings
from ttg_ray.core.messages import decode_reply
from ttg_ray.core.results import ChunkResult
from ttg_ray.queues import QueueAdapter, open_adapter


def memory_broker(run_id: str) -> tuple[WorkerSettings, QueueAdapter]:
    """Worker settings for a fresh in-memory broker, and a driver handle on it."""
    url = f"memory://{uuid.uuid4().hex}"
    settings = WorkerSettings(
        backend="memory", url=url, namespace=run_id, max_retries=1, visibility_timeout_s=0.3
    )
    driver = open_adapter("memory", url, run_id)
    driver.declare(run_id)
    return settings, driver


def results(
    driver: QueueAdapter, run_id: str, n: int = 1, timeout_s: float = 20.0
) -> list[ChunkResult]:
    """Up to ``n`` chunk results of ``run_id``, waiting at most ``timeout_s``."""
    got: list[ChunkResult] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        replies = [decode_reply(b) for b in driver.consume_results(run_id, timeout_s=0.2)]
        got += [r for r in replies if not isinstance(r, dict)]  # not the heartbeats
    return got
