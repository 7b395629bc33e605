"""Backends: where chunks run. ``base`` holds the interface, the per-backend options and
the registry that imports a backend only when chosen; ``ray`` runs chunks as Ray tasks;
``queue`` runs them through a broker (``ttg_ray.queues``) and ``queue_worker`` is the
consumer loop on the other side. Imports the core, ``ttg_ray.queues`` and the shared
modules; only the ``ray*`` modules import ray."""
