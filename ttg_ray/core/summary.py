"""The run summary: counts, value statistics and chunks per node."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and not (type(value) is float and math.isnan(value))


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
    numeric_count: int = 0
    value_sum: float = 0.0
    value_min: float | None = None
    value_max: float | None = None
    chunks_per_node: Counter = field(default_factory=Counter)
    failed_indices: list[int] = field(default_factory=list)

    @property
    def params_per_second(self) -> float:
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def value_avg(self) -> float | None:
        return self.value_sum / self.numeric_count if self.numeric_count else None

    def add_values(self, values: list[Any]) -> None:
        """Fold successful values into the statistics (non-numbers are left out)."""
        if not values:
            return
        try:  # all numbers, the common case: C speed, no per-value Python code
            total, low, high = math.fsum(values), min(values), max(values)
            count = len(values)
            # bools, and numpy 0-d arrays that fsum and min accept, are not numbers here
            if math.isnan(total) or not (_is_number(low) and _is_number(high)):
                raise TypeError("needs filtering")
        except (TypeError, ValueError):  # ValueError: min() over numpy arrays
            numbers = [v for v in values if _is_number(v)]
            if not numbers:
                return
            total, low, high, count = math.fsum(numbers), min(numbers), max(numbers), len(numbers)
        self.numeric_count += count
        self.value_sum += total
        self.value_min = low if self.value_min is None else min(self.value_min, low)
        self.value_max = high if self.value_max is None else max(self.value_max, high)

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
