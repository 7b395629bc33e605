"""`python -m ttg_ray.kube status|delete` through the official kubernetes client against a
real HTTP server standing in for the API server (tests/support/fake_k8s.py), reached by a
kubeconfig written for it: what status prints, the exit codes, the DELETE request, and how
each API failure maps to a ttg_ray error with the message and exit code the CLI documents."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.support.brokers import free_port
from tests.support.fake_k8s import (
    FakeKubeApi,
    forbidden,
    object_path,
    status_body,
    use_kubeconfig,
)
from tests.support.k8s_schema import crd_schemas  # noqa: F401 - fixture
from tests.support.k8s_validate import schema_problems
from ttg_ray.kube import k8s, render
from ttg_ray.kube.cli import main as kube_main

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]

CLUSTER_STATUS = {
    "state": "ready",
    "readyWorkerReplicas": 3,
    "availableWorkerReplicas": 3,
    "desiredWorkerReplicas": 3,
    "minWorkerReplicas": 3,
    "maxWorkerReplicas": 3,
    "desiredCPU": "4",
    "desiredMemory": "10Gi",
    "desiredGPU": "0",
    "desiredTPU": "0",
    "endpoints": {"client": "10001", "dashboard": "8265", "gcs-server": "6379"},
    "head": {"podIP": "10.244.1.5", "serviceIP": "10.96.12.7", "podName": "ttg-ray-head-x7k2p"},
    "lastUpdateTime": "2026-11-27T10:00:00Z",
    "observedGeneration": 1,
    "conditions": [
        {
            "type": "RayClusterProvisioned",
            "status": "True",
            "reason": "AllPodRunningAndReadyFirstTime",
            "message": "",
            "lastTransitionTime": "2026-11-27T09:59:40Z",
        },
        {
            "type": "HeadPodReady",
            "status": "True",
            "reason": "HeadPodRunningAndReady",
            "message": "",
            "lastTransitionTime": "2026-11-27T09:59:21Z",
        },
    ],
}
JOB_RUNNING = {
    "jobDeploymentStatus": "Running",
    "jobStatus": "RUNNING",
    "jobId": "ttg-sweep-8k2xq",
    "rayClusterName": "ttg-sweep-raycluster-5tq9d",
    "dashboardURL": "ttg-sweep-raycluster-5tq9d-head-svc.default.svc.cluster.local:8265",
    "startTime": "2026-11-27T10:00:00Z",
    "observedGeneration": 1,
}
# KubeRay past activeDeadlineSeconds: the deployment failed, the Ray job still says RUNNING.
JOB_PAST_DEADLINE = dict(
    JOB_RUNNING,
    jobDeploymentStatus="Failed",
    reason="DeadlineExceeded",
    message="The RayJob has passed the activeDeadlineSeconds. StartTime: 2026-11-27 10:00:00 "
    "+0000 UTC. ActiveDeadlineSeconds: 3600",
    endTime="2026-11-27T11:00:00Z",
    failed=1,
)


def _cluster(status: dict | None = None) -> dict:
    obj = render.render_raycluster()
    return dict(obj, status=status) if status is not None else obj


def _job(status: dict) -> dict:
    return dict(render.render_rayjob(), status=status)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        missing_service("the kubernetes client (pip install 'ttg-ray[k8s]')")
    with FakeKubeApi() as fake:
        fake.use(tmp_path, monkeypatch)
        yield fake


def test_served_objects_are_shaped_like_kuberay_v1(crd_schemas):  # noqa: F811
    for obj in (_cluster(CLUSTER_STATUS), _job(JOB_RUNNING), _job(JOB_PAST_DEADLINE)):
        assert schema_problems(obj, crd_schemas[obj["kind"]]) == [], obj["kind"]


def test_status_of_a_raycluster_prints_its_state_replicas_and_conditions(api, capsys):
    path = api.add(_cluster(CLUSTER_STATUS))
    assert kube_main(["status", "raycluster", "ttg-ray"]) == 0
    assert capsys.readouterr().out == (
        "RayCluster/ttg-ray\n"
        "  state: ready\n"
        "  readyWorkerReplicas: 3\n"
        "  desiredWorkerReplicas: 3\n"
        "  condition RayClusterProvisioned=True (AllPodRunningAndReadyFirstTime)\n"
        "  condition HeadPodReady=True (HeadPodRunningAndReady)\n"
    )
    assert [(r.method, r.path) for r in api.requests] == [("GET", path)]
    assert api.requests[0].authorization == "Bearer test-token"


def test_status_of_a_raycluster_the_operator_has_not_seen_yet(api, capsys):
    api.add(_cluster())
    assert kube_main(["status", "raycluster", "ttg-ray"]) == 0
    assert capsys.readouterr().out == (
        "RayCluster/ttg-ray\n  no status yet: is the KubeRay operator running?\n"
    )


def test_status_of_a_running_rayjob_exits_0(api, capsys):
    api.add(_job(JOB_RUNNING))
    assert kube_main(["status", "rayjob", "ttg-sweep"]) == 0
    assert capsys.readouterr().out == (
        "RayJob/ttg-sweep\n"
        "  jobDeploymentStatus: Running\n"
        "  jobStatus: RUNNING\n"
        "  jobId: ttg-sweep-8k2xq\n"
        "  rayClusterName: ttg-sweep-raycluster-5tq9d\n"
    )


@pytest.mark.parametrize(
    ("job_status", "deployment", "expected"),
    [
        ("SUCCEEDED", "Complete", 0),
        ("FAILED", "Complete", 1),
        ("FAILED", "Failed", 1),
        ("STOPPED", "Complete", 1),
        ("PENDING", "Initializing", 0),
        ("", "ValidationFailed", 1),
    ],
)
def test_status_exit_code_follows_the_job(api, capsys, job_status, deployment, expected):
    api.add(_job(dict(JOB_RUNNING, jobStatus=job_status, jobDeploymentStatus=deployment)))
    assert kube_main(["status", "rayjob", "ttg-sweep"]) == expected
    assert f"  jobDeploymentStatus: {deployment}\n" in capsys.readouterr().out


PAST_DEADLINE_PRINTED = (
    "RayJob/ttg-sweep\n"
    "  jobDeploymentStatus: Failed\n"
    "  jobStatus: RUNNING\n"
    "  reason: DeadlineExceeded\n"
    f"  message: {JOB_PAST_DEADLINE['message']}\n"
    "  jobId: ttg-sweep-8k2xq\n"
    "  rayClusterName: ttg-sweep-raycluster-5tq9d\n"
)


def test_status_of_a_rayjob_past_its_deadline_exits_1_and_says_why(api, capsys):
    # Was exit 0: only jobStatus (still RUNNING) was read, not KubeRay's verdict.
    api.add(_job(JOB_PAST_DEADLINE))
    assert kube_main(["status", "rayjob", "ttg-sweep"]) == 1
    assert capsys.readouterr().out == PAST_DEADLINE_PRINTED


def test_status_in_another_namespace_asks_there(api, capsys):
    obj = _cluster(CLUSTER_STATUS)
    obj["metadata"]["namespace"] = "sweeps"
    api.add(obj)
    assert kube_main(["status", "raycluster", "ttg-ray", "--namespace", "sweeps"]) == 0
    assert [r.path for r in api.requests] == [object_path("rayclusters", "ttg-ray", "sweeps")]


@pytest.mark.parametrize(("kind", "plural"), [("raycluster", "rayclusters"), ("rayjob", "rayjobs")])
def test_delete_sends_one_delete_to_the_objects_path(api, capsys, kind, plural):
    path = api.add(_cluster(CLUSTER_STATUS) if kind == "raycluster" else _job(JOB_RUNNING))
    name = path.rsplit("/", 1)[1]
    assert kube_main(["delete", kind, name]) == 0
    assert capsys.readouterr().out == f"{kind}/{name} deleted\n"
    assert [(r.method, r.path) for r in api.requests] == [("DELETE", path)]
    assert path not in api.objects


def test_apply_creates_then_replaces_with_the_current_resource_version(api, capsys):
    collection, path = (
        "/apis/ray.io/v1/namespaces/default/rayclusters",
        object_path("rayclusters", "ttg-ray"),
    )
    assert kube_main(["apply", "raycluster"]) == 0
    assert capsys.readouterr().out == "raycluster/ttg-ray created\n"
    assert [(r.method, r.path) for r in api.requests] == [("POST", collection)]
    assert api.requests[0].body == render.render_raycluster()
    api.objects[path]["metadata"]["resourceVersion"] = "42"  # as the server moved it on

    assert kube_main(["apply", "raycluster", "--workers", "5"]) == 0
    assert capsys.readouterr().out == "raycluster/ttg-ray replaced\n"
    methods = [(r.method, r.path) for r in api.requests[1:]]
    assert methods == [("POST", collection), ("GET", path), ("PUT", path)]
    five = render.render_raycluster(render.ClusterOptions(workers=5, max_workers=5))
    assert api.requests[-1].body == dict(
        five, metadata=dict(five["metadata"], resourceVersion="42")
    )


def _fails(argv: list[str], capsys) -> tuple[int, str]:
    code = kube_main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.parametrize("verb", ["status", "delete"])
def test_an_object_that_is_not_there_exits_2_naming_it(api, capsys, verb):
    code, err = _fails([verb, "rayjob", "nope", "--namespace", "sweeps"], capsys)
    assert code == 2
    assert err == (
        'error: rayjobs.ray.io "nope" not found in namespace sweeps; '
        "`kubectl get rayjobs -n sweeps` lists the ones there\n"
    )


@pytest.mark.parametrize("verb", ["status", "delete"])
def test_kuberay_crds_not_installed_exits_3(api, capsys, verb):
    api.served.clear()
    code, err = _fails([verb, "raycluster", "ttg-ray"], capsys)
    assert code == 3
    assert err == (
        "error: the API server does not serve rayclusters.ray.io/v1: the KubeRay operator "
        "and its CRDs are not installed in this cluster; run kuberay/up.sh (or helm install "
        "kuberay-operator kuberay/kuberay-operator)\n"
    )


@pytest.mark.parametrize(("verb", "method"), [("get", "GET"), ("delete", "DELETE")])
def test_forbidden_exits_3_naming_the_rbac_verb(api, capsys, verb, method):
    path = api.add(_job(JOB_RUNNING))
    body = forbidden("rayjobs", "ttg-sweep", verb)
    api.replies[(method, path)] = (403, body)
    code, err = _fails(["status" if verb == "get" else "delete", "rayjob", "ttg-sweep"], capsys)
    assert code == 3
    assert err == (
        f"error: {body['message']}; the kubeconfig's user needs the RBAC verb {verb} on "
        f"rayjobs.ray.io (check: kubectl auth can-i {verb} rayjobs.ray.io -n default)\n"
    )
    assert path in api.objects  # a refused delete deleted nothing


def test_refused_credentials_exit_3(api, capsys, tmp_path):
    api.add(_cluster(CLUSTER_STATUS))
    api.token = "rotated"
    code, err = _fails(["status", "raycluster", "ttg-ray"], capsys)
    assert code == 3
    assert err == (
        "error: the Kubernetes API server refused the kubeconfig's credentials (Unauthorized); "
        "renew them (for Kind: kind export kubeconfig --name ttg)\n"
    )


def test_an_api_server_error_exits_3(api, capsys):
    path = api.add(_cluster(CLUSTER_STATUS))
    api.replies[("GET", path)] = (503, status_body(503, "ServiceUnavailable", "etcd is down"))
    code, err = _fails(["status", "raycluster", "ttg-ray"], capsys)
    assert (code, err) == (3, "error: the Kubernetes API server failed (503): etcd is down\n")


@pytest.mark.parametrize("verb", ["status", "delete"])
def test_an_unreachable_api_server_exits_3_without_a_traceback(api, capsys, tmp_path, verb):
    # Was a urllib3 MaxRetryError traceback and exit 1: it is not an OSError.
    port = free_port()
    config = api.kubeconfig(tmp_path).read_text().replace(api.url, f"http://127.0.0.1:{port}")
    (tmp_path / "kubeconfig").write_text(config)
    code, err = _fails([verb, "raycluster", "ttg-ray"], capsys)
    assert code == 3
    assert err.startswith(
        f"error: cannot reach the Kubernetes API server at http://127.0.0.1:{port} ("
    )
    assert "Connection refused" in err
    assert err.endswith(
        "); is the cluster up (kubectl cluster-info), or does KUBECONFIG name the right one?\n"
    )
    assert api.requests == []


def test_a_server_that_never_answers_times_out_and_exits_3(api, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(k8s, "REQUEST_TIMEOUT_S", (0.2, 0.2))
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        port = silent.getsockname()[1]
        config = api.kubeconfig(tmp_path).read_text().replace(api.url, f"http://127.0.0.1:{port}")
        (tmp_path / "kubeconfig").write_text(config)
        code, err = _fails(["status", "raycluster", "ttg-ray"], capsys)
    assert code == 3
    assert err.startswith(
        f"error: cannot reach the Kubernetes API server at http://127.0.0.1:{port} ("
    )
    assert "Read timed out. (read timeout=0.2)" in err


def test_no_kubeconfig_exits_3(capsys, tmp_path, monkeypatch):
    use_kubeconfig(tmp_path / "absent", monkeypatch)
    code, err = _fails(["status", "rayjob", "ttg-sweep"], capsys)
    assert code == 3
    assert err == (
        "error: no usable Kubernetes configuration (Invalid kube-config file. No configuration "
        "found.): set KUBECONFIG to a working kubeconfig, or run kuberay/up.sh to create the "
        "Kind cluster\n"
    )


def test_a_kubeconfig_that_is_not_yaml_exits_3(capsys, tmp_path, monkeypatch):
    # Was a yaml.parser.ParserError traceback.
    (tmp_path / "kubeconfig").write_text(": [\n")
    use_kubeconfig(tmp_path / "kubeconfig", monkeypatch)
    code, err = _fails(["delete", "rayjob", "ttg-sweep"], capsys)
    assert code == 3
    assert err.startswith("error: no usable Kubernetes configuration (while parsing")
    assert err.endswith("run kuberay/up.sh to create the Kind cluster\n")


def test_the_cli_reads_kubeconfig_from_the_environment(api, tmp_path):
    api.add(_job(JOB_PAST_DEADLINE))
    env = dict(os.environ, PYTHONPATH=str(ROOT), KUBECONFIG=str(tmp_path / "kubeconfig"))
    argv = [sys.executable, "-m", "ttg_ray.kube", "status", "rayjob", "ttg-sweep"]
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, PAST_DEADLINE_PRINTED), proc.stderr
