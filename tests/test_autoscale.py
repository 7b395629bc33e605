"""Elastic clusters with Ray's real autoscaler and fake nodes: a sweep that starts with no
worker node asks for CPUs (request_resources), the cluster grows, every index comes back
once, the request is cleared at the end and the cluster shrinks back to no workers.

The cluster runs in a network namespace of its own (root, iproute2), so its ports never
meet another Ray on this machine and every process it starts is stopped with it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import missing_service
from ttg_ray.engine.store import read_store
from ttg_ray.kube.netns import Host, Network
from ttg_ray.workloads import seed_placeholder

GCS = "127.0.0.1:6379"  # free inside the namespace
MAX_CPUS = 3
PARAMS = 3000
_CPUS = (
    f"import ray; ray.init(address='{GCS}', logging_level='ERROR', log_to_driver=False); "
    "print('CPUS', ray.cluster_resources().get('CPU', 0))"
)
_ASKED = re.compile(r"asking the autoscaler for (\d+) CPUs")


def fake_cluster_config(max_workers: int) -> dict:
    """A fake_multinode cluster (see the notes on Ray here): a head with no CPUs, and
    one-CPU workers from 0 to max_workers, idle ones removed after 6 s."""
    lists = (
        "cluster_synced_files", "rsync_exclude", "rsync_filter", "initialization_commands",
        "setup_commands", "head_setup_commands", "worker_setup_commands",
        "head_start_ray_commands", "worker_start_ray_commands",
    )  # fmt: skip
    empty = {key: {} for key in ("auth", "docker", "file_mounts")} | {key: [] for key in lists}
    return {
        "cluster_name": "ttg-autoscale",
        "max_workers": max_workers,
        "idle_timeout_minutes": 0.1,
        "upscaling_speed": 1.0,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": GCS,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "ray.worker.cpu": {
                "resources": {"CPU": 1},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": "ray.head.default",
        "file_mounts_sync_continuously": False,
        **empty,
    }


def _cpus(host: Host, env: dict) -> float | None:
    argv = ["ip", "netns", "exec", host.netns, sys.executable, "-c", _CPUS]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    found = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("CPUS ")]
    return float(found[-1]) if proc.returncode == 0 and found else None


def _wait_cpus(host: Host, env: dict, want: float, timeout_s: float) -> float:
    """Seconds until the cluster has ``want`` CPUs (fails after timeout_s)."""
    start = time.monotonic()
    while (cpus := _cpus(host, env)) != want:
        assert time.monotonic() - start < timeout_s, f"cluster at {cpus} CPUs, want {want}"
        time.sleep(1)
    return time.monotonic() - start


@pytest.fixture
def fake_cluster(tmp_path: Path):
    if shutil.which("ip") is None or os.geteuid() != 0:
        missing_service("root and iproute2 (the fake cluster runs in a network namespace)")
    # Ray's dir not under pytest's basetemp: a parallel session may prune it mid-run.
    ray_dir = Path(tempfile.mkdtemp(prefix="ttga-"))  # short: Ray's socket paths must fit
    config = tmp_path / "cluster.json"
    config.write_text(json.dumps(fake_cluster_config(MAX_CPUS)))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_FAKE_CLUSTER="1",
        AUTOSCALER_UPDATE_INTERVAL_S="1",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )
    with Network() as net:
        host = net.add_host("autoscale")
        head = [
            "ray", "start", "--head", "--block", "--port=6379", "--node-ip-address=127.0.0.1",
            "--num-cpus=0", f"--autoscaling-config={config}", f"--temp-dir={ray_dir}",
            "--include-dashboard=false",
        ]  # fmt: skip
        host.popen(head, env, tmp_path / "head.log")
        _wait_cpus(host, env, 0.0, timeout_s=90)
        yield host, env
    assert net.leftovers() == []
    shutil.rmtree(ray_dir, ignore_errors=True)


def _requests(log_path: Path) -> list[int]:
    """The CPU counts the sweep asked the autoscaler for, in order."""
    found = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            match = _ASKED.fullmatch(json.loads(line)["message"])
            if match:
                found.append(int(match.group(1)))
    return found


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_sweep_grows_the_cluster_from_zero_and_gives_it_back(fake_cluster, tmp_path):
    host, env = fake_cluster
    out, log = tmp_path / "out.jsonl", tmp_path / "sweep.log"
    sweep = [
        sys.executable, "-m", "ttg_ray.run", "--address", GCS, "--autoscale-cpus", str(MAX_CPUS),
        "--params", str(PARAMS), "--chunk-size", "50", "--work-ms", "5", "--output", str(out),
        "--log-format", "json", "--no-progress",
    ]  # fmt: skip
    started = time.monotonic()
    proc = host.popen(sweep, env, log)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _cpus(host, env) or 0.0)
        time.sleep(0.5)
    sweep_s = time.monotonic() - started
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert peak >= 2, f"the cluster never grew past {peak} CPUs"

    seen = {}
    for record in read_store(out):
        assert record["index"] not in seen
        seen[record["index"]] = record["value"]
    assert sorted(seen) == list(range(PARAMS))
    assert all(v == seed_placeholder(i, work_ms=0) for i, v in seen.items())

    asked = _requests(log)
    assert asked[0] == MAX_CPUS and max(asked) <= MAX_CPUS  # bounded by --autoscale-cpus
    assert asked[-1] == 0  # cleared at the end
    down_s = _wait_cpus(host, env, 0.0, timeout_s=90)  # idle nodes go after 6 s
    print(f"sweep {sweep_s:.1f} s (peak {peak:g} CPUs), back to 0 CPUs {down_s:.1f} s after")
