"""`python -m ttg_ray.kube submit` against a real local `ray start --head` that this test
starts (own free ports, own temp dir) and stops: the same path as a port-forwarded KubeRay
head, minus Kubernetes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from tests.conftest import missing_service
from ttg_ray.kube.cli import main as kube_main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/gcs_healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _kill_tree(proc: subprocess.Popen, temp_dir: str) -> None:
    """Stop only what this test started: the `ray start` process group, then any process
    whose command line names this test's own temp dir (workers Ray spawned elsewhere)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for _ in range(2):
        for p in psutil.process_iter(["pid", "cmdline"]):
            if any(temp_dir in part for part in p.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    p.kill()
        time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_head():
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        missing_service("the `ray` command (pip install 'ray[default]')")
    temp_dir = f"/tmp/ttgs-{uuid.uuid4().hex[:8]}"
    port, dash = _free_port(), _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT))
    cmd = [
        ray_cli, "start", "--head", "--block",
        f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
        "--num-cpus=2", "--object-store-memory=100000000", f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]  # fmt: skip
    log = open(f"{temp_dir}.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill_tree(proc, temp_dir)
            log.close()
            pytest.fail(f"ray head did not come up; see {temp_dir}.log")
        time.sleep(1)
    try:
        yield url
    finally:
        _kill_tree(proc, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        Path(f"{temp_dir}.log").unlink(missing_ok=True)


def test_submit_sweep_succeeds_with_summary_and_complete_results(ray_head, tmp_path, capsys):
    out, summary = tmp_path / "results.jsonl", tmp_path / "summary.json"
    job_id = f"ttg-test-{uuid.uuid4().hex[:8]}"
    code = kube_main([
        "submit", "--address", ray_head, "--submission-id", job_id, "--",
        "--params", "300", "--chunk-size", "25", "--work-ms", "0", "--output", str(out),
        "--summary-json", str(summary), "--no-progress",
    ])  # fmt: skip
    logs = capsys.readouterr().out
    assert code == 0, logs
    from ray.job_submission import JobSubmissionClient

    assert str(JobSubmissionClient(ray_head).get_job_status(job_id).value) == "SUCCEEDED"
    assert "processed" in logs and "chunks per node" in logs
    indices = [json.loads(line)["index"] for line in out.read_text().splitlines()]
    assert sorted(indices) == list(range(300))
    data = json.loads(summary.read_text())
    assert data["processed"] == 300 and data["failed"] == 0 and data["chunks"] == 12


def test_submit_bad_sweep_returns_the_drivers_exit_code(ray_head, capsys):
    code = kube_main([
        "submit", "--address", ray_head, "--", "--params", "10", "--function", "no_such_mod:f",
        "--no-progress",
    ])  # fmt: skip
    assert code == 2, capsys.readouterr()


def test_submit_timeout_stops_the_job(ray_head, capsys):
    job_id = f"ttg-test-{uuid.uuid4().hex[:8]}"
    code = kube_main([
        "submit", "--address", ray_head, "--submission-id", job_id, "--timeout-s", "5", "--",
        "--params", "5000", "--chunk-size", "10", "--work-ms", "50", "--no-progress",
    ])  # fmt: skip
    assert code != 0, capsys.readouterr()
    from ray.job_submission import JobSubmissionClient

    assert str(JobSubmissionClient(ray_head).get_job_status(job_id).value) == "STOPPED"
    assert "stopping it" in capsys.readouterr().err


def test_submit_to_unreachable_dashboard_exits_3(capsys):
    code = kube_main(["submit", "--address", f"http://127.0.0.1:{_free_port()}", "--",
                         "--params", "1"])  # fmt: skip
    assert code == 3
    assert "cannot reach the Ray dashboard" in capsys.readouterr().err


def test_cli_entry_point_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "ttg_ray.kube", "submit", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "--address" in proc.stdout
