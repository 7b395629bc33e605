"""Parameter spaces: integer ranges, Cartesian grids and explicit lists.

Every space is lazily indexable (``len(space)``, ``space[i]``) and never materialised,
and has a JSON spec so that a queue message can carry it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ttg_ray.core import codec
from ttg_ray.errors import InvalidSpace, Unencodable

Axis = range | tuple


class Space:
    """Base of the three spaces. Subclasses define len, _get, iter_slice and to_spec."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _get(self, index: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a space of {n} parameters")
        return self._get(index)

    def iter_slice(self, lo: int, hi: int) -> Iterator[Any]:
        """The parameters at indices lo..hi-1, faster than indexing one by one."""
        return (self._get(i) for i in range(lo, hi))

    def to_spec(self) -> dict:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short stable hash of the spec, to tell two spaces apart."""
        blob = json.dumps(codec.encode(self.to_spec()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(self.fingerprint())


class ParamRange(Space):
    """The integers of ``range(start, stop, step)``."""

    def __init__(self, start: int, stop: int | None = None, step: int = 1):
        if stop is None:
            start, stop = 0, start
        for name, value in (("start", start), ("stop", stop), ("step", step)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidSpace(f"range {name} must be an integer, got {value!r}")
        if step == 0:
            raise InvalidSpace("range step must not be 0")
        self._range = range(start, stop, step)

    @property
    def start(self) -> int:
        return self._range.start

    @property
    def stop(self) -> int:
        return self._range.stop

    @property
    def step(self) -> int:
        return self._range.step

    def __len__(self) -> int:
        return len(self._range)

    def _get(self, index: int) -> int:
        return self._range[index]

    def iter_slice(self, lo: int, hi: int) -> Iterator[int]:
        return iter(self._range[lo:hi])

    def to_spec(self) -> dict:
        return {"kind": "range", "start": self.start, "stop": self.stop, "step": self.step}

    def __repr__(self) -> str:
        return f"ParamRange({self.start}, {self.stop}, {self.step})"


class Grid(Space):
    """The Cartesian product of named axes; a parameter is a dict, the last axis fastest."""

    def __init__(self, axes: Mapping[str, Axis | Sequence[Any]]):
        if not axes:
            raise InvalidSpace("a grid needs at least one axis, e.g. --grid x=1,2,3")
        self.names: tuple[str, ...] = tuple(axes)
        self.axes: tuple[Axis, ...] = tuple(_as_axis(name, v) for name, v in axes.items())
        self._len = math.prod(len(a) for a in self.axes)
        # strides[k]: how many indices one step on axis k spans
        strides, acc = [], 1
        for axis in reversed(self.axes):
            strides.append(acc)
            acc *= len(axis)
        self._strides = tuple(reversed(strides))

    def __len__(self) -> int:
        return self._len

    def _get(self, index: int) -> dict[str, Any]:
        out = {}
        for name, axis, stride in zip(self.names, self.axes, self._strides):
            k, index = divmod(index, stride)
            out[name] = axis[k]
        return out

    def to_spec(self) -> dict:
        axes = []
        for name, axis in zip(self.names, self.axes):
            if isinstance(axis, range):
                axes.append({"name": name, "range": [axis.start, axis.stop, axis.step]})
            else:
                axes.append({"name": name, "values": list(axis)})
        return {"kind": "grid", "axes": axes}

    def __repr__(self) -> str:
        return f"Grid({dict(zip(self.names, self.axes))!r})"


class ParamList(Space):
    """An explicit list of values (a numpy array: its rows). Each parameter is what the
    codec reads it back as (numpy scalars as Python numbers), so every backend calls
    the function with the same parameter."""

    def __init__(self, values: Sequence[Any] | np.ndarray):
        if isinstance(values, (str, bytes)):
            raise InvalidSpace("a parameter list must be a sequence of values, not a string")
        if isinstance(values, np.ndarray) and values.ndim == 0:
            raise InvalidSpace("a parameter list must have at least one dimension, not 0-d")
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def _get(self, index: int) -> Any:
        return _param(self.values[index])

    def iter_slice(self, lo: int, hi: int) -> Iterator[Any]:
        return map(_param, self.values[lo:hi])

    def to_spec(self) -> dict:
        return {"kind": "list", "values": _plain_list(self.values)}

    def window_spec(self, lo: int, hi: int) -> dict:
        """A spec of only the values lo..hi-1, with their offset, for one queue message."""
        return {"kind": "list", "values": _plain_list(self.values[lo:hi]), "offset": lo}

    def __repr__(self) -> str:
        return f"ParamList(<{len(self)} values>)"


class _OffsetList(ParamList):
    """Values lo..hi-1 of a larger list, indexed by their original indices."""

    def __init__(self, values: Sequence[Any], offset: int, total: int | None = None):
        super().__init__(values)
        self.offset = offset
        self.total = offset + len(values) if total is None else total

    def __len__(self) -> int:
        return self.total

    def _get(self, index: int) -> Any:
        if not self.offset <= index < self.offset + len(self.values):
            raise IndexError(f"index {index} is outside this message's window")
        return self.values[index - self.offset]

    def iter_slice(self, lo: int, hi: int) -> Iterator[Any]:
        return (self._get(i) for i in range(lo, hi))


def _param(value: Any) -> Any:
    """A parameter as the codec reads it back; one it cannot encode stays as it is (the
    Ray backend can still run it when no file or message has to hold it)."""
    if type(value) in (int, float, str):
        return value
    try:
        return codec.normal(value)
    except Unencodable:
        return value


def _plain_list(values: Sequence[Any] | np.ndarray) -> list[Any]:
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf":
        return values.tolist()  # the same numbers, exactly, and fast
    return list(values)


def _as_axis(name: str, values: Any) -> Axis:
    if not isinstance(name, str) or not name:
        raise InvalidSpace(f"grid axis names must be non-empty strings, got {name!r}")
    if isinstance(values, range):
        axis: Axis = values
    elif isinstance(values, np.ndarray) and values.ndim >= 1:
        axis = tuple(_param(v) for v in values)
    elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidSpace(f"grid axis {name!r} must be a list or a range, got {values!r}")
    else:
        axis = tuple(_param(v) for v in values)
    if len(axis) == 0:
        raise InvalidSpace(f"grid axis {name!r} is empty; give it at least one value")
    return axis


def window_spec(space: Space, lo: int, hi: int) -> dict:
    """The smallest spec that still answers space[i] for lo <= i < hi."""
    if isinstance(space, ParamList) and not isinstance(space, _OffsetList):
        return space.window_spec(lo, hi)
    return space.to_spec()


def space_from_spec(spec: Any) -> Space:
    """Rebuild a space from its JSON spec; InvalidSpace says what is wrong."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise InvalidSpace(f"a space spec must be an object with a 'kind', got {spec!r:.80}")
    kind = spec["kind"]
    try:
        if kind == "range":
            return ParamRange(spec["start"], spec["stop"], spec.get("step", 1))
        if kind == "grid":
            axes: dict[str, Any] = {}
            for axis in spec["axes"]:
                if "range" in axis:
                    axes[axis["name"]] = range(*axis["range"])
                else:
                    axes[axis["name"]] = axis["values"]
            return Grid(axes)
        if kind == "list":
            if "offset" in spec:
                return _OffsetList(spec["values"], int(spec["offset"]))
            return ParamList(spec["values"])
        from ttg_ray.core.sampling import from_spec  # the newer kinds; imports this module

        space = from_spec(spec)
        if space is not None:
            return space
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidSpace(f"malformed {kind!r} space spec: {err!r}") from err
    raise InvalidSpace(
        f"unknown space kind {kind!r}; expected range, grid, list, frange, linspace, "
        "logspace, random or quasirandom"
    )


def as_space(params: Any) -> Space:
    """Accept an int, a range, a sequence or a Space, as compute() does."""
    if isinstance(params, Space):
        return params
    if isinstance(params, bool):
        raise InvalidSpace("params must be a count, a range, a sequence or a space, not a bool")
    if isinstance(params, int):
        if params < 0:
            raise InvalidSpace(f"the parameter count must be >= 0, got {params}")
        return ParamRange(0, params)
    if isinstance(params, range):
        return ParamRange(params.start, params.stop, params.step)
    if isinstance(params, dict):
        return Grid(params)
    if isinstance(params, np.ndarray):
        return ParamList(params)
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
        return ParamList(params)
    if isinstance(params, Iterable) and not isinstance(params, (str, bytes, Mapping)):
        # A generator or other finite iterable: read once, here, so it can be indexed.
        return ParamList(list(params))
    raise InvalidSpace(
        f"cannot make a parameter space from {type(params).__name__}; "
        "pass an int, a range, a list, a dict of axes (grid) or a Space"
    )


def require_params(space: Space, given: Callable[[], str], hint: str) -> Space:
    """``space`` itself, or InvalidSpace when it holds no parameter: a sweep of nothing is
    a mistake to report before any backend starts. ``given()`` names what the user
    passed (called only then), ``hint`` says what to pass instead."""
    if len(space) == 0:
        raise InvalidSpace(f"the parameter space is empty ({given()}): nothing to run; {hint}")
    return space


def parse_range(text: str) -> range:
    """'START:STOP[:STEP]' -> range."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or any(p.strip() == "" for p in parts):
        raise InvalidSpace(f"a range must look like START:STOP or START:STOP:STEP, got {text!r}")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise InvalidSpace(f"range bounds must be integers, got {text!r}") from None
    if len(numbers) == 3 and numbers[2] == 0:
        raise InvalidSpace(f"range step must not be 0 in {text!r}")
    return range(*numbers)


def parse_axis(text: str) -> tuple[str, Axis]:
    """'NAME=1,2,3' or 'NAME=START:STOP[:STEP]' -> (name, axis). Values are JSON
    where they parse as JSON (numbers, true, null, "quoted"), else plain strings."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise InvalidSpace(f"a grid axis must look like NAME=1,2,3 or NAME=0:10, got {text!r}")
    if ":" in values and "," not in values:
        axis: Axis = parse_range(values)
    else:
        axis = tuple(_parse_value(v.strip()) for v in values.split(","))
    if len(axis) == 0:
        raise InvalidSpace(f"grid axis {name!r} is empty in {text!r}")
    return name, axis


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# What compute() and stream() accept as ``params`` (see as_space).
ParamsLike = int | range | Sequence[Any] | Mapping[str, Any] | Space | Iterable[Any]
