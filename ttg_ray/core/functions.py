"""Function references ("package.module:attr" plus JSON kwargs) and the allowlist.

Queue messages name functions this way and never carry pickles; a queue worker runs
only functions from modules on its allowlist.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ttg_ray.core import codec
from ttg_ray.errors import InvalidFunction, Unencodable

BUILTIN_MODULES = ("ttg_ray.workloads",)
DEFAULT_FUNCTION = "ttg_ray.workloads:seed_placeholder"


@dataclass(frozen=True)
class FunctionRef:
    """A function named by module and attribute, with keyword arguments bound to it."""

    module: str
    attr: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.module}:{self.attr}"

    @classmethod
    def parse(cls, text: str, kwargs: dict[str, Any] | None = None) -> FunctionRef:
        module, sep, attr = text.partition(":")
        if not module.strip().replace(".", "_").isidentifier():
            raise InvalidFunction(
                f"--function takes MODULE:ATTR, the name of a function in an importable "
                f"module (e.g. ttg_ray.workloads:cpu_bound), got {text!r}; a lambda or other "
                "expression cannot be given on the command line: define the function in a "
                "module (say mymod.py: def f(x): ...) and pass mymod:f"
            )
        if not sep or not module.strip() or not attr.strip() or ":" in attr:
            raise InvalidFunction(
                f"a function must be named module:attr (e.g. ttg_ray.workloads:cpu_bound), "
                f"got {text!r}"
            )
        try:  # what a queue message and a result header can carry (numpy values too)
            kwargs = codec.normal(dict(kwargs or {}))
        except Unencodable as err:
            raise InvalidFunction(f"keyword arguments of {text} cannot be sent: {err}") from err
        return cls(module.strip(), attr.strip(), kwargs)

    def resolve(self) -> Callable[[Any], Any]:
        """Import the function and bind its kwargs; InvalidFunction says what failed."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as err:
            raise InvalidFunction(
                f"cannot import module {self.module!r} for --function {self.name}: {err}; "
                "check the name and that it is on PYTHONPATH"
            ) from err
        try:
            fn = getattr(module, self.attr)
        except AttributeError:
            raise InvalidFunction(
                f"module {self.module!r} has no attribute {self.attr!r}; check --function"
            ) from None
        if not callable(fn):
            raise InvalidFunction(f"{self.name} is a {type(fn).__name__}, not a function")
        return functools.partial(fn, **self.kwargs) if self.kwargs else fn


def accepts_kwarg(fn: Callable[..., Any], name: str) -> bool:
    """True if ``fn`` names a keyword argument ``name`` (a bare **kwargs does not count:
    it may not mean to take it)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    param = sig.parameters.get(name)
    return param is not None and param.kind is not inspect.Parameter.POSITIONAL_ONLY


def ref_of(fn: Callable[..., Any]) -> FunctionRef:
    """The module:attr name of a top-level function, for backends that send names,
    not code. Lambdas, closures and functions of __main__ cannot travel that way."""
    kwargs: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        if fn.args:
            raise InvalidFunction(
                f"functools.partial({getattr(fn.func, '__qualname__', fn.func)!r}, ...) binds "
                "positional arguments, which queue workers cannot receive; bind them by "
                "keyword instead"
            )
        kwargs, fn = dict(fn.keywords), fn.func
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or "." in qualname:
        raise InvalidFunction(
            f"{qualname or fn!r} cannot be sent to queue workers: they import functions by "
            "name, so define it at the top level of an importable module "
            "(not a lambda, closure or __main__), or use backend='ray'"
        )
    return FunctionRef.parse(f"{module}:{qualname}", kwargs)


class Allowlist:
    """The modules whose functions a queue worker may run."""

    def __init__(self, modules: Iterable[str] = ()):
        self.modules = frozenset(BUILTIN_MODULES) | frozenset(modules)

    def allows(self, ref: FunctionRef) -> bool:
        return ref.module in self.modules

    def check(self, ref: FunctionRef) -> None:
        if not self.allows(ref):
            raise InvalidFunction(
                f"function {ref.name} is not allowed on this worker; allowed modules: "
                f"{', '.join(sorted(self.modules))} (start the worker with --allow-module "
                f"{ref.module} to allow it)"
            )
