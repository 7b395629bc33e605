"""Named plug-ins ("backend name" -> "module:Class"), imported only when chosen, so a
client library is loaded only by the user who picked its backend."""

from __future__ import annotations

import importlib
from typing import Any

from ttg_ray.errors import UsageError


def load(registry: dict[str, str], name: str, kind: str, extra: str | None = None) -> Any:
    """The object registered under ``name``; UsageError naming the choices, or the pip
    extra (``ttg-ray[extra]``) that installs a missing client library."""
    try:
        target = registry[name]
    except KeyError:
        raise UsageError(
            f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}"
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise UsageError(f"the {name} {kind} is not available in this version") from err
        raise UsageError(
            f"the {name} {kind} needs {err.name!r}: pip install 'ttg-ray[{extra or name}]'"
        ) from err
    return getattr(module, attr)
