"""A process's memory, as the per-worker memory limit measures and bounds it (Linux:
/proc for resident memory, RLIMIT_AS for address space); elsewhere, not measured."""

from __future__ import annotations

import contextlib
import os

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MB = 1024 * 1024


def _statm(pid: int | None) -> list[int] | None:
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return [int(x) for x in f.read().split()[:2]]
    except (OSError, ValueError):
        return None


def rss_mb(pid: int | None = None) -> float | None:
    """Resident memory of ``pid`` (default this process) in MiB; None if unknown."""
    fields = _statm(pid)
    return None if fields is None else fields[1] * _PAGE / MB


def address_space_mb(pid: int | None = None) -> float | None:
    """Virtual address space of ``pid`` (default this process) in MiB; None if unknown."""
    fields = _statm(pid)
    return None if fields is None else fields[0] * _PAGE / MB


def cap_address_space(extra_mb: float) -> None:
    """Let this process map at most ``extra_mb`` more than it has now: an allocation past
    that raises MemoryError in the code that asked for it, however fast it grows."""
    now = address_space_mb()
    if resource is None or now is None:
        return
    limit = int((now + extra_mb) * MB)
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit is kept
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
