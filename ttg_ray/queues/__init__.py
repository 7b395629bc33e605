"""Broker adapters: one connection to Redis Streams or RabbitMQ (or the in-memory
reference) behind three small interfaces by job: ``TaskQueue`` (publish, consume, ack,
nack, dead_letter, touch), ``ResultChannel`` (per-run results) and ``QueueAdmin`` (declare,
depth, dead_letters, purge). Imports the core and the shared modules; only
``redis_streams`` imports redis and only ``rabbitmq`` imports pika."""

from ttg_ray.queues.base import (
    Delivery,
    Quarantine,
    QueueAdapter,
    QueueAdmin,
    QueueStats,
    ResultChannel,
    TaskQueue,
    open_adapter,
)

__all__ = [
    "Delivery",
    "Quarantine",
    "QueueAdapter",
    "QueueAdmin",
    "QueueStats",
    "ResultChannel",
    "TaskQueue",
    "open_adapter",
]
