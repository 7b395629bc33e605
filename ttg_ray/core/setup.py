"""Per-worker setup: expensive state (a model, a data set) built once per worker
process and handed to the function with every parameter, as Pool(initializer=...) or a
Dask worker plugin would."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

# This process's resource, by the sweep that made it. Only the latest is kept: a worker
# process outlives sweeps (the warm Ray), and an old model should not pin its memory.
_resources: dict[str, Any] = {}


class WithSetup:
    """Calls ``fn(param, resource)``, where ``resource = setup()`` runs once per worker
    process (on its first parameter) and is reused for every later one. If setup raises,
    the parameter fails with that error and the next parameter tries setup again."""

    def __init__(self, fn: Callable[[Any, Any], Any], setup: Callable[[], Any]):
        if not callable(setup):
            from ttg_ray.errors import UsageError

            raise UsageError(f"setup must be callable, got {type(setup).__name__}")
        self.fn = fn
        self.setup = setup
        self.key = uuid.uuid4().hex  # the same in every copy sent to the workers

    def __call__(self, param: Any) -> Any:
        try:
            resource = _resources[self.key]
        except KeyError:
            resource = self.setup()
            _resources.clear()
            _resources[self.key] = resource
        return self.fn(param, resource)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"WithSetup({name}, setup={getattr(self.setup, '__qualname__', self.setup)})"
