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
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import missing_service
from tests.support.brokers import free_port
from tests.support.tools import find_tool
from ttg_ray.engine.store import read_store
from ttg_ray.kube.cli import main as kube_main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[1]


def _healthy(url: str, path: str = "/api/gcs_healthz") -> bool:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=2) as resp:
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


def _listening_in(temp_dir: str, *ports: int) -> bool:
    """True when our head's own processes (their command lines name ``temp_dir``) listen
    on ``ports``: a free port picked earlier can be taken by another Ray on this shared
    machine, whose dashboard would then answer the health checks instead of ours."""
    owners = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports and conn.pid:
            with contextlib.suppress(psutil.Error):
                owners[conn.laddr.port] = " ".join(psutil.Process(conn.pid).cmdline())
    return all(temp_dir in owners.get(port, "") for port in ports)


@contextlib.contextmanager
def running_head(**auth_env: str) -> Iterator[tuple[str, int]]:
    """A real `ray start --head` on free ports in its own temp dir, with ``auth_env`` (e.g.
    RAY_AUTH_MODE=token, RAY_AUTH_TOKEN=...) in its environment; yields the dashboard URL
    and the dashboard agent's port (where KubeRay's probes go), and stops it by PID."""
    ray_cli = find_tool("ray")
    if ray_cli is None:
        missing_service("the `ray` command (pip install 'ray[default]')")
    temp_dir = f"/tmp/ttgs-{uuid.uuid4().hex[:8]}"
    port, dash, agent = free_port(), free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update({"RAY_AUTH_MODE": "disabled", **auth_env})
    cmd = [
        ray_cli, "start", "--head", "--block",
        f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={agent}", f"--metrics-export-port={free_port()}",
        "--num-cpus=2", "--object-store-memory=100000000", f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]  # fmt: skip
    log = open(f"{temp_dir}.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    # Ready as KubeRay's readiness probe sees it: the dashboard, and the node's agent (jobs
    # are refused with "No available agent" until the agent is up).
    while not (
        _healthy(url)
        and _healthy(f"http://127.0.0.1:{agent}", "/api/healthz")
        and _listening_in(temp_dir, dash)  # the agent renames itself: its cmdline won't do
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill_tree(proc, temp_dir)
            log.close()
            pytest.fail(f"ray head did not come up; see {temp_dir}.log")
        time.sleep(1)
    try:
        yield url, agent
    finally:
        _kill_tree(proc, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        Path(f"{temp_dir}.log").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ray_head():
    with running_head() as (url, _agent):
        yield url


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
    indices = [r["index"] for r in read_store(out)]
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
    captured = capsys.readouterr()
    assert code == 1, captured  # documented in `submit --help`: STOPPED exits 1
    from ray.job_submission import JobSubmissionClient

    assert str(JobSubmissionClient(ray_head).get_job_status(job_id).value) == "STOPPED"
    assert captured.err.count("stopping it") == 1, captured.err  # stopped once, not twice
    assert f"job {job_id}: STOPPED" in captured.err


def test_submit_to_unreachable_dashboard_exits_3(capsys):
    code = kube_main(["submit", "--address", f"http://127.0.0.1:{free_port()}", "--",
                         "--params", "1"])  # fmt: skip
    assert code == 3
    assert "cannot reach the Ray dashboard" in capsys.readouterr().err


def test_cli_entry_point_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "ttg_ray.kube", "submit", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "--address" in proc.stdout


class DroppingProxy:
    """A TCP forwarder standing in for `kubectl port-forward`: passes everything through to
    the dashboard, except that the first log-stream (WebSocket) connection is reset as soon
    as the first log lines have gone through, as when the port-forward's pod connection
    breaks. Later connections, the status polls included, go through untouched."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        first = client.recv(65536)
        with self._lock:
            victim = b"/logs/tail" in first and self.dropped == 0
            if victim:
                self.dropped = 1
        upstream.sendall(first)
        pump = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
        pump.start()
        seen = b""
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)
                seen += data
                header_end = seen.find(b"\r\n\r\n")
                if victim and header_end >= 0 and len(seen) > header_end + 4:
                    # Wake the other direction's recv, then close with a RST (linger 0),
                    # not a FIN: the client sees the connection die mid-stream.
                    client.shutdown(socket.SHUT_RD)
                    pump.join(timeout=10)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))  # fmt: skip
                    break
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


def test_a_dropped_log_stream_falls_back_to_polling(ray_head, tmp_path):
    proxy = DroppingProxy(int(ray_head.rsplit(":", 1)[1]))
    out = tmp_path / "results.jsonl"
    job_id = f"ttg-test-{uuid.uuid4().hex[:8]}"
    # The CLI as its own process (its logging set up once, as in real use); the proxy's
    # threads stay in this one.
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_AUTH_MODE="disabled")
    try:
        proc = subprocess.run([
            sys.executable, "-m", "ttg_ray.kube", "submit",
            "--address", f"http://127.0.0.1:{proxy.port}", "--submission-id", job_id,
            "--", "--params", "200", "--chunk-size", "10", "--work-ms", "20",
            "--output", str(out), "--no-progress",
        ], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)  # fmt: skip
    finally:
        proxy.close()
    err = proc.stderr
    assert proxy.dropped == 1
    assert proc.returncode == 0, err
    assert "log stream dropped; polling its status" in err
    assert f"job {job_id}: SUCCEEDED" in err
    assert "Traceback" not in err
    indices = sorted(r["index"] for r in read_store(out))
    assert indices == list(range(200))


def test_polling_gives_up_on_a_lost_dashboard_with_the_job_to_look_up():
    from ttg_ray.errors import BackendUnavailable
    from ttg_ray.kube import submit

    class Unreachable:
        def get_job_status(self, job_id):
            raise ConnectionError("connection refused")

    with pytest.raises(BackendUnavailable, match="ray job status ttg-x") as info:
        submit.wait_for_end(Unreachable(), "ttg-x", "http://127.0.0.1:1", lost_s=0)
    assert "\n" not in str(info.value)


def test_address_wins_over_ray_address_in_the_environment(ray_head, monkeypatch, capsys):
    # A KubeRay pod sets RAY_ADDRESS to its GCS, and Ray lets RAY_ADDRESS (and
    # RAY_API_SERVER_ADDRESS) override the address a job client is given.
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", f"http://127.0.0.1:{free_port()}")
    code = kube_main(["submit", "--address", ray_head, "--", "--params", "20", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert os.environ["RAY_ADDRESS"].startswith("127.0.0.1:")  # restored afterwards
