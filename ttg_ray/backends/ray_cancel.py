"""Stopping the Ray tasks of a sweep that stopped early (break, an error, Ctrl-C), around
two pitfalls of Ray 2.60's ray.cancel that were measured here."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import ray
from ray.exceptions import RayError

log = logging.getLogger(__name__)

# How long a new sweep keeps killing the chunks an earlier stopped sweep left running.
KILL_CANCELLED_S = 10.0

# Chunks that stopped sweeps cancelled, with the Ray job they ran in: Ray's cancel
# raises KeyboardInterrupt at the chunk's next line of Python, so one blocked in C code
# (time.sleep, a socket read) runs on, holding its CPU, until the next sweep ends it.
# Several sweeps of one process (threads, or streams left open) may stop before the
# next one opens: all their chunks are kept.
_cancelled: tuple[str, list[ray.ObjectRef]] = ("", [])
_lock = threading.Lock()


def cancel(refs: list[ray.ObjectRef]) -> None:
    """Cancel the tasks of ``refs`` that have not finished. Ray 2.60's driver aborts
    (RAY_CHECK "Tried to complete task that was not pending", exit 1) when tasks are
    cancelled right after a KeyboardInterrupt cut a ray.wait short, as Ctrl-C does; a
    ray.wait that runs to its end first avoided it (plain Ray, busy 2-core machine:
    aborted within 10-45 interrupted rounds without it, none in 300 rounds with it)."""
    global _cancelled
    with contextlib.suppress(RayError, ValueError):
        unfinished = _unfinished(refs)
        for ref in unfinished:
            with contextlib.suppress(RayError, ValueError):
                ray.cancel(ref)
        job = ray.get_runtime_context().get_job_id()
        with _lock:
            earlier = _cancelled[1] if _cancelled[0] == job else []
            _cancelled = (job, earlier + unfinished)


def kill_leftovers() -> None:
    """Kill the workers of chunks that an earlier sweep on this Ray cancelled and that
    still run: this sweep needs their CPUs (its worker warm-up would wait for them)."""
    global _cancelled
    with _lock:
        (job, refs), _cancelled = _cancelled, ("", [])
    if not refs or job != ray.get_runtime_context().get_job_id():
        return  # nothing left, or refs of a Ray that has since been stopped
    with contextlib.suppress(RayError, ValueError):
        running = _unfinished(refs)
        left, deadline = running, time.monotonic() + KILL_CANCELLED_S
        # Sent again until they end: Ray drops a force cancel that arrives while it is
        # still delivering the first one (seen here: the second round took).
        while left and time.monotonic() < deadline:
            for ref in left:
                with contextlib.suppress(RayError, ValueError):
                    ray.cancel(ref, force=True)
            left = _unfinished(left, timeout_s=0.5)
        if running:
            log.warning(
                "%d chunk(s) of a stopped sweep ignored the cancel (blocked in C code?) and "
                "still ran: %s",
                len(running),
                f"{len(left)} still run" if left else "killed their workers",
            )


def _unfinished(refs: list[ray.ObjectRef], timeout_s: float = 0.0) -> list[ray.ObjectRef]:
    """Those of ``refs`` whose task has not ended ``timeout_s`` from now."""
    if not refs:
        return []
    _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    return unfinished
