"""The `ray start` command and environment KubeRay gives each pod of a RayCluster, derived
from the manifest as the operator's pod builder does (KubeRay 1.x,
ray-operator/controllers/ray/common/pod.go), and what a pod spec asks for that a rehearsal
on namespace hosts cannot honour. Pure: no I/O."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from ttg_ray.errors import UsageError

DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
METRICS_PORT = 8080
AGENT_LISTEN_PORT = 52365
KUBERAY_HEALTH_PATH = "/api/healthz"
OBJECT_STORE_SHARE = 0.3  # what Ray takes for the object store from a pod's memory limit

_SUFFIXES = {
    "": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5,
}  # fmt: skip


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity ('1', '500m', '1536Mi', '2Gi', '1e3') as a number."""
    match = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)(m|[kMGTP]i?|)", str(text).strip())
    if not match:
        raise UsageError(f"{text!r} is not a Kubernetes quantity (like 1, 500m, 1536Mi)")
    number, suffix = float(match.group(1)), match.group(2)
    return number / 1000 if suffix == "m" else number * _SUFFIXES[suffix]


def head_service(cluster: Mapping) -> str:
    """The head Service's cluster DNS name, which KubeRay gives workers as --address."""
    meta = cluster["metadata"]
    return f"{meta['name']}-head-svc.{meta.get('namespace', 'default')}.svc.cluster.local"


@dataclass
class PodStart:
    """What one Ray pod runs: the shell command, its environment, and its identity."""

    group: str  # "headgroup" or the worker group's name
    pod_name: str
    command: str  # as KubeRay writes it into the container's args (bash -c)
    env: dict[str, str]
    start_params: dict[str, str]
    readiness_path: str | None = None
    readiness_port: int | None = None
    unresolved_env: list[str] = field(default_factory=list)

    def with_flags(self, **flags: str) -> PodStart:
        """The same pod with extra `ray start` flags (for what a host here must be told)."""
        extra = " ".join(f"--{k.replace('_', '-')}={shlex.quote(v)}" for k, v in flags.items())
        return PodStart(**{**self.__dict__, "command": f"{self.command} {extra}"})


def _ray_container(template: Mapping) -> Mapping:
    containers = template["spec"]["containers"]
    # KubeRay's rule: the container with env RAY=true, else the first one.
    for c in containers:
        if any(e.get("name") == "RAY" and e.get("value") == "true" for e in c.get("env", [])):
            return c
    return containers[0]


def start_params(kind: str, group: Mapping, container: Mapping, cluster: Mapping) -> dict:
    """rayStartParams with KubeRay's defaults and the CPUs/memory from the limits."""
    params = {k: str(v) for k, v in (group.get("rayStartParams") or {}).items()}
    if kind == "worker":
        port = (cluster["spec"]["headGroupSpec"].get("rayStartParams") or {}).get("port")
        params.setdefault("address", f"{head_service(cluster)}:{port or DEFAULT_GCS_PORT}")
    else:
        params.setdefault("dashboard-host", "0.0.0.0")
        if cluster["spec"].get("enableInTreeAutoscaling"):
            params["no-monitor"] = "true"  # the autoscaler runs as a sidecar instead
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params.setdefault("dashboard-agent-listen-port", str(AGENT_LISTEN_PORT))
    params.setdefault("block", "true")
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu = limits.get("cpu") or requests.get("cpu")
    if "num-cpus" not in params and cpu is not None and quantity(cpu) > 0:
        params["num-cpus"] = str(math.ceil(quantity(cpu)))  # Quantity.Value() rounds up
    if "memory" not in params and limits.get("memory") is not None:
        params["memory"] = str(math.ceil(quantity(limits["memory"])))
    return params


def start_command(kind: str, params: Mapping[str, str]) -> str:
    """`ulimit -n 65536; ray start [--head] --k=v ...`; a value 'true' is a bare flag."""
    flags = []
    for key, value in params.items():
        flags.append(f"--{key}" if value.lower() == "true" else f"--{key}={shlex.quote(value)}")
    head = " --head" if kind == "head" else ""
    return f"ulimit -n 65536; ray start{head} {' '.join(flags)}"


def _env(
    container: Mapping, pod: Mapping[str, str], secrets: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, str], list[str]]:
    """The container's env with the downward API and secret references filled in from
    ``pod`` (metadata.name, spec.nodeName, ...) and ``secrets``; returns what stayed open."""
    env, open_refs = {}, []
    for item in container.get("env") or []:
        name, source = item["name"], item.get("valueFrom")
        if source is None:
            env[name] = str(item.get("value", ""))
        elif "fieldRef" in source and source["fieldRef"]["fieldPath"] in pod:
            env[name] = pod[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[name] = secrets[ref["name"]][ref["key"]]
        else:
            open_refs.append(f"env {name}: {source}")
    return env, open_refs


def pod_start(
    cluster: Mapping,
    kind: str,
    group: Mapping,
    pod: Mapping[str, str],
    secrets: Mapping[str, Mapping[str, str]],
) -> PodStart:
    """The head's (kind 'head') or one worker replica's start, as KubeRay builds it.
    ``pod`` maps downward-API field paths (metadata.name, spec.nodeName, status.podIP)."""
    template = group["template"]
    container = _ray_container(template)
    params = start_params(kind, group, container, cluster)
    env, open_refs = _env(container, pod, secrets)
    name = cluster["metadata"]["name"]
    port = (cluster["spec"]["headGroupSpec"].get("rayStartParams") or {}).get("port")
    env.update(
        RAY_CLUSTER_NAME=name,
        RAY_CLOUD_INSTANCE_ID=pod["metadata.name"],
        RAY_NODE_TYPE_NAME=group.get("groupName", "headgroup"),
        RAY_PORT=str(port or DEFAULT_GCS_PORT),
        RAY_USAGE_STATS_KUBERAY_IN_USE="1",
        KUBERAY_GEN_RAY_START_CMD=start_command(kind, params),
    )
    if kind == "head":
        env["RAY_ADDRESS"] = f"127.0.0.1:{port or DEFAULT_GCS_PORT}"
    else:
        env["FQ_RAY_IP"] = head_service(cluster)
        env["RAY_IP"] = f"{name}-head-svc"
    auth = cluster["spec"].get("authOptions") or {}
    if auth.get("mode") == "token":
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN"] = secrets[auth["secretName"]]["auth_token"]
    # With no probe of the container's own, KubeRay (>= 1.5 for Ray >= 2.53) injects one:
    # GET /api/healthz on the dashboard agent's port, which checks the raylet and the GCS.
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {
        "path": KUBERAY_HEALTH_PATH,
        "port": params["dashboard-agent-listen-port"],
    }
    return PodStart(
        group=group.get("groupName", "headgroup"),
        pod_name=pod["metadata.name"],
        command=start_command(kind, params),
        env=env,
        start_params=params,
        readiness_path=probe.get("path"),
        readiness_port=int(probe["port"]) if "port" in probe else None,
        unresolved_env=open_refs,
    )


def dashboard_port(cluster: Mapping) -> int:
    params = cluster["spec"]["headGroupSpec"].get("rayStartParams") or {}
    return int(params.get("dashboard-port", DEFAULT_DASHBOARD_PORT))


def object_store_bytes(params: Mapping[str, str]) -> int | None:
    """What Ray would give its object store inside the pod (a share of the cgroup memory
    limit); None when the pod has no memory limit."""
    memory = params.get("memory")
    return int(int(memory) * OBJECT_STORE_SHARE) if memory else None


def not_honoured(cluster: Mapping) -> list[str]:
    """What the RayCluster asks for that namespace hosts on one machine cannot do."""
    spec, notes = cluster["spec"], []
    groups = [("head", spec["headGroupSpec"])]
    groups += [(g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs", [])]
    for label, group in groups:
        pod_spec = group["template"]["spec"]
        c = _ray_container(group["template"])
        notes.append(f"{label}: image {c.get('image')} not pulled; hosts run this machine's Python")
        if c.get("resources"):
            notes.append(f"{label}: resources {c['resources']} only sized `ray start`; no cgroup")
        if c.get("securityContext") or pod_spec.get("securityContext"):
            notes.append(f"{label}: securityContext (non-root, read-only root) not applied")
        # KubeRay injects a livenessProbe when the container has none (120 x 5 s).
        notes.append(f"{label}: livenessProbe not run (a dead host is not restarted)")
        if pod_spec.get("volumes"):
            notes.append(f"{label}: volumes are a temp dir per host; /dev/shm is shared")
        if pod_spec.get("topologySpreadConstraints"):
            notes.append(f"{label}: topologySpreadConstraints met trivially: one host per pod")
    if spec.get("enableInTreeAutoscaling"):
        notes.append("enableInTreeAutoscaling: no autoscaler sidecar; replicas stay fixed")
    return notes
