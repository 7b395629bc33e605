"""The KubeRay rehearsal end to end: the rendered RayCluster as network-namespace hosts
(root, iproute2), the sweep submitted to the head's job API with the token, one worker
host killed at 30 % and one added at 50 %. Traffic stays inside the rehearsal's bridge."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.support.tools import find_tool
from ttg_ray.engine.store import read_store
from ttg_ray.workloads import seed_placeholder

PARAMS = 36_000


def _need_netns() -> None:
    if shutil.which("ip") is None:
        missing_service("iproute2 (`ip`)")
    if os.geteuid() != 0:
        missing_service("root (network namespaces)")


@pytest.fixture(scope="module")
def rehearsal() -> Iterator[tuple[subprocess.CompletedProcess, dict]]:
    _need_netns()
    # Not under pytest's basetemp: a parallel pytest session may prune that mid-run.
    work = Path(tempfile.mkdtemp(prefix="kuberay-rehearsal-"))
    report = work / "report.json"
    argv = [
        sys.executable, "-m", "ttg_ray.kube", "rehearse", "--workers", "3",
        "--kill-node-at", "30", "--add-node-at", "50", "--workdir", str(work / "w"),
        "--report-json", str(report), "--",
        "--params", str(PARAMS), "--chunk-size", "200", "--work-ms", "1", "--spread",
        "--log-format", "json", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # not SIGKILL: the rehearsal must tear down
        out, err = proc.communicate(timeout=60)
    proc = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    yield proc, json.loads(report.read_text())
    if proc.returncode == 0:  # else keep the hosts' logs for a look
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_the_sweep_succeeds_with_every_index_once(rehearsal):
    proc, report = rehearsal
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen: dict[int, float] = {}
    for record in read_store(report["results_path"]):
        assert record["index"] not in seen
        seen[record["index"]] = record["value"]
    assert sorted(seen) == list(range(PARAMS))
    assert all(v == seed_placeholder(i, work_ms=0) for i, v in seen.items())


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_chunks_run_on_every_worker_then_on_the_survivors(rehearsal):
    _, report = rehearsal
    hosts = {h["name"]: h["ip"] for h in report["hosts"]}
    workers = {hosts[f"worker-{i}"] for i in range(3)}
    killed = report["killed"]["ip"]
    assert killed == hosts["worker-2"]
    assert set(report["before_kill"]) == workers
    survivors = workers - {killed}
    assert survivors <= set(report["after_kill"])
    assert killed not in report["after_kill"]
    assert report["killed"]["processes"] > 0


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_a_host_added_mid_sweep_gets_chunks(rehearsal):
    _, report = rehearsal
    added = report["added"]["ip"]
    # It joins (its start-up and its first Ray worker take ~20 s on a quiet machine) and
    # must get chunks before the sweep's tail: hence a sweep of 36,000 parameters.
    assert report["after_add"].get(added, 0) > 0, (report["after_add"], report["added"])


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_the_job_api_refuses_a_missing_or_wrong_token(rehearsal):
    _, report = rehearsal
    assert report["auth"]["right token"] == 200
    assert report["auth"]["no token"] == 401
    assert report["auth"]["wrong token"] == 403


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_nothing_is_left_behind(rehearsal):
    _, report = rehearsal
    assert report["leftovers"] == []
    bridge = report["bridge"]["name"]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    prefix = bridge.removesuffix("br")
    assert prefix not in links and prefix not in namespaces
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert report["ray_temp_root"] not in ps  # every `ray start --temp-dir <ours>` is gone


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_what_cannot_be_honoured_is_listed(rehearsal):
    proc, report = rehearsal
    notes = "\n".join(report["not_honoured"])
    assert "image ttg-ray:0.1.0" in notes
    assert "readOnly" in notes or "read-only" in notes
    assert "livenessProbe" in notes
    assert "not honoured here: head: image" in proc.stdout


def test_rehearse_sh_is_bash_clean():
    script = Path(__file__).resolve().parents[1] / "kuberay" / "rehearse.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    shellcheck = find_tool("shellcheck")
    if shellcheck is None:
        missing_service("shellcheck (apt-get install shellcheck)")
    proc = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.timeout(120)
def test_ctrl_c_while_starting_leaves_nothing_behind():
    _need_netns()
    work = Path(tempfile.mkdtemp(prefix="kuberay-rehearsal-"))
    report_path = work / "report.json"
    argv = [
        sys.executable, "-m", "ttg_ray.kube", "rehearse", "--workdir", str(work),
        "--report-json", str(report_path),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "head-0 " in line and "ray start" in line:  # the head's `ray start` is running
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, rest
    report = json.loads(report_path.read_text())
    assert report["leftovers"] == []
    prefix = report["bridge"]["name"].removesuffix("br")
    assert prefix not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert prefix not in subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert report["ray_temp_root"] not in ps
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(report["ray_temp_root"], ignore_errors=True)
