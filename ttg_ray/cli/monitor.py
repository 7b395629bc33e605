"""Live view of a queue backend: ``python -m ttg_ray.monitor --backend redis|rabbitmq``.

Shows tasks waiting, in flight (per consumer; for RabbitMQ from its management API),
retrying, dead letters, results not yet collected, consumers, throughput and ETA, as a
Rich view redrawn in place; ``--once`` prints one snapshot and exits; ``--json`` prints
JSON instead (with ``--once`` one object, else one per refresh: JSON Lines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ttg_ray.cli.args import add_broker_arguments, number
from ttg_ray.cli.exits import run_main
from ttg_ray.config import BrokerConfig, mask_url
from ttg_ray.queues.base import QueueAdapter, QueueStats, open_adapter

STALL_S = 30.0  # a parameter running this long is marked in the running rows


@dataclass
class Rates:
    """Throughput in chunks per second and the ETA it implies (None: not known yet)."""

    chunks_per_s: float | None = None
    eta_s: float | None = None


class Sampler:
    """Turns successive snapshots into a smoothed throughput and an ETA."""

    def __init__(self, smoothing: float = 0.5):
        self.smoothing = smoothing
        self.rate: float | None = None
        self._last: tuple[float, int] | None = None

    def update(self, stats: QueueStats, now: float) -> Rates:
        remaining = stats.waiting + (stats.in_flight or 0) + stats.retrying
        # finished chunks: acked ones when the broker counts them, else the drain of the queue
        done = stats.acked if stats.acked is not None else -remaining
        if self._last is not None and now > self._last[0]:
            sample = max(0.0, (done - self._last[1]) / (now - self._last[0]))
            self.rate = (
                sample
                if self.rate is None
                else (self.smoothing * sample + (1 - self.smoothing) * self.rate)
            )
        self._last = (now, done)
        eta = remaining / self.rate if self.rate else None
        return Rates(self.rate, 0.0 if remaining == 0 else eta)


def figures(stats: QueueStats, rates: Rates) -> list[tuple[str, str]]:
    """The rows of the view, as (name, value) text."""
    if stats.in_flight is None:
        in_flight = "n/a (AMQP does not count unacked messages; enable rabbitmq_management)"
    else:
        per = ", ".join(f"{name}: {n}" for name, n in sorted(stats.in_flight_by_consumer.items()))
        in_flight = f"{stats.in_flight}" + (f"  ({per})" if per else "")
    rate = "measuring..." if rates.chunks_per_s is None else f"{rates.chunks_per_s:.1f} chunks/s"
    eta = "unknown" if rates.eta_s is None else f"{rates.eta_s:.0f} s"
    rows = [
        ("waiting", str(stats.waiting)),
        ("in flight", in_flight),
        ("retrying", str(stats.retrying)),
        ("dead letters", str(stats.dead_letters)),
        ("results", f"{stats.results_waiting} not yet collected"),
        ("consumers", str(stats.consumers)),
        ("throughput", rate),
        ("ETA", eta),
    ]
    if stats.acked is not None:
        rows.insert(5, ("acked", str(stats.acked)))
    return rows + _running_rows(stats.running)


def render(title: str, stats: QueueStats, rates: Rates) -> Group:
    """The view of one snapshot: the title over a two-column table."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column("figure", style="bold", no_wrap=True)
    table.add_column("value")
    for name, value in figures(stats, rates):
        table.add_row(name, value)
    return Group(Text(title, style="bold"), table)


def as_json(stats: QueueStats, rates: Rates, now_s: float) -> str:
    """One snapshot as one JSON line: the counts, throughput, ETA and the time."""
    return json.dumps(
        {**stats.to_dict(), "chunks_per_s": rates.chunks_per_s, "eta_s": rates.eta_s, "time": now_s}
    )


def _running_rows(running: list[dict], show: int = 5) -> list[tuple[str, str]]:
    """The longest-running chunks, with the parameter each is on: a chunk stuck on one
    parameter shows here (marked STALLED past STALL_S) before any timeout."""
    longest = sorted(running, key=lambda beat: -beat.get("chunk_s", 0.0))[:show]
    rows = []
    for beat in longest:
        mark = "STALLED " if beat.get("param_s", 0.0) > STALL_S else ""
        where = (
            f"parameter {beat['index']} ({beat.get('param')!r:.40}) for {beat['param_s']:.0f} s"
            if beat.get("index") is not None
            else "between parameters"
        )
        rows.append(
            (
                "running",
                f"{mark}{beat['chunk_id']} {beat['chunk_s']:.0f} s, on {where}, {beat['worker']}",
            )
        )
    return rows


def snapshot(queue: QueueAdapter, run_id: str | None) -> QueueStats:
    stats = queue.depth(run_id)
    for body in queue.running():
        with contextlib.suppress(ValueError, TypeError):
            beat = json.loads(body)["running"]
            if isinstance(beat, dict):
                stats.running.append(beat)
    return stats


def samples(
    queue: QueueAdapter, run_id: str | None, interval_s: float
) -> Iterator[tuple[QueueStats, Rates]]:
    """Snapshots every ``interval_s``, each with the throughput and ETA so far."""
    sampler = Sampler()
    while True:
        stats = snapshot(queue, run_id)
        yield stats, sampler.update(stats, time.monotonic())
        time.sleep(interval_s)


def watch(
    queue: QueueAdapter, run_id: str | None, title: str, interval_s: float, console: Console
) -> None:
    """Redraw the view in place on a terminal; elsewhere (a pipe, a file) print each view
    after the last, so the output is a readable log."""
    views = samples(queue, run_id, interval_s)
    if not console.is_terminal:
        for stats, rates in views:
            console.print(render(title, stats, rates))
            console.file.flush()
        return
    stats, rates = next(views)
    # Redrawn when a snapshot arrives, not on a timer: nothing changes in between.
    with Live(render(title, stats, rates), console=console, auto_refresh=False) as live:
        for stats, rates in views:
            live.update(render(title, stats, rates), refresh=True)


def watch_json(queue: QueueAdapter, run_id: str | None, interval_s: float) -> None:
    """JSON Lines: one object per snapshot, flushed at once, for a pipe or a log."""
    for stats, rates in samples(queue, run_id, interval_s):
        print(as_json(stats, rates, time.time()), flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ttg_ray.monitor", description=__doc__)
    add_broker_arguments(parser)
    parser.add_argument("--run-id", help="the run to watch (default: the shared task queue)")
    parser.add_argument("--interval-s", type=number(0.1), default=1.0)
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument(
        "--json",
        action="store_true",
        help="JSON instead of the view: one object, or with no --once one per refresh (JSON Lines)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = BrokerConfig.from_env(args.redis_url, args.amqp_url).url_for(args.backend)
    title = f"ttg_ray monitor: {args.backend} at {mask_url(url)}, " + (
        f"run {args.run_id}" if args.run_id else "shared task queue"
    )
    try:
        return run_main(lambda: _show(args, url, title))
    except KeyboardInterrupt:
        return 0


def _console() -> Console:
    console = Console()
    # A pipe or a file has no width to fit: long lines (the title) stay whole.
    console.soft_wrap = not console.is_terminal
    return console


def _show(args: argparse.Namespace, url: str, title: str) -> int:
    with open_adapter(args.backend, url, args.run_id, connect_timeout_s=3) as queue:
        if args.once and args.json:
            print(json.dumps(snapshot(queue, args.run_id).to_dict()))
        elif args.once:
            _console().print(render(title, snapshot(queue, args.run_id), Rates()))
        elif args.json:
            watch_json(queue, args.run_id, args.interval_s)
        else:
            watch(queue, args.run_id, title, args.interval_s, _console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
