"""The spaces people expect beyond integer ranges: float ranges, linspace and logspace
axes, seeded random sampling (uniform, loguniform, randint, choice) and quasi-random
designs (Sobol, Latin hypercube; through scipy, the ``spaces`` extra).

All are lazily indexable (``space[i]`` without building the rest) except the Latin
hypercube, whose design is built once, on first use, in each process. All have a JSON
spec, so queue messages carry them. The 1-D spaces (FloatRange, Linspace, Logspace) are
also sequences, so they serve as grid axes: ``{"lr": Logspace(1e-4, 1e-1, 20)}``.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ttg_ray.core.params import Space
from ttg_ray.errors import InvalidSpace


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSpace(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSpace(f"{name} must be an integer >= 0, got {value!r}")
    return value


class _Axis1D(Space):
    """A 1-D space of floats that also works as a sequence (a grid axis)."""

    def __iter__(self) -> Iterator[float]:
        return (self._get(i) for i in range(len(self)))

    def __contains__(self, value: object) -> bool:
        return any(v == value for v in self)


class FloatRange(_Axis1D):
    """``start, start+step, ...`` below ``stop`` (above it for a negative step), in
    floats: ``FloatRange(0, 1, 0.1)`` has 10 values. Each value is ``start + i*step``
    (no accumulated rounding)."""

    def __init__(self, start: float, stop: float, step: float):
        self.start = _number("start", start)
        self.stop = _number("stop", stop)
        self.step = _number("step", step)
        if self.step == 0:
            raise InvalidSpace("a float range's step must not be 0")
        # The 1e-9 keeps 0:1:0.1 at 10 values, not 11, despite 1/0.1 = 10.000000000000002.
        self._len = max(0, math.ceil((self.stop - self.start) / self.step - 1e-9))

    def __len__(self) -> int:
        return self._len

    def _get(self, index: int) -> float:
        return round(self.start + index * self.step, 12)

    def to_spec(self) -> dict:
        return {"kind": "frange", "start": self.start, "stop": self.stop, "step": self.step}

    def __repr__(self) -> str:
        return f"FloatRange({self.start}, {self.stop}, {self.step})"


class Linspace(_Axis1D):
    """``num`` evenly spaced floats from ``start`` to ``stop`` (included unless
    ``endpoint=False``), as numpy.linspace."""

    def __init__(self, start: float, stop: float, num: int, endpoint: bool = True):
        self.start = _number("start", start)
        self.stop = _number("stop", stop)
        self.num = _count("num", num)
        self.endpoint = bool(endpoint)

    def __len__(self) -> int:
        return self.num

    def _get(self, index: int) -> float:
        div = (self.num - 1) if self.endpoint else self.num
        if div <= 0:
            return self.start
        if self.endpoint and index == self.num - 1:
            return self.stop  # exactly, not start + (stop-start)*1.0 with rounding
        return self.start + (self.stop - self.start) * index / div

    def to_spec(self) -> dict:
        return {
            "kind": "linspace",
            "start": self.start,
            "stop": self.stop,
            "num": self.num,
            "endpoint": self.endpoint,
        }

    def __repr__(self) -> str:
        return f"Linspace({self.start}, {self.stop}, {self.num})"


class Logspace(_Axis1D):
    """``num`` log-evenly spaced floats from ``low`` to ``high`` inclusive (the values
    themselves, as numpy.geomspace, not exponents): ``Logspace(1e-4, 1e-1, 4)`` is
    1e-4, 1e-3, 1e-2, 1e-1. Both bounds must be > 0."""

    def __init__(self, low: float, high: float, num: int):
        self.low = _number("low", low)
        self.high = _number("high", high)
        self.num = _count("num", num)
        if self.low <= 0 or self.high <= 0:
            raise InvalidSpace(f"logspace bounds must be > 0, got {low!r} and {high!r}")

    def __len__(self) -> int:
        return self.num

    def _get(self, index: int) -> float:
        if self.num == 1 or index == 0:
            return self.low
        if index == self.num - 1:
            return self.high
        lo, hi = math.log(self.low), math.log(self.high)
        # 12 significant digits: 1e-3, not exp(log(...)) = 0.0010000000000000002
        return float(f"{math.exp(lo + (hi - lo) * index / (self.num - 1)):.12g}")

    def to_spec(self) -> dict:
        return {"kind": "logspace", "low": self.low, "high": self.high, "num": self.num}

    def __repr__(self) -> str:
        return f"Logspace({self.low}, {self.high}, {self.num})"


Sequence.register(_Axis1D)  # so that Grid takes them as axes


# Distributions of the sampled spaces: each maps u in [0, 1) to a value.


@dataclass(frozen=True)
class Uniform:
    """A float uniform in [low, high)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not _number("low", self.low) < _number("high", self.high):
            raise InvalidSpace(f"uniform needs low < high, got {self.low!r}, {self.high!r}")

    def at(self, u: float) -> float:
        return self.low + (self.high - self.low) * u

    def to_spec(self) -> dict:
        return {"dist": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform: [low, high), both > 0 (learning rates)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = _number("low", self.low), _number("high", self.high)
        if not 0 < low < high:
            raise InvalidSpace(f"loguniform needs 0 < low < high, got {low!r}, {high!r}")

    def at(self, u: float) -> float:
        lo, hi = math.log(self.low), math.log(self.high)
        return math.exp(lo + (hi - lo) * u)

    def to_spec(self) -> dict:
        return {"dist": "loguniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class RandInt:
    """An integer uniform in [low, high), as random.randrange."""

    low: int
    high: int

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidSpace(f"randint {name} must be an integer, got {value!r}")
        if not self.low < self.high:
            raise InvalidSpace(f"randint needs low < high, got {self.low}, {self.high}")

    def at(self, u: float) -> int:
        return min(self.high - 1, self.low + int(u * (self.high - self.low)))

    def to_spec(self) -> dict:
        return {"dist": "randint", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Choice:
    """One of ``options``, each equally likely."""

    options: tuple

    def __init__(self, options: Sequence[Any]):
        if isinstance(options, (str, bytes)) or not options:
            raise InvalidSpace(f"choice needs a non-empty list of options, got {options!r}")
        object.__setattr__(self, "options", tuple(options))

    def at(self, u: float) -> Any:
        return self.options[min(len(self.options) - 1, int(u * len(self.options)))]

    def to_spec(self) -> dict:
        return {"dist": "choice", "options": list(self.options)}


Distribution = Uniform | LogUniform | RandInt | Choice


def _dist_from_spec(spec: Any) -> Distribution:
    if not isinstance(spec, dict):
        raise InvalidSpace(f"a distribution spec must be an object, got {spec!r:.80}")
    kind = spec.get("dist")
    if kind == "uniform":
        return Uniform(spec["low"], spec["high"])
    if kind == "loguniform":
        return LogUniform(spec["low"], spec["high"])
    if kind == "randint":
        return RandInt(spec["low"], spec["high"])
    if kind == "choice":
        return Choice(spec["options"])
    raise InvalidSpace(
        f"unknown distribution {kind!r}; expected uniform, loguniform, randint or choice"
    )


def _check_dists(dists: Mapping[str, Any]) -> dict[str, Distribution]:
    if not dists:
        raise InvalidSpace("a sampled space needs at least one named distribution")
    out = {}
    for name, dist in dists.items():
        if not isinstance(name, str) or not name:
            raise InvalidSpace(f"names must be non-empty strings, got {name!r}")
        if not isinstance(dist, (Uniform, LogUniform, RandInt, Choice)):
            raise InvalidSpace(
                f"{name!r} must be Uniform, LogUniform, RandInt or Choice, got {dist!r}"
            )
        out[name] = dist
    return out


class RandomSample(Space):
    """``n`` points drawn at random from named distributions; a parameter is a dict.
    Point i depends only on (seed, i), so any point is computed on its own, the same in
    every process: ``RandomSample(100, {"lr": LogUniform(1e-4, 1e-1)}, seed=0)``."""

    def __init__(self, n: int, dists: Mapping[str, Distribution], seed: int = 0):
        self.n = _count("n", n)
        self.dists = _check_dists(dists)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidSpace(f"seed must be an integer, got {seed!r}")
        self.seed = seed

    def __len__(self) -> int:
        return self.n

    def _get(self, index: int) -> dict[str, Any]:
        # A string seed is hashed with SHA-512 by random.Random: stable across processes.
        rng = random.Random(f"ttg:{self.seed}:{index}")
        return {name: dist.at(rng.random()) for name, dist in self.dists.items()}

    def to_spec(self) -> dict:
        return {
            "kind": "random",
            "n": self.n,
            "seed": self.seed,
            "dists": {name: d.to_spec() for name, d in self.dists.items()},
        }

    def __repr__(self) -> str:
        return f"RandomSample({self.n}, {self.dists!r}, seed={self.seed})"


class QuasiRandom(Space):
    """``n`` points of a quasi-random design over named distributions, spread more
    evenly than random draws: ``method="sobol"`` (scrambled Sobol, lazily indexable) or
    ``"lhs"`` (Latin hypercube, built once per process). Needs scipy
    (``pip install 'ttg-ray[spaces]'``)."""

    def __init__(
        self, n: int, dists: Mapping[str, Distribution], method: str = "sobol", seed: int = 0
    ):
        self.n = _count("n", n)
        self.dists = _check_dists(dists)
        if method not in ("sobol", "lhs"):
            raise InvalidSpace(f"method must be 'sobol' or 'lhs', got {method!r}")
        self.method = method
        self.seed = int(seed)
        self._design: Any = None
        _qmc()  # fail now, not on a worker, when scipy is missing

    def __len__(self) -> int:
        return self.n

    def _get(self, index: int) -> dict[str, Any]:
        point = self._point(index)
        return {name: d.at(float(u)) for (name, d), u in zip(self.dists.items(), point)}

    def _point(self, index: int) -> Any:
        qmc = _qmc()
        d = len(self.dists)
        if self.method == "sobol":
            engine = qmc.Sobol(d, scramble=True, seed=self.seed)
            if index:
                engine.fast_forward(index)
            with warnings.catch_warnings():  # "balance needs n a power of 2": we know
                warnings.simplefilter("ignore")
                return engine.random(1)[0]
        if self._design is None:
            self._design = qmc.LatinHypercube(d, seed=self.seed).random(self.n)
        return self._design[index]

    def iter_slice(self, lo: int, hi: int) -> Iterator[dict[str, Any]]:
        if self.method != "sobol" or hi <= lo:
            return super().iter_slice(lo, hi)
        engine = _qmc().Sobol(len(self.dists), scramble=True, seed=self.seed)
        if lo:
            engine.fast_forward(lo)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            points = engine.random(hi - lo)
        items = list(self.dists.items())
        return ({name: d.at(float(u)) for (name, d), u in zip(items, p)} for p in points)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_design": None}  # rebuilt where it is used

    def to_spec(self) -> dict:
        return {
            "kind": "quasirandom",
            "n": self.n,
            "method": self.method,
            "seed": self.seed,
            "dists": {name: d.to_spec() for name, d in self.dists.items()},
        }

    def __repr__(self) -> str:
        return f"QuasiRandom({self.n}, {self.dists!r}, method={self.method!r})"


def _qmc() -> Any:
    try:
        from scipy.stats import qmc
    except ImportError as err:
        raise InvalidSpace(
            "QuasiRandom needs scipy: pip install 'ttg-ray[spaces]' (or use RandomSample)"
        ) from err
    return qmc


def from_spec(spec: dict) -> Space | None:
    """The space of one of this module's specs, or None for another kind."""
    kind = spec.get("kind")
    if kind == "frange":
        return FloatRange(spec["start"], spec["stop"], spec["step"])
    if kind == "linspace":
        return Linspace(spec["start"], spec["stop"], spec["num"], spec.get("endpoint", True))
    if kind == "logspace":
        return Logspace(spec["low"], spec["high"], spec["num"])
    if kind in ("random", "quasirandom"):
        dists = {name: _dist_from_spec(d) for name, d in spec["dists"].items()}
        if kind == "random":
            return RandomSample(spec["n"], dists, seed=spec.get("seed", 0))
        return QuasiRandom(spec["n"], dists, spec.get("method", "sobol"), spec.get("seed", 0))
    return None


_DISTS: dict[str, type[Uniform] | type[LogUniform]] = {
    "uniform": Uniform,
    "loguniform": LogUniform,
}
_AXIS_HELP = (
    "NAME=1,2,3 | NAME=START:STOP[:STEP] (floats allowed) | NAME=lin:START:STOP:NUM | "
    "NAME=log:LOW:HIGH:NUM"
)
_DIST_HELP = "NAME=uniform:LOW:HIGH | NAME=loguniform:LOW:HIGH | NAME=randint:LOW:HIGH | NAME=a,b,c"


def parse_axis_text(text: str, sampled: bool = False) -> tuple[str, Any]:
    """One --grid NAME=... as (name, axis); with ``sampled`` (--sample), as (name,
    distribution). InvalidSpace says what a well-formed one looks like."""
    from ttg_ray.core.params import parse_axis  # the integer and list forms

    name, sep, body = text.partition("=")
    name, body = name.strip(), body.strip()
    helptext = _DIST_HELP if sampled else _AXIS_HELP
    if not sep or not name or not body:
        raise InvalidSpace(f"--grid {text!r}: expected {helptext}")
    kind, _, rest = body.partition(":")
    parts = rest.split(":")
    try:
        if sampled:
            if kind in (*_DISTS, "randint"):
                if len(parts) != 2:
                    raise InvalidSpace(f"--grid {text!r}: {kind} takes LOW:HIGH")
                if kind == "randint":
                    return name, RandInt(int(parts[0]), int(parts[1]))
                return name, _DISTS[kind](float(parts[0]), float(parts[1]))
            if kind == "choice":
                body = rest
            elif ":" in body:
                raise InvalidSpace(f"--grid {text!r}: unknown distribution {kind!r}")
            return name, Choice(_list_items(text, body))
        if kind in ("lin", "log"):
            if len(parts) != 3:
                raise InvalidSpace(f"--grid {text!r}: {kind} takes START:STOP:NUM")
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            axis: Any = Linspace(start, stop, num) if kind == "lin" else Logspace(start, stop, num)
        elif ":" in body and "," not in body and any(c in body for c in ".eE"):
            numbers = [float(p) for p in body.split(":")]
            if len(numbers) != 3:
                raise InvalidSpace(f"--grid {text!r}: a float range takes START:STOP:STEP")
            axis = FloatRange(*numbers)
        elif ":" in body and "," not in body:
            name, axis = parse_axis(f"{name}={body}")
        else:
            axis = tuple(_list_items(text, body))
    except ValueError as err:
        raise InvalidSpace(f"--grid {text!r}: {err}; expected {helptext}") from None
    if len(axis) == 0:
        raise InvalidSpace(
            f"--grid {text!r} has no values (is STOP on the wrong side of START, or NUM 0?)"
        )
    return name, axis


def _list_items(text: str, body: str) -> list[Any]:
    """'1,2,x' -> [1, 2, 'x']: JSON where it parses, else the plain string. An empty
    item, or text among numbers, is a typo far more often than a wish."""
    import json

    items = [item.strip() for item in body.split(",")]
    if any(item == "" for item in items):
        raise InvalidSpace(f"--grid {text!r} has an empty value (two commas in a row?)")
    values = []
    for item in items:
        try:
            values.append(json.loads(item))
        except ValueError:
            values.append(item)
    plain = [i for i, v in zip(items, values) if isinstance(v, str) and not i.startswith('"')]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if plain and numbers:
        raise InvalidSpace(
            f"--grid {text!r} mixes numbers and text ({plain[0]!r}); if you mean the text, "
            f"quote it as JSON: '\"{plain[0]}\"'"
        )
    return values
