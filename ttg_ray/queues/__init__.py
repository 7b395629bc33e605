"""Broker adapters behind one interface, and the registry that loads one by name."""

from ttg_ray.queues.base import Delivery, QueueAdapter, QueueStats, open_adapter

__all__ = ["Delivery", "QueueAdapter", "QueueStats", "open_adapter"]
