"""kuberay/up.sh and down.sh: bash -n and shellcheck clean; run for real against stub
docker/kind/kubectl/helm commands that record their calls (no cluster here), so the order
of steps, the pinned operator version and "down removes only what up made" are checked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing_service
from tests.support.k8s_schema import KUBERAY_DIR, ROOT
from tests.support.tools import find_tool

SCRIPTS = [KUBERAY_DIR / "up.sh", KUBERAY_DIR / "down.sh"]
BASH = shutil.which("bash") or "/bin/bash"
# Stubs: log argv; `kind get clusters` lists nothing, `helm status` and
# `kubectl get secret` fail (nothing installed yet); everything else succeeds.
# `kubectl apply -f -` keeps what it was given; a command line starting with
# $TTG_STUB_FAIL fails, to drive the fallbacks.
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$TTG_STUB_LOG"
case "$(basename "$0") $*" in
  "kubectl apply "*"-f -"*) cat >> "$TTG_STUB_LOG.applied" ;;
esac
if [ -n "$TTG_STUB_FAIL" ]; then
  case "$(basename "$0") $*" in "$TTG_STUB_FAIL"*) exit 1 ;; esac
fi
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


def _applied(env: dict[str, str]) -> list[dict]:
    text = Path(env["TTG_STUB_LOG"] + ".applied").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _git(repo: Path, *args: str) -> str:
    ident = [
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "-c",
        "commit.gpgsign=false",
    ]
    return subprocess.run(["git", "-C", str(repo), *ident, *args], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def _image_tag(env: dict[str, str]) -> str:
    builds = [c for c in _calls(env) if c.startswith("docker build")]
    argv = builds[-1].split()
    return argv[argv.index("-t") + 1]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    proc = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script):
    shellcheck = find_tool("shellcheck")
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
    tag = _image_tag(stubs)
    assert tag.startswith("ttg-ray:0.1.0-")
    steps = [
        "kind create cluster --name ttg --config",
        "helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0",
        f"docker build --provenance=false -t {tag}",
        f"kind load docker-image {tag} --name ttg",
        "kubectl create secret generic ttg-ray-auth",
        "kubectl apply -n default -f -",
        "kubectl wait -n default raycluster/ttg-ray --for=condition=RayClusterProvisioned",
        "kubectl wait -n default raycluster/ttg-ray --for=condition=HeadPodReady",
        "kubectl create secret generic ttg-rabbitmq-auth",
        "kubectl apply -n default -f " + str(KUBERAY_DIR / "redis.yaml"),
    ]
    positions = [next(i for i, c in enumerate(calls) if c.startswith(s)) for s in steps]
    assert positions == sorted(positions)
    assert not any("guest" in c for c in calls)
    assert not any(c.startswith("kind load image-archive") for c in calls)
    assert "kubectl port-forward -n default svc/ttg-ray-head-svc 8265:8265" in proc.stdout
    # The RayCluster and the queue workers were applied with this build's tag, nothing older.
    applied = _applied(stubs)
    assert [d["kind"] for d in applied] == ["RayCluster", "Deployment", "Deployment"]
    images = {c["image"] for d in applied for c in _containers(d)}
    assert images == {tag}
    state = (Path(stubs["TTG_STATE_DIR"]) / "ttg.state").read_text().splitlines()
    assert {"created_cluster", "installed_kuberay", "built_image", "applied_ray"} <= set(state)
    assert f"image {tag}" in state


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "Deployment":
        return spec["template"]["spec"]["containers"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_the_image_tag_changes_with_the_commit_so_the_pods_are_replaced(stubs, tmp_path):
    # A repository of its own with the files the tag is computed from.
    repo = tmp_path / "repo"
    shutil.copytree(KUBERAY_DIR, repo / "kuberay")
    shutil.copytree(ROOT / "ttg_ray", repo / "ttg_ray",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("Dockerfile", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    script = str(repo / "kuberay" / "up.sh")

    def up() -> str:
        proc = subprocess.run([BASH, script], env=stubs, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return _image_tag(stubs)

    first = up()
    assert first == f"ttg-ray:0.1.0-{_git(repo, 'rev-parse', '--short=12', 'HEAD')}"
    assert up() == first  # the same code, the same tag: nothing to replace
    (repo / "ttg_ray" / "workloads.py").write_text("# changed\n", encoding="utf-8")
    dirty = up()
    assert dirty.startswith(first + "-dirty-")
    _git(repo, "commit", "-qam", "two")
    second = up()
    assert second == f"ttg-ray:0.1.0-{_git(repo, 'rev-parse', '--short=12', 'HEAD')}"
    assert len({first, dirty, second}) == 3
    # KubeRay replaces the pods only because the template changed and Recreate is set.
    cluster = [d for d in _applied(stubs) if d["kind"] == "RayCluster"][-1]
    assert cluster["spec"]["upgradeStrategy"] == {"type": "Recreate"}
    assert {c["image"] for c in _containers(cluster)} == {second}


def test_up_falls_back_to_an_image_archive_when_kind_load_fails(stubs):
    env = dict(stubs, TTG_STUB_FAIL="kind load docker-image")
    proc = _run("up.sh", env)
    assert proc.returncode == 0, proc.stderr
    calls = _calls(env)
    tag = _image_tag(env)
    assert "kind#3795" in proc.stderr
    save = next(i for i, c in enumerate(calls) if c.startswith("docker image save --platform"))
    load = next(i for i, c in enumerate(calls) if c.startswith("kind load image-archive"))
    assert save < load and calls[save].endswith(tag)


def test_up_says_how_to_turn_off_the_containerd_store_when_both_loads_fail(stubs):
    env = dict(stubs, TTG_STUB_FAIL="kind load")
    proc = _run("up.sh", env)
    assert proc.returncode == 1
    assert "containerd-snapshotter" in proc.stderr
    assert not any(c.startswith("kubectl apply") for c in _calls(env))


def _state(env: dict[str, str], *lines: str) -> Path:
    path = Path(env["TTG_STATE_DIR"]) / "ttg.state"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_down_dry_run_prints_and_does_nothing(stubs):
    state = _state(stubs, "created_cluster", "installed_kuberay", "built_image",
                   "image ttg-ray:0.1.0-aaa", "image ttg-ray:0.1.0-bbb")  # fmt: skip
    proc = _run("down.sh", stubs, "--dry-run", "--remove-image")
    assert proc.returncode == 0, proc.stderr
    assert "would run: kind delete cluster --name ttg" in proc.stdout
    assert "would run: docker image rm ttg-ray:0.1.0-aaa" in proc.stdout
    assert "would run: docker image rm ttg-ray:0.1.0-bbb" in proc.stdout
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
