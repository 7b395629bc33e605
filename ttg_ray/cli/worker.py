"""``python -m ttg_ray.worker --backend redis|rabbitmq``: a queue worker that pulls chunk
messages, runs them and publishes their results (see ttg_ray.backends.queue_worker).
SIGTERM/SIGINT finish the current chunk within --stop-grace-s, then hand back the rest;
a second signal hands it back at once."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Sequence

from ttg_ray.backends.queue_worker import QueueWorker, WorkerSettings
from ttg_ray.cli.args import add_broker_arguments, integer, number
from ttg_ray.cli.exits import run_main
from ttg_ray.cli.logs import configure_logging
from ttg_ray.config import BrokerConfig, WorkerContext, mask_url
from ttg_ray.core.messages import MAX_CHUNK_PARAMS
from ttg_ray.queues.base import DEFAULT_VISIBILITY_TIMEOUT_S

log = logging.getLogger("ttg_ray.worker")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ttg_ray.worker", description=__doc__)
    add_broker_arguments(parser)
    parser.add_argument("--run-id", help="consume this run's queue, else the shared one")
    parser.add_argument(
        "--allow-module", action="append", default=[], help="also run functions of this module"
    )
    parser.add_argument("--max-retries", type=int, default=3, help="crash redeliveries")
    parser.add_argument("--visibility-timeout-s", type=float, default=DEFAULT_VISIBILITY_TIMEOUT_S)
    parser.add_argument("--idle-timeout-s", type=float, help="exit after this long without work")
    parser.add_argument("--reconnect-timeout-s", type=float, default=60.0)
    # Internal: set by the queue backend for the workers it starts (exit with the driver).
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-id", help="consumer name (default host-pid)")
    limits = parser.add_argument_group("limits (a run's own limits travel in its messages)")
    limits.add_argument(
        "--timeout-s", type=number(0.001), help="per parameter, when a message names none"
    )
    limits.add_argument(
        "--max-memory-mb", type=number(1), help="per chunk process; a message may only lower it"
    )
    limits.add_argument(
        "--stop-grace-s",
        type=number(0),
        default=30.0,
        help="after SIGTERM, the current chunk may run this long before its rest is handed back",
    )
    limits.add_argument(
        "--max-chunk-params",
        type=integer(1),
        default=MAX_CHUNK_PARAMS,
        help="dead-letter chunks with more parameters than this",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = BrokerConfig.from_env(args.redis_url, args.amqp_url).url_for(args.backend)
    context = WorkerContext.from_env(args.worker_id)
    configure_logging(args.log_format, args.log_level, context, backend=args.backend)
    settings = WorkerSettings(
        backend=args.backend,
        url=url,
        namespace=args.run_id,
        allow_modules=tuple(args.allow_module),
        max_retries=args.max_retries,
        visibility_timeout_s=args.visibility_timeout_s,
        idle_timeout_s=args.idle_timeout_s,
        reconnect_timeout_s=args.reconnect_timeout_s,
        parent_pid=args.parent_pid,
        worker_id=context.worker_id,
        timeout_s=args.timeout_s,
        max_memory_mb=args.max_memory_mb,
        stop_grace_s=args.stop_grace_s,
        max_chunk_params=args.max_chunk_params,
    )
    return run_main(lambda: _work(settings, mask_url(url)))


def _work(settings: WorkerSettings, where: str) -> int:
    worker = QueueWorker(settings)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    log.info("connected to %s at %s", settings.backend, where)
    return worker.run()
