"""The `ray start` each pod runs, derived from the rendered RayCluster as KubeRay does,
and the list of what a rehearsal cannot honour."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ttg_ray.errors import UsageError
from ttg_ray.kube import raystart, render

SECRETS = {render.AUTH_SECRET: {"auth_token": "t0ken"}}
POD = {
    "metadata.name": "ttg-ray-workers-worker-abcde",
    "metadata.namespace": "default",
    "spec.nodeName": "10.0.0.3",
    "status.podIP": "10.0.0.3",
}


def _pod(kind: str, opts: render.ClusterOptions | None = None) -> raystart.PodStart:
    cluster = render.render_raycluster(opts)
    spec = cluster["spec"]
    group = spec["headGroupSpec"] if kind == "head" else spec["workerGroupSpecs"][0]
    return raystart.pod_start(cluster, kind, group, POD, SECRETS)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("500m", 0.5), ("1536Mi", 1536 * 2**20), ("2Gi", 2 * 2**30), ("1k", 1000)],
)
def test_quantities(text, value):
    assert raystart.quantity(text) == value


def test_a_bad_quantity_is_a_usage_error():
    with pytest.raises(UsageError, match="quantity"):
        raystart.quantity("lots")


def test_worker_start_comes_from_the_limits_and_the_head_service():
    pod = _pod("worker")
    assert pod.start_params["num-cpus"] == "1"
    assert pod.start_params["memory"] == str(1536 * 2**20)
    assert pod.start_params["address"] == "ttg-ray-head-svc.default.svc.cluster.local:6379"
    assert pod.command.startswith("ulimit -n 65536; ray start --address=")
    assert " --block" in pod.command and "--head" not in pod.command


def test_fractional_cpus_round_up_as_quantity_value_does():
    pod = _pod("worker", replace(render.ClusterOptions(), worker_cpus="1500m"))
    assert pod.start_params["num-cpus"] == "2"


def test_head_keeps_its_zero_cpus_and_dashboard_host():
    pod = _pod("head")
    assert pod.start_params["num-cpus"] == "0"
    assert pod.start_params["dashboard-host"] == "0.0.0.0"
    assert pod.command.startswith("ulimit -n 65536; ray start --head ")
    assert pod.env["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert (pod.readiness_path, pod.readiness_port) == ("/api/healthz", 52365)


def test_env_has_the_token_the_downward_api_and_kuberay_variables():
    pod = _pod("worker")
    assert pod.env["RAY_AUTH_MODE"] == "token"
    assert pod.env["RAY_AUTH_TOKEN"] == "t0ken"
    assert pod.env["POD_NAME"] == POD["metadata.name"]
    assert pod.env["NODE_NAME"] == "10.0.0.3"
    assert pod.env["FQ_RAY_IP"] == "ttg-ray-head-svc.default.svc.cluster.local"
    assert pod.env["KUBERAY_GEN_RAY_START_CMD"] == pod.command
    assert pod.unresolved_env == []


def test_autoscaling_turns_the_head_monitor_off():
    opts = render.ClusterOptions(autoscale=True, min_workers=0, max_workers=4)
    assert "--no-monitor" in _pod("head", opts).command
    cluster = render.render_raycluster(opts)
    assert any("enableInTreeAutoscaling" in n for n in raystart.not_honoured(cluster))


def test_extra_flags_are_appended_quoted():
    pod = _pod("head").with_flags(temp_dir="/tmp/a b", node_ip_address="10.0.0.2")
    assert pod.command.endswith("--temp-dir='/tmp/a b' --node-ip-address=10.0.0.2")


def test_object_store_is_ray_share_of_the_memory_limit():
    assert raystart.object_store_bytes({"memory": "1000"}) == 300
    assert raystart.object_store_bytes({}) is None


def test_what_cannot_be_honoured_is_listed_for_each_group():
    notes = raystart.not_honoured(render.render_raycluster())
    for group in ("head", "workers"):
        assert any(n.startswith(f"{group}: image ttg-ray:0.1.0") for n in notes)
        assert any(n.startswith(f"{group}: securityContext") for n in notes)
        assert any(n.startswith(f"{group}: livenessProbe") for n in notes)
