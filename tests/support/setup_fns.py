"""Per-worker setup functions and a function that reports what setup gave it, for the
setup tests (imported by queue workers through PYTHONPATH)."""

from __future__ import annotations

import os
from typing import Any

_calls = 0  # how often setup ran in this process


def counted_setup() -> dict[str, int]:
    """Counts its calls in this process: a count above 1 means it ran twice here."""
    global _calls
    _calls += 1
    return {"pid": os.getpid(), "count": _calls}


def report(param: Any, resource: dict[str, int]) -> list[Any]:
    """[param, pid that ran setup, setup's count there, pid running this call]."""
    return [param, resource["pid"], resource["count"], os.getpid()]


def broken_setup() -> None:
    raise OSError("model file missing")
