"""Results: per-parameter failures and chunk results, as backends hand them back."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.summary import ValueStats


@dataclass(frozen=True)
class ParamFailure:
    """A parameter whose function raised (or whose worker died), with its traceback."""

    index: int
    param: Any
    type: str
    message: str
    traceback: str = ""
    attempts: int = 1
    # False when running it again cannot help (its value cannot be written): no retry.
    retryable: bool = True

    def to_error(self) -> dict:
        return {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "attempts": self.attempts,
            "retryable": self.retryable,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ParamFailure:
        return cls(**data)


@dataclass(frozen=True)
class ChunkResult(Chunk):
    """What one execution of a chunk produced: the chunk (its identity and indices) and
    its outcome.

    ``values[k]`` belongs to the k-th index; for a failed index the value is None and
    ``failures`` holds why. ``compute_s`` is the time spent in the loop over parameters.
    """

    values: list[Any] = field(default_factory=list)
    failures: list[ParamFailure] = field(default_factory=list)
    compute_s: float = 0.0
    node: str = ""
    worker: str = ""
    # Non-empty when no result came back because the worker died every time it ran
    # the chunk (after the backend's own retries): the reason. The runner then splits
    # the chunk to find the parameter that kills its worker.
    lost: str = ""
    # Statistics of the numeric values, computed where the chunk ran (None: not known).
    stats: ValueStats | None = None

    @classmethod
    def of(cls, chunk: Chunk, **outcome: Any) -> ChunkResult:
        """The result of ``chunk`` with the given outcome fields."""
        return cls(**{f.name: getattr(chunk, f.name) for f in fields(Chunk)}, **outcome)

    def to_dict(self) -> dict:
        # Shallow: asdict() would copy every value one by one (slower than the chunk).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["indices"] = list(self.indices) if self.indices is not None else None
        data["failures"] = [asdict(f) for f in self.failures]
        # JSON has no inf/nan: without finite statistics the driver recomputes them
        data["stats"] = asdict(self.stats) if _finite_stats(self.stats) else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ChunkResult:
        data = dict(data)
        data["indices"] = tuple(data["indices"]) if data.get("indices") is not None else None
        data["failures"] = [ParamFailure.from_dict(f) for f in data.get("failures", [])]
        stats = data.get("stats")
        data["stats"] = (
            ValueStats(stats["count"], tuple(stats["partials"]), stats["low"], stats["high"])
            if stats
            else None
        )
        return cls(**data)


def _finite_stats(stats: ValueStats | None) -> bool:
    if stats is None:
        return False
    numbers = (*stats.partials, stats.low or 0, stats.high or 0)
    return all(isinstance(x, int) or math.isfinite(x) for x in numbers)
