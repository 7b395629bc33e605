"""Per-worker setup: expensive state (a model, a data set) built once per worker
process and handed to the function with every parameter, as Pool(initializer=...) or a
Dask worker plugin would."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ttg_ray.core.functions import FunctionRef, ref_of
from ttg_ray.errors import InvalidFunction, UsageError

# This process's resource, by the sweep that made it. Only the latest is kept: a worker
# process outlives sweeps (the warm Ray, a queue worker's chunk process), and an old
# model should not pin its memory.
_resources: dict[str, Any] = {}


class WithSetup:
    """Calls ``fn(param, resource)``, where ``resource = setup()`` runs once per worker
    process (on its first parameter) and is reused for every later one. If setup raises,
    the parameter fails with that error and the next parameter tries setup again.

    ``key`` names the sweep's resource: random by default, the same in every copy sent
    to the workers; a queue worker, which builds its own copy per chunk, derives it from
    the run and the names it was sent."""

    def __init__(
        self, fn: Callable[[Any, Any], Any], setup: Callable[[], Any], key: str | None = None
    ):
        if not callable(setup):
            raise UsageError(f"setup must be callable, got {type(setup).__name__}")
        self.fn = fn
        self.setup = setup
        self.key = key or uuid.uuid4().hex

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


def refs_of(fn: Callable[[Any], Any]) -> tuple[FunctionRef, FunctionRef | None]:
    """The names a queue message carries for ``fn``: the function's, and its setup's
    when ``fn`` is a WithSetup (else None). InvalidFunction if either cannot travel."""
    if not isinstance(fn, WithSetup):
        return ref_of(fn), None
    return ref_of(fn.fn), setup_ref_of(fn.setup)


def setup_ref_of(setup: Callable[[], Any]) -> FunctionRef:
    """The module:attr name of a setup callable, for the queue backends."""
    try:
        return ref_of(setup)
    except InvalidFunction as err:
        name = getattr(setup, "__qualname__", None) or repr(setup)
        raise InvalidFunction(
            f"setup {name} cannot be sent to queue workers: they import it by name, so "
            "define it at module level in an importable module (not a lambda, closure or "
            "__main__) and pass that function (module:attr, as --setup takes it), or use "
            "backend='ray'"
        ) from err
