"""Live view of a queue backend: ``python -m ttg_ray.monitor --backend redis|rabbitmq``.

Shows tasks waiting, in flight (per consumer where the broker tells), retrying, dead
letters, results not yet collected, consumers, throughput and ETA; ``--once`` prints
one snapshot (``--json`` as JSON) and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ttg_ray.cli.args import add_broker_arguments, number
from ttg_ray.cli.exits import run_main
from ttg_ray.config import BrokerConfig, mask_url
from ttg_ray.queues.base import QueueAdapter, QueueStats, open_adapter

CLEAR = "\x1b[H\x1b[2J"
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


def render(title: str, stats: QueueStats, rates: Rates) -> str:
    """The text view of one snapshot."""
    if stats.in_flight is None:
        in_flight = "n/a (RabbitMQ does not report unacked messages over AMQP)"
    else:
        per = ", ".join(f"{name}: {n}" for name, n in sorted(stats.in_flight_by_consumer.items()))
        in_flight = f"{stats.in_flight}" + (f"  ({per})" if per else "")
    rate = "measuring..." if rates.chunks_per_s is None else f"{rates.chunks_per_s:.1f} chunks/s"
    eta = "unknown" if rates.eta_s is None else f"{rates.eta_s:.0f} s"
    rows = [
        ("waiting", stats.waiting),
        ("in flight", in_flight),
        ("retrying", stats.retrying),
        ("dead letters", stats.dead_letters),
        ("results", f"{stats.results_waiting} not yet collected"),
        ("consumers", stats.consumers),
        ("throughput", rate),
        ("ETA", eta),
    ]
    if stats.acked is not None:
        rows.insert(5, ("acked", stats.acked))
    rows += _running_rows(stats.running)
    return "\n".join([title, *(f"  {name:<13}{value}" for name, value in rows)])


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


def watch(queue: QueueAdapter, run_id: str | None, title: str, interval_s: float) -> None:
    sampler = Sampler()
    tty = sys.stdout.isatty()
    while True:
        stats = snapshot(queue, run_id)
        view = render(title, stats, sampler.update(stats, time.monotonic()))
        print((CLEAR if tty else "") + view + ("" if tty else "\n"), flush=True)
        time.sleep(interval_s)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ttg_ray.monitor", description=__doc__)
    add_broker_arguments(parser)
    parser.add_argument("--run-id", help="the run to watch (default: the shared task queue)")
    parser.add_argument("--interval-s", type=number(0.1), default=1.0)
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--json", action="store_true", help="with --once: as JSON")
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


def _show(args: argparse.Namespace, url: str, title: str) -> int:
    with open_adapter(args.backend, url, args.run_id, connect_timeout_s=3) as queue:
        if args.once:
            stats = snapshot(queue, args.run_id)
            print(json.dumps(stats.to_dict()) if args.json else render(title, stats, Rates()))
        else:
            watch(queue, args.run_id, title, args.interval_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
