"""Chunks per host and phase, and the recovery times, from state-API rows."""

from __future__ import annotations

from ttg_ray.kube import timeline

NODES = [
    {"node_id": "a", "node_ip": "10.0.0.3", "state": "ALIVE"},
    {"node_id": "b", "node_ip": "10.0.0.4", "state": "DEAD", "end_time_ms": 130_000},
]


def _task(tid, attempt, state, node, start, end, created=0):
    return {
        "task_id": tid,
        "attempt_number": attempt,
        "name": f"ttg {tid} [0:10) of run",
        "state": state,
        "node_id": node,
        "start_time_ms": start * 1000,
        "end_time_ms": end * 1000,
        "creation_time_ms": created * 1000,
    }


TASKS = [
    _task("c1", 0, "FINISHED", "a", 90, 95, 89),
    _task("c2", 0, "FINISHED", "b", 90, 96, 89),
    _task("c3", 0, "FAILED", "b", 99, 101, 98),  # running on b when it was killed at 100
    _task("c3", 1, "FINISHED", "a", 101, 104, 98),
    _task("c4", 0, "FINISHED", "a", 131, 133, 99),  # queued for b until it was marked dead
    _task("c5", 0, "FINISHED", "a", 140, 141, 139),
    {"task_id": "x", "name": "_warm_up", "state": "FINISHED", "node_id": "a"},
]


def test_chunks_per_host_before_and_after():
    tl = timeline.build(TASKS, NODES)
    assert len(tl.attempts) == 6  # only chunk tasks
    assert tl.finished(before_s=100) == {"10.0.0.3": 1, "10.0.0.4": 1}
    assert tl.started(after_s=100) == {"10.0.0.3": 3}


def test_recovery_times():
    tl = timeline.build(TASKS, NODES)
    assert tl.lost_on("10.0.0.4") == {"c3"}
    assert tl.rerun_s("10.0.0.4", 100.0) == 4.0
    assert tl.recovery_s(100.0) == 33.0
    assert tl.node_death_s == {"10.0.0.4": 130.0}
    assert tl.rerun_s("10.0.0.3", 100.0) is None


def test_report_lines_name_every_host_and_the_kill():
    report = {
        "hosts": [
            {"name": "worker-0", "ip": "10.0.0.3", "role": "worker", "cpus": 1},
            {"name": "worker-1", "ip": "10.0.0.4", "role": "worker", "cpus": 1},
        ],
        "chunks_per_host": {"10.0.0.3": 7},
        "before_kill": {"10.0.0.3": 1, "10.0.0.4": 1},
        "killed": {"ip": "10.0.0.4"},
        "lost_with_node": 1,
        "rerun_s": 4.0,
        "node_dead_after_s": 30.0,
        "recovery_s": None,
    }
    text = "\n".join(timeline.report_lines(report))
    assert "worker-0   10.0.0.3" in text and "chunks=7" in text and "chunks=0" in text
    assert "re-run after 4.0 s; node marked dead after 30.0 s" in text
    assert "done after -" in text
