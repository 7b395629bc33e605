"""kuberay/up.sh and down.sh: bash -n and shellcheck clean; run for real against stub
docker/kind/kubectl/helm commands that record their calls (no cluster here), so the order
of steps, the pinned operator version and "down removes only what up made" are checked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.support.k8s_schema import KUBERAY_DIR

SCRIPTS = [KUBERAY_DIR / "up.sh", KUBERAY_DIR / "down.sh"]
BASH = shutil.which("bash") or "/bin/bash"
# Stubs: log argv; `kind get clusters` lists nothing, `helm status` and
# `kubectl get secret` fail (nothing installed yet); everything else succeeds.
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$TTG_STUB_LOG"
case "$(basename "$0") $1 $2" in
  "kind get clusters") exit 0 ;;
  "helm status "*) exit 1 ;;
  "kubectl get secret") exit 1 ;;
esac
exit 0
"""


@pytest.fixture
def stubs(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "helm"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    state = tmp_path / "state"
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TTG_STUB_LOG": str(log),
        "TTG_STATE_DIR": str(state),
        "HOME": str(tmp_path),
    }


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(KUBERAY_DIR / script), *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _calls(env: dict[str, str]) -> list[str]:
    return Path(env["TTG_STUB_LOG"]).read_text().splitlines()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    proc = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        missing_service("shellcheck (apt-get install shellcheck)")
    proc = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_up_reports_a_missing_prerequisite(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    proc = _run("up.sh", {"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert "docker is not installed" in proc.stderr


def test_up_creates_kind_installs_kuberay_builds_loads_applies_and_waits(stubs):
    proc = _run("up.sh", stubs, "--with-queues")
    assert proc.returncode == 0, proc.stderr
    calls = _calls(stubs)
    steps = [
        "kind create cluster --name ttg --config",
        "helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0",
        "docker build -t ttg-ray:0.1.0",
        "kind load docker-image ttg-ray:0.1.0 --name ttg",
        "kubectl create secret generic ttg-ray-auth",
        "kubectl apply -n default -f " + str(KUBERAY_DIR / "raycluster.yaml"),
        "kubectl wait -n default raycluster/ttg-ray --for=condition=RayClusterProvisioned",
        "kubectl wait -n default raycluster/ttg-ray --for=condition=HeadPodReady",
        "kubectl create secret generic ttg-rabbitmq-auth",
        "kubectl apply -n default -f " + str(KUBERAY_DIR / "queue-workers.yaml"),
    ]
    positions = [next(i for i, c in enumerate(calls) if c.startswith(s)) for s in steps]
    assert positions == sorted(positions)
    assert not any("guest" in c for c in calls)
    assert "kubectl port-forward -n default svc/ttg-ray-head-svc 8265:8265" in proc.stdout
    state = (Path(stubs["TTG_STATE_DIR"]) / "ttg.state").read_text().split()
    assert {"created_cluster", "installed_kuberay", "built_image", "applied_ray"} <= set(state)


def _state(env: dict[str, str], *lines: str) -> Path:
    path = Path(env["TTG_STATE_DIR"]) / "ttg.state"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_down_dry_run_prints_and_does_nothing(stubs):
    state = _state(stubs, "created_cluster", "installed_kuberay", "built_image")
    proc = _run("down.sh", stubs, "--dry-run", "--remove-image")
    assert proc.returncode == 0, proc.stderr
    assert "would run: kind delete cluster --name ttg" in proc.stdout
    assert "would run: docker image rm ttg-ray:0.1.0" in proc.stdout
    assert _calls(stubs) == []
    assert state.exists()


def test_down_deletes_the_cluster_only_when_up_created_it(stubs):
    state = _state(stubs, "installed_kuberay", "applied_ray")
    proc = _run("down.sh", stubs)
    assert proc.returncode == 0, proc.stderr
    calls = _calls(stubs)
    assert not any(c.startswith("kind delete") for c in calls)
    assert any("delete rayjob,raycluster" in c and "app.kubernetes.io/part-of=ttg-ray" in c
               for c in calls)  # fmt: skip
    assert any(
        c.startswith("helm --kube-context kind-ttg uninstall kuberay-operator") for c in calls
    )
    assert not any(c.startswith("docker") for c in calls)
    assert not state.exists()


def test_down_without_state_removes_nothing(stubs):
    proc = _run("down.sh", stubs)
    assert proc.returncode == 0
    assert "nothing to remove" in proc.stdout
    assert _calls(stubs) == []
