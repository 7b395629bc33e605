"""The run summary: counts, value statistics and chunks per node."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and not (type(value) is float and math.isnan(value))


def exact_partials(values: Iterable[float], total: float | None = None) -> tuple[float, ...]:
    """Floats whose exact sum is the exact sum of ``values``: the correctly rounded sum,
    then the correctly rounded remainder, until nothing remains. So sums of chunks merge
    exactly: ``math.fsum`` of every chunk's partials is ``math.fsum`` of every value.
    Each step is one C-speed ``math.fsum`` pass; two or three suffice in practice.
    ``total``, when the caller has it, is ``math.fsum(values)`` (one pass saved)."""
    values = values if isinstance(values, list) else list(values)
    parts: list[float] = [] if total is None or not math.isfinite(total) else [total]
    try:
        for _ in range(80):  # each remainder is below half an ulp of the last: this ends
            rest = math.fsum(itertools.chain(values, (-p for p in parts)))
            if rest == 0.0 or not math.isfinite(rest):
                if rest != 0.0 or not parts:
                    parts.append(rest)
                break
            parts.append(rest)
    except OverflowError:  # fsum overflows on the way (huge values, maybe cancelling)
        return _partials_of(_exact_sum(values))
    return tuple(parts)


MAX_PARTS = 64  # an exact sum needing more floats than this counts as overflowed


def _exact_sum(values: Iterable[float]) -> Fraction:
    """The exact sum (OverflowError for an inf, ValueError for a NaN: no exact sum)."""
    return sum(map(Fraction, values), Fraction(0))


def _infinity_of(numbers: list[float]) -> float:
    """The infinite sum of ``numbers``: the sign of their infinities, else of their sum."""
    infinite = [x for x in numbers if math.isinf(x)]
    if infinite:
        return infinite[0]
    return math.inf if _exact_sum(numbers) > 0 else -math.inf


def _partials_of(exact: Fraction) -> tuple[float, ...]:
    """Floats that add up to ``exact``: its rounding, then the rest's, and so on; a sum
    beyond the largest float is carried as several floats (OverflowError past
    MAX_PARTS of them)."""
    parts: list[float] = []
    while len(parts) < MAX_PARTS:
        try:
            part = float(exact)
        except OverflowError:
            part = sys.float_info.max if exact > 0 else -sys.float_info.max
        parts.append(part)
        exact -= Fraction(part)
        if exact == 0:
            return tuple(parts)
    raise OverflowError("the sum is out of the float range")


@dataclass(frozen=True)
class ValueStats:
    """Count, exact sum (as partials), min and max of the numeric values of a chunk:
    computed where the chunk ran, merged on the driver without a pass over the values."""

    count: int = 0
    partials: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: list[Any]) -> ValueStats:
        """The statistics of ``values``; non-numbers (and NaN) are left out."""
        if not values:
            return cls()
        total: float | None
        try:  # all numbers, the common case: C speed, no per-value Python code
            total, low, high = math.fsum(values), min(values), max(values)
            numbers = values
            # bools, and numpy 0-d arrays that fsum and min accept, are not numbers here
            if math.isnan(total) or not (_is_number(low) and _is_number(high)):
                raise TypeError("needs filtering")
        except (TypeError, OverflowError, ValueError):  # ValueError: inf + -inf
            numbers, total = [v for v in values if _is_number(v)], None
            if not numbers:
                return cls()
            low, high = min(numbers), max(numbers)
        try:
            partials = exact_partials(numbers, total)
        except OverflowError:  # an infinity, or a sum far beyond the float range
            partials = (_infinity_of(numbers),)
        except ValueError:  # both infinities: the sum is not a number
            partials = (math.nan,)
        return cls(len(numbers), partials, low, high)

    def merge(self, other: ValueStats) -> ValueStats:
        if not other.count:
            return self
        if not self.count:
            return other
        partials = self.partials + other.partials
        if len(partials) > 32:  # keep it short; exactly the same sum
            with contextlib.suppress(OverflowError, ValueError):
                partials = exact_partials(partials)
        return ValueStats(
            self.count + other.count,
            partials,
            min(self.low, other.low),  # type: ignore[type-var]
            max(self.high, other.high),  # type: ignore[type-var]
        )

    @property
    def total(self) -> float:
        try:
            return math.fsum(self.partials)
        except ValueError:  # inf + -inf
            return math.nan
        except OverflowError:  # on the way; the sum itself may still be a float
            pass
        try:
            return float(_exact_sum(self.partials))
        except OverflowError:  # an infinite partial, or a sum beyond the float range
            return _infinity_of(list(self.partials))


@dataclass
class Summary:
    """Counts and value statistics of a run, printed as a table and saved as JSON."""

    backend: str
    run_id: str
    total: int = 0
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped_resumed: int = 0
    duplicates_discarded: int = 0
    retries: int = 0
    chunks: int = 0
    duration_s: float = 0.0
    startup_s: float = 0.0
    stats: ValueStats = field(default_factory=ValueStats)
    chunks_per_node: Counter = field(default_factory=Counter)
    failed_indices: list[int] = field(default_factory=list)

    @property
    def params_per_second(self) -> float:
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def numeric_count(self) -> int:
        return self.stats.count

    @property
    def value_sum(self) -> float:
        return self.stats.total

    @property
    def value_min(self) -> float | None:
        return self.stats.low

    @property
    def value_max(self) -> float | None:
        return self.stats.high

    @property
    def value_avg(self) -> float | None:
        return self.value_sum / self.numeric_count if self.numeric_count else None

    def add_values(self, values: list[Any]) -> None:
        """Fold successful values into the statistics (non-numbers are left out)."""
        self.stats = self.stats.merge(ValueStats.of(values))

    def add_stats(self, stats: ValueStats) -> None:
        """Fold statistics computed where a chunk ran."""
        self.stats = self.stats.merge(stats)

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "run_id": self.run_id,
            "total": self.total,
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped_resumed": self.skipped_resumed,
            "duplicates_discarded": self.duplicates_discarded,
            "retries": self.retries,
            "chunks": self.chunks,
            "duration_s": round(self.duration_s, 4),
            "startup_s": round(self.startup_s, 4),
            "params_per_second": round(self.params_per_second, 2),
            "sum": self.value_sum if self.numeric_count else None,
            "avg": self.value_avg,
            "min": self.value_min,
            "max": self.value_max,
            "chunks_per_node": dict(sorted(self.chunks_per_node.items())),
            "failed_indices": self.failed_indices[:1000],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format_table(self) -> str:
        d = self.to_dict()
        rows = [
            ("backend", d["backend"]),
            ("run id", d["run_id"]),
            ("parameters", f"{d['total']:,}"),
            ("processed", f"{d['processed']:,}"),
            ("succeeded", f"{d['succeeded']:,}"),
            ("failed", f"{d['failed']:,}"),
            ("skipped (resumed)", f"{d['skipped_resumed']:,}"),
            ("duplicates discarded", f"{d['duplicates_discarded']:,}"),
            ("retries", f"{d['retries']:,}"),
            ("chunks", f"{d['chunks']:,}"),
            ("start-up", f"{d['startup_s']:.2f} s"),
            ("duration", f"{d['duration_s']:.2f} s"),
            ("throughput", f"{d['params_per_second']:,.1f} params/s"),
            ("sum", _fmt(d["sum"])),
            ("avg", _fmt(d["avg"])),
            ("min", _fmt(d["min"])),
            ("max", _fmt(d["max"])),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines.append("chunks per node:")
        lines += [f"  {node:<{width}}{count:>8,}" for node, count in d["chunks_per_node"].items()]
        if self.failed_indices:
            shown = ", ".join(map(str, self.failed_indices[:20]))
            more = len(self.failed_indices) - 20
            lines.append(f"failed indices: {shown}" + (f" (+{more} more)" if more > 0 else ""))
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"
