"""What makes a sweep itself (its space, function and kwargs), recorded in the header of
its result file so that --resume refuses a file made by another sweep."""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttg_ray.core import codec
from ttg_ray.core.functions import ref_of
from ttg_ray.core.params import ParamList, Space
from ttg_ray.errors import InvalidFunction, Unencodable

FORMAT = 1


@dataclass(frozen=True)
class SweepIdentity:
    """The space (a list space by length and hash), the function (module:attr, or for a
    lambda or closure its qualified name and a hash of its code), the kwargs, and the
    per-worker setup described as the function is (``{"function", "kwargs"}``, or None).
    A header without a setup is a sweep without one."""

    space: dict
    function: str
    kwargs: Any
    version: str = ""
    setup: dict | None = None

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        space: Space,
        version: str = "",
        setup: Callable[[], Any] | None = None,
    ) -> SweepIdentity:
        function, kwargs = describe_function(fn)
        described = None
        if setup is not None:
            name, setup_kwargs = describe_function(setup)
            described = {"function": name, "kwargs": setup_kwargs}
        return cls(describe_space(space), function, kwargs, version, described)

    def to_header(self) -> dict:
        header = {
            "ttg_ray": self.version,
            "format": FORMAT,
            "space": self.space,
            "function": self.function,
            "kwargs": self.kwargs,
        }
        if self.setup is not None:
            header["setup"] = self.setup
        return header

    @classmethod
    def from_header(cls, header: dict) -> SweepIdentity:
        return cls(
            header["space"],
            header["function"],
            header["kwargs"],
            header["ttg_ray"],
            header.get("setup"),
        )

    def difference(self, other: SweepIdentity) -> str | None:
        """How ``other`` (this sweep) differs from self (the file's), or None."""
        for what, mine, theirs in (
            ("space", self.space, other.space),
            ("function", self.function, other.function),
            ("kwargs", self.kwargs, other.kwargs),
            ("setup", self.setup, other.setup),
        ):
            if mine != theirs:
                verb = "are" if what == "kwargs" else "is"
                return f"its {what} {verb} {_short(mine)}, this sweep's {_short(theirs)}"
        return None


def describe_space(space: Space) -> dict:
    """The space's spec as JSON; a list by its length and the hash of its values, so
    the header stays small whatever the list's size."""
    spec = space.to_spec()
    try:
        if isinstance(space, ParamList):
            blob = codec.dumps(spec["values"]).encode()
            return {"kind": "list", "len": len(space), "sha256": hashlib.sha256(blob).hexdigest()}
        return codec.encode(spec)
    except Unencodable as err:
        raise Unencodable(
            f"a parameter cannot be written to a result file: {err} (use it without "
            "--output, on the Ray backend)"
        ) from err


def describe_function(fn: Callable[[Any], Any]) -> tuple[str, Any]:
    """(name, kwargs): 'module:attr' for an importable function, else
    'module:qualname#sha256-of-code' (a lambda or closure, which only Ray can run)."""
    try:
        ref = ref_of(fn)
        return ref.name, codec.encode(ref.kwargs)
    except InvalidFunction:
        pass
    kwargs: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        kwargs, fn = dict(fn.keywords), fn.func
    name = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
        name += f"#{_code_hash(code)}"
    try:
        return name, codec.encode(kwargs)
    except Unencodable:
        # Still tell two sets of kwargs apart, though they cannot be written out.
        return name, {"sha256": hashlib.sha256(repr(sorted(kwargs.items())).encode()).hexdigest()}


def _code_hash(code: types.CodeType) -> str:
    digest = hashlib.sha256()
    _feed(digest, code)
    return digest.hexdigest()[:16]


def _feed(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed(digest, const)
        else:
            digest.update(repr(const).encode())


def _short(value: Any) -> str:
    if value is None:
        return "none"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 100 else text[:97] + "..."
