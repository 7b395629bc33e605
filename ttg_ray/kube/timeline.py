"""What a rehearsal's sweep did, host by host and phase by phase, from the Ray state API's
task attempts and nodes (as the dashboard serves them). Pure: no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CHUNK_TASK_PREFIX = "ttg "  # the Ray backend names each chunk task "ttg <chunk> ..."


@dataclass
class Attempt:
    """One attempt of one chunk task."""

    task_id: str
    attempt: int
    state: str
    ip: str
    start_s: float | None  # epoch seconds
    end_s: float | None
    created_s: float | None = None


@dataclass
class Timeline:
    attempts: list[Attempt]
    node_death_s: dict[str, float] = field(default_factory=dict)  # ip -> when marked DEAD

    def finished(self, after_s: float = 0.0, before_s: float = float("inf")) -> Counter:
        """Chunks finished per host IP in [after_s, before_s)."""
        return Counter(
            a.ip
            for a in self.attempts
            if a.state == "FINISHED" and a.end_s is not None and after_s <= a.end_s < before_s
        )

    def started(self, after_s: float, before_s: float = float("inf")) -> Counter:
        """Chunks that started and finished per host IP, started in [after_s, before_s)."""
        return Counter(
            a.ip
            for a in self.attempts
            if a.state == "FINISHED" and a.start_s is not None and after_s <= a.start_s < before_s
        )

    def lost_on(self, ip: str) -> set[str]:
        """Tasks that had an attempt on ``ip`` that never finished there."""
        return {a.task_id for a in self.attempts if a.ip == ip and a.state != "FINISHED"}

    def rerun_s(self, ip: str, killed_at_s: float) -> float | None:
        """From the kill of ``ip`` to the end of the last re-run of a chunk that was
        running there; None when none was."""
        lost = self.lost_on(ip)
        ends = [
            a.end_s
            for a in self.attempts
            if a.task_id in lost and a.state == "FINISHED" and a.end_s is not None
        ]
        return max(ends) - killed_at_s if ends else None

    def recovery_s(self, killed_at_s: float) -> float | None:
        """From the kill until every chunk already submitted then had finished: what the
        kill cost the sweep, chunks queued for the dead node included."""
        early = {a.task_id for a in self.attempts if (a.created_s or killed_at_s) < killed_at_s}
        ends = [
            a.end_s
            for a in self.attempts
            if a.task_id in early and a.state == "FINISHED" and a.end_s is not None
        ]
        return max(ends) - killed_at_s if ends else None


def _seconds(ms: object) -> float | None:
    return ms / 1000.0 if isinstance(ms, int | float) and ms > 0 else None


def build(tasks: Iterable[Mapping], nodes: Iterable[Mapping]) -> Timeline:
    """A Timeline from /api/v0/tasks?detail=1 and /api/v0/nodes?detail=1 rows."""
    ips = {n["node_id"]: n.get("node_ip", "?") for n in nodes}
    deaths = {
        n.get("node_ip", "?"): t
        for n in nodes
        if n.get("state") == "DEAD" and (t := _seconds(n.get("end_time_ms"))) is not None
    }
    attempts = [
        Attempt(
            task_id=t["task_id"],
            attempt=int(t.get("attempt_number") or 0),
            state=str(t.get("state")),
            ip=ips.get(t.get("node_id") or "", "?"),
            start_s=_seconds(t.get("start_time_ms")),
            end_s=_seconds(t.get("end_time_ms")),
            created_s=_seconds(t.get("creation_time_ms")),
        )
        for t in tasks
        if str(t.get("name", "")).startswith(CHUNK_TASK_PREFIX)
    ]
    return Timeline(attempts, deaths)


def report_lines(report: Mapping) -> list[str]:
    """A rehearsal's report (hosts, chunks per host and phase, the kill) as text lines."""
    lines = ["hosts:"]
    for h in report["hosts"]:
        got = report["chunks_per_host"].get(h["ip"], 0)
        lines.append(
            f"  {h['name']:<10} {h['ip']:<15} {h['role']:<7} cpus={h['cpus']} chunks={got}"
        )
    for key in ("before_kill", "after_kill", "after_add"):
        if key in report:
            lines.append(f"{key.replace('_', ' ')}: {dict(sorted(report[key].items()))}")
    if "killed" in report:
        took = {k: report.get(k) for k in ("rerun_s", "node_dead_after_s", "recovery_s")}
        took = {k: "-" if v is None else f"{v:.1f} s" for k, v in took.items()}
        lines.append(
            f"kill: {report['lost_with_node']} chunk(s) running on it, re-run after "
            f"{took['rerun_s']}; node marked dead after {took['node_dead_after_s']}; every "
            f"chunk in flight at the kill done after {took['recovery_s']}"
        )
    return lines
