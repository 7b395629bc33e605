"""python -m ttg_ray.run as a user runs it: exit codes, messages, output, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttg_ray import workloads
from ttg_ray.engine.store import read_store


def cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ttg_ray.run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "kafka"], "invalid choice: 'kafka'"),
        (["--params", "-5"], "expected an integer >= 0"),
        (["--params", "ten"], "expected an integer"),
        (["--chunk-size", "0"], "expected an integer >= 1"),
        (["--workers", "1.5"], "expected an integer"),
        (["--range", "10"], "START:STOP"),
        (["--range", "0:10:0"], "step must not be 0"),
        (["--grid", "x"], "NAME=1,2,3"),
        (["--grid", "x=1,2", "--grid", "x=3"], "only once"),
        (["--params", "5", "--range", "0:5"], "only one of"),
        (["--values", "{not json"], "JSON list"),
        (["--function", "no_such_mod_abc:f"], "cannot import module 'no_such_mod_abc'"),
        (["--function", "ttg_ray.workloads:missing"], "has no attribute 'missing'"),
        (["--function", "ttg_ray.workloads:CPU_ITERATIONS_PER_MS"], "not a function"),
        (["--function", "json:dumps", "--work-ms", "3"], "takes no work_ms"),
        (["--kwargs", "[1]"], "JSON object"),
        (["--kwargs", '{"bogus": 1}'], "--kwargs do not fit"),
        (["--backend", "redis", "--redis-url", "http://127.0.0.1:6379"], "not a Redis URL"),
        (["--backend", "rabbitmq", "--amqp-url", "redis://x"], "not an AMQP URL"),
        (["--output", "/tmp"], "is a directory"),
        (["--resume"], "--resume needs --output"),
        (["--retry-failed"], "--retry-failed needs --output"),
        (["--output", "/proc/forbidden/out.jsonl"], "cannot write"),
        (["--summary-json", "/proc/forbidden/s.json"], "cannot write there"),
        (["--summary-json", "/"], "cannot write there"),
        (["--workrs", "2"], "unrecognized arguments: --workrs 2; did you mean --workers?"),
        (["--max-retry=2"], "did you mean --max-retries?"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(args, message):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    problems = [line for line in proc.stderr.splitlines() if " INFO " not in line]
    assert len(problems) == 1 and problems[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_file_from_another_sweep_is_refused(tmp_path):
    out = tmp_path / "other.jsonl"
    out.write_text('{"index": 3, "param": 103, "value": 1.0}\n')
    proc = cli("--params", "10", "--output", str(out), "--resume")
    assert proc.returncode == 2
    assert "not a ttg_ray result file" in proc.stderr
    assert out.read_text() == '{"index": 3, "param": 103, "value": 1.0}\n'  # left untouched


def test_queue_backend_unreachable_exits_3_with_masked_url():
    proc = cli(
        "--backend", "redis", "--redis-url", "redis://user:s3cret@127.0.0.1:1/0", "--params", "5"
    )
    assert proc.returncode == 3, proc.stderr
    assert "cannot reach Redis at redis://user:***@127.0.0.1:1/0" in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_failing_parameter_gives_exit_1_and_is_listed(tmp_path):
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    proc = cli(
        "--params", "200", "--function", "ttg_ray.workloads:faulty",
        "--kwargs", '{"fail_params": [42]}', "--max-retries", "1", "--no-dashboard",
        "--output", str(out), "--summary-json", str(summary), "--log-format", "json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "failed: index 42 param 42: ValueError" in proc.stdout
    records = list(read_store(out))
    assert sorted(r["index"] for r in records) == list(range(200))
    bad = next(r for r in records if r["index"] == 42)
    assert bad["error"]["attempts"] == 2 and "Traceback" in bad["error"]["traceback"]
    data = json.loads(summary.read_text())
    assert (data["processed"], data["failed"], data["failed_indices"]) == (200, 1, [42])
    events = [
        json.loads(line).get("event") for line in proc.stderr.splitlines() if line.startswith("{")
    ]
    assert {"starting", "initialized", "running", "completed"} <= set(events)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_with_only_the_missing_indices(tmp_path, sig):
    out = tmp_path / "out.jsonl"
    n = 6000
    args = [
        sys.executable, "-m", "ttg_ray.run", "--params", str(n), "--work-ms", "2",
        "--chunk-size", "50", "--workers", "2", "--no-dashboard", "--output", str(out),
    ]  # fmt: skip
    # Its own session, so that SIGKILL takes the driver's local Ray down with it.
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while _lines(out) < n // 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"--resume" in stderr
        os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None
    done_before = {r["index"] for r in _records(out) if r}
    assert 0 < len(done_before) < n

    summary = tmp_path / "summary.json"
    resumed = cli(*args[3:], "--resume", "--summary-json", str(summary))
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(summary.read_text())
    assert data["skipped_resumed"] >= len(done_before) - 1  # a torn last line is redone
    assert data["processed"] == n - data["skipped_resumed"]
    indices = [r["index"] for r in _records(out)]
    assert sorted(indices) == list(range(n)), "every index exactly once"
    values = {r["index"]: r["value"] for r in _records(out)}
    assert values == {i: workloads.seed_placeholder(i, 0) for i in range(n)}


def _records(path: Path) -> list[dict]:
    """The result lines after the header; a torn last line as {}."""
    lines = path.read_text().splitlines()[1:]
    return [json.loads(line) if line.endswith("}") else {} for line in lines]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
