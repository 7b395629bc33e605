"""The chaos ledger: what a result file says happened, counted index by index.

Pure: it reads the JSON Lines output and the call logs, never the run's summary, so a
bug that makes the summary lie cannot make a scenario pass.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttg_ray.engine.store import read_store

FIELDS = (
    "backend",
    "scenario",
    "expected",
    "ok",
    "failed",
    "lost",
    "duplicated",
    "unexpected",
    "reexecuted",
    "recovery_s",
    "wall_s",
)


@dataclass
class Ledger:
    backend: str
    scenario: str
    expected: int
    ok: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    reexecuted: int = 0
    recovery_s: float | None = None  # None: the sweep never completed, so no recovery
    wall_s: float = 0.0
    failed_indices: list[int] = field(default_factory=list)
    designed_to_fail: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and self.ok + self.failed == self.expected
            and self.failed_indices == self.designed_to_fail
            and not self.problems
        )

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        line = {k: data[k] for k in FIELDS}
        line["recovery_s"] = None if self.recovery_s is None else round(self.recovery_s, 2)
        line["wall_s"] = round(self.wall_s, 2)
        line["pass"] = self.passed
        if not self.passed:
            line["why"] = self.reasons()
        return line

    def reasons(self) -> list[str]:
        why = list(self.problems)
        if self.failed_indices != self.designed_to_fail:
            why.append(
                f"failed {self.failed_indices[:10]}, designed to fail {self.designed_to_fail}"
            )
        if self.ok + self.failed != self.expected:
            why.append(f"ok + failed = {self.ok + self.failed}, expected {self.expected}")
        return why


def count(
    ledger: Ledger,
    output: Path,
    expected_value: Callable[[int], Any],
    calls: collections.Counter | None = None,
) -> Ledger:
    """Fill ``ledger`` from the result file of a sweep over the integers 0..expected-1.

    A record is unexpected if its index is outside the sweep, its parameter is not the
    one at that index, or its value is not the function's value there. An index seen
    more than once counts once per extra record as duplicated; one never seen is lost.
    ``calls`` (parameter -> times called) gives the re-executions.
    """
    seen: collections.Counter = collections.Counter()
    ok: set[int] = set()
    failed: set[int] = set()
    for record in read_store(output) if output.exists() else ():
        index = record.get("index")
        if not isinstance(index, int) or not 0 <= index < ledger.expected:
            ledger.unexpected += 1
            continue
        if record.get("param") != index:
            ledger.unexpected += 1
            continue
        seen[index] += 1
        if "error" in record:
            failed.add(index)
        elif record.get("value") == expected_value(index):
            ok.add(index)
        else:
            ledger.unexpected += 1
    ledger.duplicated = sum(c - 1 for c in seen.values())
    ledger.lost = ledger.expected - len(seen)
    ledger.ok, ledger.failed = len(ok), len(failed)
    ledger.failed_indices = sorted(failed)
    if calls is not None:
        ledger.reexecuted = sum(c - 1 for c in calls.values() if c > 1)
    return ledger


def markdown(ledgers: list[Ledger]) -> str:
    head = "| " + " | ".join(FIELDS) + " | pass |"
    lines = [head, "|" + "---|" * (len(FIELDS) + 1)]
    for led in ledgers:
        data = led.to_json_dict()
        cells = ["-" if data[k] is None else str(data[k]) for k in FIELDS]
        cells.append("yes" if led.passed else "**NO**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
