"""The progress display of compute(), stream() and the CLI, drawn by rich: in a terminal
and in Jupyter alike, with done/total, the rate over the last few seconds, the ETA and
the failures so far. Log lines written while it shows go above it, never through it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ttg_ray.errors import UsageError

ProgressFn = Callable[[int, int], None]
RATE_WINDOW_S = 10.0  # the rate (and so the ETA) is measured over this recent window


def wanted_by_default() -> bool:
    """On for a terminal or a notebook, off otherwise (pipes, files, CI logs)."""
    console = Console(stderr=True)
    return console.is_terminal or console.is_jupyter


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("-- params/s" if speed is None else f"{speed:,.0f} params/s")


class _Failed(ProgressColumn):
    def render(self, task: Task) -> Text:
        failed = int(task.fields.get("failed", 0))
        return Text(f"{failed:,} failed", style="red" if failed else "dim")


class ProgressDisplay:
    """Call with ``(done, total)``; ``failed`` tells the failures so far. Starts drawing
    at the first call; ``close()`` leaves the final line on screen."""

    def __init__(
        self,
        description: str = "sweep",
        failed: Callable[[], int] | None = None,
        console: Console | None = None,
    ):
        self.description = description
        self.failed = failed or (lambda: 0)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            _Failed(),
            console=console or Console(stderr=True),
            speed_estimate_period=RATE_WINDOW_S,
            refresh_per_second=4,
        )
        self._task: Any = None
        self._rerouted: list[tuple[logging.StreamHandler, Any]] = []

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._progress.start()
            self._reroute_logs()
            # Work resumed from an earlier run is done but not part of this run's rate.
            self._task = self._progress.add_task(self.description, total=total, completed=done)
        self._progress.update(self._task, completed=done, total=total, failed=self.failed())

    def close(self) -> None:
        if self._task is None:
            return
        self._progress.update(self._task, failed=self.failed())
        self._progress.refresh()
        self._progress.stop()
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted.clear()
        self._task = None

    def _reroute_logs(self) -> None:
        """Point the handlers that write to the terminal at rich's proxy of stderr, so
        their lines print above the bar. (A handler keeps the stream object it was given,
        so rich's redirection of sys.stderr alone would not reach it.)"""
        terminal = (sys.__stderr__, sys.__stdout__)
        for name in ("ttg_ray", ""):
            for handler in logging.getLogger(name).handlers:
                if (
                    type(handler) is logging.StreamHandler
                    and handler.stream in terminal
                    and sys.stderr not in terminal
                ):
                    self._rerouted.append((handler, handler.setStream(sys.stderr)))


def resolve(
    progress: bool | ProgressFn | None, failed: Callable[[], int]
) -> tuple[ProgressFn | None, ProgressDisplay | None]:
    """compute()'s ``progress`` argument as the callback the runner calls, and the
    display to close afterwards (None when the caller's own callback is used)."""
    if progress is None:
        progress = wanted_by_default()
    if progress is True:
        display = ProgressDisplay(failed=failed)
        return display, display
    if progress is False:
        return None, None
    if callable(progress):
        return progress, None
    raise UsageError(
        f"progress must be True, False, None (automatic) or a callable(done, total), "
        f"got {progress!r}"
    )
