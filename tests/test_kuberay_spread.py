"""Do the rendered worker pods fit the 3-worker Kind cluster? Kind cannot run here, so the
pods KubeRay would create from `render raycluster --workers N` are placed by a model of
the kube-scheduler's filters they meet: TaintToleration, NodeResourcesFit and
PodTopologySpread (eligible domains by nodeAffinityPolicy/nodeTaintsPolicy, skew =
matching pods in the node's domain + 1 - the minimum over eligible domains). The nodes
are the ones kuberay/kind-config.yaml creates, the control plane with kubeadm's NoSchedule
taint, each with the 4 CPUs / 8 GiB the README asks Docker for (Kind nodes all report the
host's capacity)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import yaml

from tests.support.k8s_schema import KUBERAY_DIR
from ttg_ray.kube.cli import main as kube_main

CONTROL_PLANE_TAINT = {
    "key": "node-role.kubernetes.io/control-plane",
    "effect": "NoSchedule",
}
NODE_CPU_M, NODE_MEMORY = 4000, 8 * 1024**3


@dataclass
class Node:
    name: str
    taints: list[dict]
    labels: dict[str, str]
    pods: list[dict] = field(default_factory=list)

    def used(self) -> tuple[int, int]:
        cpu = sum(_cpu_m(p["requests"]["cpu"]) for p in self.pods)
        mem = sum(_bytes(p["requests"]["memory"]) for p in self.pods)
        return cpu, mem


def _cpu_m(text: str) -> int:
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def _bytes(text: str) -> int:
    for suffix, power in (("Ki", 1), ("Mi", 2), ("Gi", 3)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * 1024**power
    return int(text)


def kind_nodes() -> list[Node]:
    config = yaml.safe_load((KUBERAY_DIR / "kind-config.yaml").read_text())
    nodes, workers = [], 0
    for spec in config["nodes"]:
        if spec["role"] == "control-plane":
            name, taints = f"{config['name']}-control-plane", [CONTROL_PLANE_TAINT]
        else:
            workers += 1
            name, taints = f"{config['name']}-worker{'' if workers == 1 else workers}", []
        nodes.append(Node(name, taints, {"kubernetes.io/hostname": name}))
    return nodes


def _tolerates(pod: dict, taint: dict) -> bool:
    return any(
        t.get("operator") == "Exists" and t.get("key") in (None, taint["key"])
        for t in pod.get("tolerations", [])
    )


def _schedulable_taints_ok(pod: dict, node: Node) -> bool:
    blocking = [t for t in node.taints if t["effect"] in ("NoSchedule", "NoExecute")]
    return all(_tolerates(pod, t) for t in blocking)


def _matches(constraint: dict, pod: dict, other: dict) -> bool:
    wanted = dict(constraint["labelSelector"]["matchLabels"])
    for key in constraint.get("matchLabelKeys", []):
        wanted[key] = pod["labels"][key]
    return all(other["labels"].get(k) == v for k, v in wanted.items())


def _spread_ok(pod: dict, node: Node, nodes: list[Node]) -> bool:
    for c in pod["spread"]:
        assert c["whenUnsatisfiable"] == "DoNotSchedule"
        key = c["topologyKey"]
        honor_taints = c.get("nodeTaintsPolicy", "Ignore") == "Honor"
        eligible = [
            n
            for n in nodes
            if key in n.labels and (not honor_taints or _schedulable_taints_ok(pod, n))
        ]
        counts: dict[str, int] = {}
        for n in eligible:
            counts.setdefault(n.labels[key], 0)
            counts[n.labels[key]] += sum(_matches(c, pod, p) for p in n.pods)
        if key not in node.labels or node.labels[key] not in counts:
            return False
        floor = min(counts.values()) if len(counts) >= c.get("minDomains", 1) else 0
        if counts[node.labels[key]] + 1 - floor > c["maxSkew"]:
            return False
    return True


def _fits(pod: dict, node: Node) -> bool:
    cpu, mem = node.used()
    return (
        cpu + _cpu_m(pod["requests"]["cpu"]) <= NODE_CPU_M
        and mem + _bytes(pod["requests"]["memory"]) <= NODE_MEMORY
    )


def schedule(pods: list[dict], nodes: list[Node]) -> list[dict]:
    """Place the pods one by one as the scheduler's filters allow (ties to the emptiest
    node, as PodTopologySpread's score prefers); returns the pods left Pending."""
    pending = []
    for pod in pods:
        feasible = [
            n
            for n in nodes
            if _schedulable_taints_ok(pod, n) and _fits(pod, n) and _spread_ok(pod, n, nodes)
        ]
        if not feasible:
            pending.append(pod)
            continue
        min(feasible, key=lambda n: (len(n.pods), n.name)).pods.append(pod)
    return pending


def kuberay_pods(cluster: dict) -> list[dict]:
    """The pods KubeRay creates for a RayCluster, with the labels it sets on them."""
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    groups = [("headgroup", "head", spec["headGroupSpec"], 1)] + [
        (g["groupName"], "worker", g, g["replicas"]) for g in spec["workerGroupSpecs"]
    ]
    pods = []
    for group, node_type, g, count in groups:
        pod_spec = g["template"]["spec"]
        for _ in range(count):
            pods.append({
                "labels": {"ray.io/cluster": name, "ray.io/group": group,
                           "ray.io/node-type": node_type},
                "requests": pod_spec["containers"][0]["resources"]["requests"],
                "spread": pod_spec.get("topologySpreadConstraints", []),
                "tolerations": pod_spec.get("tolerations", []),
            })  # fmt: skip
    return pods


def _render(capsys, workers: int) -> dict:
    assert kube_main(["render", "raycluster", "--workers", str(workers)]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("workers", [1, 3, 4, 5, 6])
def test_rendered_workers_all_schedule_on_the_kind_cluster(workers, capsys):
    nodes = kind_nodes()
    pending = schedule(kuberay_pods(_render(capsys, workers)), nodes)
    assert pending == []
    per_node = {n.name: sum(p["labels"]["ray.io/node-type"] == "worker" for p in n.pods)
                for n in nodes}  # fmt: skip
    worker_nodes = [n for n in nodes if not n.taints]
    # The documented constraint: an even spread, at most ceil(workers / worker nodes) each.
    assert max(per_node.values()) == math.ceil(workers / len(worker_nodes))
    assert per_node["ttg-control-plane"] == 0
    if workers == 3:
        assert sorted(per_node.values()) == [0, 1, 1, 1]


@pytest.mark.parametrize("workers", [4, 5])
def test_ignoring_taints_would_leave_workers_pending(workers, capsys):
    # The defect this guards against: with the default nodeTaintsPolicy (Ignore) the
    # control plane counts as an empty domain, so no worker node may take a second pod.
    cluster = _render(capsys, workers)
    for group in cluster["spec"]["workerGroupSpecs"]:
        for c in group["template"]["spec"]["topologySpreadConstraints"]:
            c.pop("nodeTaintsPolicy")
    pending = schedule(kuberay_pods(cluster), kind_nodes())
    assert len(pending) == workers - 3


def test_the_checked_in_manifests_schedule_too():
    for name in ("raycluster.yaml", "rayjob.yaml"):
        doc = yaml.safe_load((KUBERAY_DIR / name).read_text())
        if doc["kind"] == "RayJob":
            doc = {"metadata": doc["metadata"], "spec": doc["spec"]["rayClusterSpec"]}
        assert schedule(kuberay_pods(doc), kind_nodes()) == [], name
