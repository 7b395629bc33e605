"""Smoke tests of benchmarks.compare and benchmarks.chaos at tiny sizes, so they cannot
rot: the ledger is checked for real (nothing lost or duplicated); no timing asserts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import chaos, compare, plan_cost, report, results_output
from benchmarks.chaos_ledger import FIELDS, Ledger, count
from benchmarks.report import Machine, ScalePoint, WorkloadResult
from benchmarks.startup import StartupRow
from benchmarks.systems import Timing, WrongValues, digest
from ttg_ray.workloads import array_value, heavy_tail, seed_placeholder

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
        "parallel compute only": [Timing("c", 1000, 0, 0.8, 0)],
        "ttg_ray ray": [Timing("t", 1000, 2.0, 2.0, 0), Timing("t", 1000, 2.0, 1.0, 0)],
    }
    w0 = WorkloadResult("W0", "trivial", 2, runs, chunk_size=500)
    w0.usage = {"ttg_ray ray": "adaptive chunks"}
    table = report.workload_table(w0)
    assert "| ttg_ray ray | adaptive chunks | 750 | 500-1,000 | 3.75 | 1.00 | 2.00 |" in table
    assert "ttg_ray's chunk for this work: 500 parameters." in table
    points = [ScalePoint("ray", 10, [100.0], [50.0]), ScalePoint("ray", 100, [95.0], [52.0])]
    targets = report.targets({"W0": w0}, points)
    assert "W0 ttg_ray ray vs Pool.map: 0.750x (>= 1.3): MISSED" in targets
    assert "W0 parallel compute only vs Pool.map: 1.250x (the most any system gets)" in targets
    assert "W0 ttg_ray ray: 3.750 of ideal (>= 0.5): met" in targets
    assert "W0 ttg_ray ray vs the fastest peer (multiprocessing.Pool.map): 0.750x" in targets
    assert "throughput 0.950x (>= 0.90): met; peak memory 1.040x (<= 1.10): met" in targets


def startup_rows() -> list[StartupRow]:
    return [
        StartupRow("multiprocessing.Pool", [0.1, 0.3, 0.2], [0.05], [60.0], [40.0], 3),
        StartupRow("ttg_ray ray", [5.0], [0.5], [900.0], [600.0], 12),
    ]


def test_startup_table_from_made_up_rows():
    table = report.startup_table(startup_rows())
    assert "| multiprocessing.Pool | 0.20 (0.10-0.30) | 0.05 | 40 | 60 | 3 |" in table
    assert "| ttg_ray ray | 5.00 | 0.50 | 600 | 900 | 12 |" in table


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib (the bench extra) is not installed")
def test_one_figure_per_family_with_the_machine_on_it(tmp_path):
    runs = {
        "serial loop": [Timing("s", 100, 0, 1.0, 0)],
        "ttg_ray ray": [Timing("t", 1000, 2.0, 6.0, 0)],
        "Dask client.map": [Timing("d", 1000, 1.0, 20.0, 0)],
    }
    runs["multiprocessing.Pool.map"] = [Timing("p", 1000, 0.1, 3.0, 0)]
    usage = {"Dask client.map": "naive: one a task", "multiprocessing.Pool.map": "default (x: y)"}
    w = WorkloadResult("W1", "made up", 2, runs, usage=usage)
    points = [ScalePoint("ray", 10, [100.0], [50.0]), ScalePoint("ray", 100, [95.0], [52.0])]
    machine = Machine("testhost", "2026-01-02", 2, "3.11")
    pngs = report.plot({"W1": w}, points, startup_rows(), tmp_path / "x", machine)
    assert [p.name for p in pngs] == ["x-throughput.png", "x-startup.png", "x-memory.png"]
    assert all(p.stat().st_size > 10_000 for p in pngs)
    assert str(machine) == "testhost, 2 cores, Python 3.11, 2026-01-02"


def test_digest_is_exact_for_arrays_and_refuses_lists():
    a, b = array_value(3, size=100), array_value(3, size=100)
    assert a.dtype == "float64" and a.shape == (100,) and digest([a]) == digest([b])
    flipped = a.copy()
    flipped.view("uint64")[7] ^= 1  # one bit of one value
    assert digest([flipped]) != digest([a])
    assert digest([a.astype("float32")]) != digest([a])
    with pytest.raises(WrongValues):
        digest([a.tolist()])
    assert digest([1.5, 2.5]) == 4.0


def test_heavy_tail_is_slow_only_at_the_end_and_keeps_the_values():
    w4 = next(w for w in compare.WORKLOADS if w.key == "W4")
    assert heavy_tail(5, n=100, fast_ms=0, slow_ms=0) == seed_placeholder(5, 0)
    # The serial reference is timed on a strided sample: it keeps the 5 % slow tail.
    sample = w4.params("serial", w4.n)
    slow = sum(1 for i in sample if i >= w4.n - w4.n // 20)
    assert len(sample) == 2_000 and slow == 100


def test_chunked_usages_equal_to_the_naive_one_at_chunks_of_one_are_left_out():
    notes: list[str] = []
    w6 = next(w for w in compare.WORKLOADS if w.key == "W6")
    keys = compare._systems_for(w6, ["ppe", "ppe-chunks", "ray-tasks", "dask-bag"], 1, notes)
    assert keys == ["ppe", "dask-bag"]  # dask-bag's naive twin (dask) was not asked for
    assert any("the same as ProcessPoolExecutor.map" in n for n in notes)
    assert any("plain Ray tasks of 100 would run" in n for n in notes)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_compare_quick_on_ray(tmp_path):
    args = ["--quick", "--repeat", "1", "--workloads", "W0,W5,W7,Startup"]
    args += ["--systems", "serial,compute-only,pool,ray", "--startup-systems", "serial,pool"]
    args += ["--out-dir", str(tmp_path)] + ([] if HAVE_MATPLOTLIB else ["--no-plots"])
    assert compare.main(args) == 0
    (md,) = tmp_path.glob("*-quick.md")
    text = md.read_text()
    assert "| ttg_ray ray | adaptive chunks |" in text and "| multiprocessing.Pool.map |" in text
    assert "W0 ttg_ray ray vs Pool.map" in text and "W7 ttg_ray ray vs Pool.map" in text
    assert "W7 parallel compute only vs Pool.map" in text
    # W5: every array came back bit for bit, on Ray too
    w5 = text[text.index("### W5") :]
    systems = (
        "multiprocessing.Pool.map, parallel compute only, serial loop, the function itself, "
        "ttg_ray ray"
    )
    assert f"Same values from: {systems}." in w5
    assert "| python alone (serial loop) |" in text and "| multiprocessing.Pool |" in text
    raw = json.loads(next(tmp_path.glob("*-quick.json")).read_text())
    assert {r["system"] for r in raw["Startup"]} == {
        "python alone (serial loop)",
        "multiprocessing.Pool",
    }
    assert all(r["pss_mb"][0] > 0 and r["cold_s"][0] > 0 for r in raw["Startup"])
    if HAVE_MATPLOTLIB:
        for family in ("throughput", "startup", "memory"):
            assert list(tmp_path.glob(f"*-{family}.png")), family


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


def test_results_output_writes_and_reads_back_both_formats():
    table = results_output.store_table(3000, check=True)  # check: every row read back
    rows = table.splitlines()[4:]  # after the title, a blank line and the header
    assert [row.split("|")[1].strip() for row in rows] == ["jsonl", "parquet"]


def test_plan_cost_times_the_four_sweeps_of_the_same_cut(capsys):
    assert plan_cost.main(["--repeat", "1", "--workload", "W5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("W5: 2,000 parameters, each returns a numpy array")
    assert out[1].startswith("the automatic plan cut ")
    rows = [line.split("|")[1].strip() for line in out[4:]]
    assert rows == list(plan_cost.ROWS)
    assert all(float(line.split("|")[2]) > 0 for line in out[4:])
