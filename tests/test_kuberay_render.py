"""`python -m ttg_ray.kube render` and the client-side pieces of apply/status/submit,
without a cluster: everything render produces validates against the KubeRay CRDs."""

from __future__ import annotations

import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from tests.support.k8s_schema import K8S_VERSION, ROOT, crd_schemas  # noqa: F401
from tests.support.k8s_validate import core_problems, validate_kuberay
from ttg_ray.errors import UsageError
from ttg_ray.kube import k8s, render, submit
from ttg_ray.kube.cli import main as kube_main


def _render(capsys, *argv: str) -> list[dict]:
    assert kube_main(["render", *argv]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


@pytest.mark.parametrize("what", ["raycluster", "rayjob"])
@pytest.mark.parametrize("workers", [0, 1, 3, 7])
def test_rendered_objects_validate(what, workers, capsys, crd_schemas):  # noqa: F811
    (obj,) = _render(capsys, what, "--workers", str(workers), "--namespace", "sweeps")
    assert validate_kuberay(obj, crd_schemas) == []
    spec = obj["spec"].get("rayClusterSpec", obj["spec"])
    assert spec["workerGroupSpecs"][0]["replicas"] == workers
    assert obj["metadata"]["namespace"] == "sweeps"


def test_render_options_reach_every_ray_container(capsys, crd_schemas):  # noqa: F811
    (obj,) = _render(
        capsys, "raycluster", "--name", "big", "--image", "registry.example/ttg:1",
        "--worker-cpus", "4", "--worker-memory", "8Gi", "--head-memory", "4Gi",
    )  # fmt: skip
    assert validate_kuberay(obj, crd_schemas) == []
    spec = obj["spec"]
    worker = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert obj["metadata"]["name"] == "big"
    assert worker["image"] == head["image"] == "registry.example/ttg:1"
    assert worker["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    assert head["resources"]["limits"]["memory"] == "4Gi"


def test_sweep_arguments_after_dashdash_become_a_quoted_entrypoint(capsys, crd_schemas):  # noqa: F811
    sweep = ["--grid", "alpha=1,2", "--kwargs", '{"label": "a b"}', "--params", "50"]
    (job,) = _render(capsys, "rayjob", "--active-deadline-s", "60", "--", *sweep)
    assert validate_kuberay(job, crd_schemas) == []
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv == ["python", "-m", "ttg_ray.run", "--backend", "ray", *sweep]
    assert job["spec"]["activeDeadlineSeconds"] == 60


def test_rendered_secrets_are_random_and_valid(capsys):
    first, second = _render(capsys, "secrets"), _render(capsys, "secrets")
    assert [s["metadata"]["name"] for s in first] == [
        render.AUTH_SECRET, "ttg-redis-auth", "ttg-rabbitmq-auth", "ttg-signing-key",
    ]  # fmt: skip
    signing = first[-1]["stringData"]["signing_key"]
    assert signing.startswith("k1:") and signing != second[-1]["stringData"]["signing_key"]
    for secret in first:
        assert core_problems(secret, K8S_VERSION) == []
    assert first[0]["stringData"]["auth_token"] != second[0]["stringData"]["auth_token"]
    assert "guest" not in yaml.safe_dump_all(first)


def test_render_needs_no_kubernetes_package():
    code = (
        "import sys; sys.modules['kubernetes'] = None\n"
        "from ttg_ray.kube.cli import main; sys.exit(main(['render', 'rayjob']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["kind"] == "RayJob"


def test_bad_usage_exits_2(capsys):
    assert kube_main(["render", "raycluster", "--workers", "-1"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert kube_main(["apply"]) == 2


def test_describe_status_reads_conditions_and_job_status():
    ready = {"type": "HeadPodReady", "status": "True", "reason": "HeadPodRunningAndReady"}
    obj = {
        "metadata": {"name": "ttg-sweep"},
        "status": {
            "jobDeploymentStatus": "Complete",
            "jobStatus": "SUCCEEDED",
            "conditions": [ready],
        },
    }
    lines = k8s.describe_status("RayJob", obj)
    assert "  jobStatus: SUCCEEDED" in lines
    assert "  condition HeadPodReady=True (HeadPodRunningAndReady)" in lines
    assert "no status yet" in k8s.describe_status("RayCluster", {"metadata": {}})[-1]


def test_apply_refuses_core_kinds(monkeypatch):
    monkeypatch.setattr(k8s, "_custom_api", lambda: None)
    with pytest.raises(UsageError, match="kubectl"):
        k8s.apply(render.render_secrets())


@pytest.mark.parametrize(
    ("status", "driver_exit_code", "expected"),
    [
        ("SUCCEEDED", 0, 0),
        ("FAILED", 2, 2),
        ("FAILED", None, 1),
        ("STOPPED", None, 1),
        ("STOPPED", 143, 1),  # what a stopped driver exits with is the signal's, not the sweep's
    ],
)
def test_job_exit_code(status, driver_exit_code, expected):
    client = SimpleNamespace(
        get_job_info=lambda _id: SimpleNamespace(driver_exit_code=driver_exit_code)
    )
    assert submit.job_exit_code(client, "id", status) == expected
