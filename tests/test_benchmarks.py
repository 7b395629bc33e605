"""Smoke tests of benchmarks.compare and benchmarks.chaos at tiny sizes, so they cannot
rot: the ledger is checked for real (nothing lost or duplicated); no timing asserts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import chaos, compare, report
from benchmarks.chaos_ledger import FIELDS, Ledger, count
from benchmarks.report import ScalePoint, WorkloadResult
from benchmarks.systems import Timing
from ttg_ray.workloads import seed_placeholder

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def value(i: int) -> float:
    return seed_placeholder(i, 0)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    header = json.dumps({"ttg_ray": "0.1.0"}) + "\n"  # what makes it a result file
    path.write_text(header + "".join(json.dumps(r) + "\n" for r in records))
    return path


def test_ledger_counts_lost_duplicated_and_unexpected_from_the_file(tmp_path):
    records = [{"index": i, "param": i, "value": value(i)} for i in range(10) if i != 4]
    records.append({"index": 2, "param": 2, "value": value(2)})  # a duplicate
    records.append({"index": 7, "param": 7, "value": -1.0})  # a wrong value
    records.append({"index": 12, "param": 12, "value": value(12)})  # outside the sweep
    records.append({"index": 5, "param": 5, "error": {"type": "ValueError"}})
    out = write_jsonl(tmp_path / "out.jsonl", records)
    ledger = count(Ledger("ray", "made-up", 10), out, value, calls=None)
    assert (ledger.lost, ledger.duplicated, ledger.unexpected) == (1, 3, 2)
    assert ledger.failed_indices == [5]
    assert not ledger.passed


def test_a_clean_file_passes_only_with_the_designed_failures(tmp_path):
    records = [{"index": i, "param": i, "value": value(i)} for i in range(10) if i != 3]
    records.append({"index": 3, "param": 3, "error": {"type": "ValueError"}})
    out = write_jsonl(tmp_path / "out.jsonl", records)
    ledger = count(Ledger("redis", "always-raises", 10), out, value)
    assert (ledger.ok, ledger.failed, ledger.lost, ledger.duplicated) == (9, 1, 0, 0)
    assert not ledger.passed  # failed a parameter nobody designed to fail
    ledger.designed_to_fail = [3]
    assert ledger.passed
    line = ledger.to_json_dict()
    assert set(FIELDS) <= set(line)
    assert line["pass"] is True and line["expected"] == 10


def test_tables_and_targets_from_made_up_timings():
    runs = {
        "serial loop": [Timing("serial loop", 100, 0, 1.0, 0)],
        "multiprocessing.Pool.map": [Timing("p", 1000, 0, 1.0, 0)],
        "ttg_ray ray": [Timing("t", 1000, 2.0, 2.0, 0), Timing("t", 1000, 2.0, 1.0, 0)],
    }
    w0 = WorkloadResult("W0", "trivial", 2, runs)
    table = report.workload_table(w0)
    assert "| ttg_ray ray | 750 | 500-1,000 | 3.75 | 1.00 | 2.00 |" in table
    points = [ScalePoint("ray", 10, [100.0], [50.0]), ScalePoint("ray", 100, [95.0], [52.0])]
    targets = report.targets({"W0": w0}, points)
    assert "W0 ttg_ray ray vs Pool.map: 0.750x (>= 0.8): MISSED" in targets
    assert "throughput 0.950x (>= 0.90): met; peak memory 1.040x (<= 1.10): met" in targets


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_compare_quick_on_ray(tmp_path):
    args = ["--quick", "--repeat", "1", "--workloads", "W0", "--systems", "serial,pool,ray"]
    args += ["--out-dir", str(tmp_path)] + ([] if HAVE_MATPLOTLIB else ["--no-plots"])
    assert compare.main(args) == 0
    (md,) = tmp_path.glob("*-quick.md")
    text = md.read_text()
    assert "| ttg_ray ray |" in text and "| multiprocessing.Pool.map |" in text
    assert "W0 ttg_ray ray vs Pool.map" in text
    if HAVE_MATPLOTLIB:
        assert list(tmp_path.glob("*-throughput.png"))


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_compare_quick_on_the_queues(tmp_path, monkeypatch, redis_url, amqp_url):
    monkeypatch.setenv("TTG_REDIS_URL", redis_url)
    monkeypatch.setenv("TTG_AMQP_URL", amqp_url)
    args = ["--quick", "--repeat", "1", "--workloads", "W1,Scale"]
    args += ["--systems", "serial,redis,rabbitmq", "--backends", "redis", "--no-plots"]
    assert compare.main([*args, "--out-dir", str(tmp_path)]) == 0
    text = next(tmp_path.glob("*-quick.md")).read_text()
    assert "| ttg_ray redis |" in text and "| ttg_ray rabbitmq |" in text
    assert "| ttg_ray redis | 20,000 |" in text  # the Scale row: the file held every line
    assert "skipped" not in text


def run_chaos(capsys, tmp_path, *args: str) -> list[dict]:
    code = chaos.main([*args, "--quick", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    # Ray may print its own lines to stdout too; the ledger lines are JSON objects.
    lines = [json.loads(line) for line in out if line.startswith('{"backend"')]
    for line in lines:
        assert line["lost"] == 0 and line["duplicated"] == 0 and line["unexpected"] == 0, line
        assert line["ok"] + line["failed"] == line["expected"], line
        assert line["pass"], line
    assert code == 0
    assert list(tmp_path.glob("*-chaos-quick.md"))
    return lines


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_chaos_quick_on_ray(capsys, tmp_path):
    (line,) = run_chaos(capsys, tmp_path, "--backends", "ray", "--scenarios", "kill-worker-30pct")
    assert line["scenario"] == "kill-worker-30pct" and line["expected"] == 3000


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_chaos_quick_on_the_queues(capsys, tmp_path, redis_url, amqp_url):
    lines = run_chaos(
        capsys,
        tmp_path,
        "--backends",
        "redis,rabbitmq",
        "--scenarios",
        "kill-worker-30pct,param-always-raises,bad-messages",
        "--redis-url",
        redis_url,
        "--amqp-url",
        amqp_url,
    )
    assert len(lines) == 6
    raised = [line for line in lines if line["scenario"] == "param-always-raises"]
    assert all(line["failed"] == 1 for line in raised)
