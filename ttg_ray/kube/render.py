"""RayCluster / RayJob / Secret objects for KubeRay, built from options as plain dicts.
Pure: no kubernetes client, no I/O; `python -m ttg_ray.kube render` prints them."""

from __future__ import annotations

import math
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import yaml

from ttg_ray.kube.raystart import quantity

# Must equal the Ray the image installs (pyproject pin); tests check both agree.
RAY_VERSION = "2.60.0"
DEFAULT_IMAGE = "ttg-ray:0.1.0"
AUTH_SECRET = "ttg-ray-auth"
TMP_MOUNT = "/tmp"
HOME_MOUNT = "/home/ttg"
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", 10001), ("metrics", 8080))
# KubeRay 1.7.0 gives every Ray container without probes of its own HTTP probes on the
# dashboard agent's unified health check (Ray >= 2.53): GET /api/healthz on this port,
# liveness 120 x 5 s, readiness 10 x 5 s. The manifests leave probes to it.
AGENT_PORT = 52365
KUBERAY_HEALTH_PATH = "/api/healthz"
DEFAULT_SWEEP = (
    "--params", "100000", "--chunk-size", "1000", "--work-ms", "1", "--spread",
    "--output", "/tmp/ttg-results/results.jsonl", "--log-format", "json", "--no-progress",
)  # fmt: skip


@dataclass(frozen=True)
class ClusterOptions:
    """What `render` varies: size of the cluster, the image and where it lives."""

    name: str = "ttg-ray"
    namespace: str = "default"
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    workers: int = 3
    max_workers: int = 3
    worker_cpus: str = "1"
    worker_memory: str = "1536Mi"
    head_cpus: str = "1"
    head_memory: str = "2Gi"
    shm_size: str = "1Gi"
    # In-tree autoscaler: the worker group scales between min_workers and max_workers.
    autoscale: bool = False
    min_workers: int = 0
    idle_timeout_s: int = 60


@dataclass(frozen=True)
class JobOptions:
    """A RayJob: the sweep's arguments to `python -m ttg_ray.run --backend ray` and limits."""

    name: str = "ttg-sweep"
    sweep_args: tuple[str, ...] = DEFAULT_SWEEP
    active_deadline_s: int = 3600
    ttl_after_finished_s: int = 600
    backoff_limit: int = 0
    cluster: ClusterOptions = field(default_factory=ClusterOptions)


def entrypoint(sweep_args: Sequence[str]) -> str:
    """The shell command a Ray Job runs: the CLI on the Ray backend, quoted safely."""
    return shlex.join(["python", "-m", "ttg_ray.run", "--backend", "ray", *sweep_args])


def _security_context() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security_context(uid: int = 1000) -> dict:
    """Pod-level: the image's non-root user, and volumes writable by its group."""
    return {
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volumes(shm_size: str) -> list[dict]:
    # Read-only root: Ray writes its session dir under /tmp/ray, caches under $HOME,
    # and the object store wants a real /dev/shm rather than falling back to /tmp.
    return [
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}},
    ]


def _mounts() -> list[dict]:
    return [
        {"name": "tmp", "mountPath": TMP_MOUNT},
        {"name": "home", "mountPath": HOME_MOUNT},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]


def _downward_env() -> list[dict]:
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]


def _resources(cpus: str, memory: str) -> dict:
    # Requests equal limits: Ray sizes itself from the limits, the scheduler from requests.
    amount = {"cpu": cpus, "memory": memory}
    return {"requests": dict(amount), "limits": dict(amount)}


def _ray_container(name: str, opts: ClusterOptions, cpus: str, memory: str) -> dict:
    # No readiness/liveness probes here on purpose: KubeRay injects its own (AGENT_PORT),
    # which check GCS and raylet together and tolerate 10 minutes of failures before a
    # restart. A stricter probe of our own would replace them, and restarting the head
    # without GCS fault tolerance loses the cluster and the running sweep.
    return {
        "name": name,
        "image": opts.image,
        "imagePullPolicy": opts.image_pull_policy,
        "env": _downward_env(),
        "resources": _resources(cpus, memory),
        "securityContext": _security_context(),
        "volumeMounts": _mounts(),
    }


def _head_group(opts: ClusterOptions) -> dict:
    container = _ray_container("ray-head", opts, opts.head_cpus, opts.head_memory)
    container["ports"] = [{"name": n, "containerPort": p} for n, p in HEAD_PORTS]
    return {
        # No CPUs for tasks on the head: every chunk runs on a worker node.
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "serviceType": "ClusterIP",
        "template": {
            "spec": {
                "securityContext": pod_security_context(),
                "containers": [container],
                "volumes": _volumes(opts.shm_size),
            }
        },
    }


def _worker_group(opts: ClusterOptions) -> dict:
    container = _ray_container("ray-worker", opts, opts.worker_cpus, opts.worker_memory)
    spread = {
        # Even spread over the nodes that can take a worker: with N worker nodes, at most
        # ceil(workers / N) per node, so 3 workers on 3 Kind nodes get one each.
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"ray.io/group": "workers"}},
        # A RayJob's cluster gets a generated name, so take the cluster label from the pod.
        "matchLabelKeys": ["ray.io/cluster"],
        # Count only nodes whose taints the pod tolerates. The default (Ignore) counts the
        # NoSchedule control plane as an empty domain, so the minimum stays 0 and no worker
        # node could take a second worker: the 4th and later pods would stay Pending.
        "nodeTaintsPolicy": "Honor",
        "nodeAffinityPolicy": "Honor",
    }
    if opts.autoscale:
        # The autoscaler owns replicas between the bounds; start at the minimum.
        replicas = {
            "replicas": opts.min_workers,
            "minReplicas": opts.min_workers,
            "maxReplicas": opts.max_workers,
        }
    else:
        replicas = {
            "replicas": opts.workers,
            "minReplicas": min(1, opts.workers),
            "maxReplicas": max(opts.max_workers, opts.workers),
        }
    return {
        "groupName": "workers",
        **replicas,
        "rayStartParams": {},
        "template": {
            "spec": {
                "securityContext": pod_security_context(),
                "topologySpreadConstraints": [spread],
                "containers": [container],
                "volumes": _volumes(opts.shm_size),
            }
        },
    }


def _autoscaler_options(opts: ClusterOptions) -> dict:
    # The sidecar runs the head's image; it gets the same locked-down container settings.
    return {
        "upscalingMode": "Default",
        "idleTimeoutSeconds": opts.idle_timeout_s,
        "imagePullPolicy": opts.image_pull_policy,
        "resources": _resources("500m", "512Mi"),
        "securityContext": _security_context(),
    }


def cluster_spec(opts: ClusterOptions) -> dict:
    """The RayCluster spec, shared by the standalone cluster and a RayJob's own cluster."""
    spec = {
        "rayVersion": RAY_VERSION,
        # Ray 2.52+ token auth; the Secret holds key auth_token. KubeRay sets RAY_AUTH_MODE
        # and RAY_AUTH_TOKEN in every Ray container and in the RayJob submitter.
        "authOptions": {"mode": "token", "secretName": AUTH_SECRET},
        "enableInTreeAutoscaling": opts.autoscale,
        "headGroupSpec": _head_group(opts),
        "workerGroupSpecs": [_worker_group(opts)],
    }
    if opts.autoscale:
        spec["autoscalerOptions"] = _autoscaler_options(opts)
    return spec


def autoscale_cpus(opts: ClusterOptions) -> int:
    """The most CPUs the worker group can reach: what a sweep may ask the autoscaler for."""
    return opts.max_workers * math.ceil(quantity(opts.worker_cpus))


def _metadata(name: str, namespace: str, component: str) -> dict:
    labels = {"app.kubernetes.io/part-of": "ttg-ray", "app.kubernetes.io/component": component}
    return {"name": name, "namespace": namespace, "labels": labels}


def render_raycluster(opts: ClusterOptions | None = None) -> dict:
    opts = opts or ClusterOptions()
    # Recreate: a changed pod template (a new image tag from up.sh) replaces every pod.
    # Without it KubeRay keeps running pods as they are, and with them the old code.
    spec = {"upgradeStrategy": {"type": "Recreate"}, **cluster_spec(opts)}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _metadata(opts.name, opts.namespace, "ray-cluster"),
        "spec": spec,
    }


def _submitter(opts: ClusterOptions) -> dict:
    container = {
        "name": "ray-job-submitter",
        "image": opts.image,
        "imagePullPolicy": opts.image_pull_policy,
        "resources": _resources("200m", "256Mi"),
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": TMP_MOUNT},
            {"name": "home", "mountPath": HOME_MOUNT},
        ],
    }
    return {
        "spec": {
            "restartPolicy": "Never",
            "securityContext": pod_security_context(),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "home", "emptyDir": {}}],
        }
    }


def render_rayjob(job: JobOptions | None = None) -> dict:
    """A RayJob with a cluster of its own, torn down when the sweep ends."""
    job = job or JobOptions()
    cluster = replace(job.cluster, name=job.name)
    sweep = list(job.sweep_args)
    if cluster.autoscale and "--autoscale-cpus" not in sweep:
        sweep += ["--autoscale-cpus", str(autoscale_cpus(cluster))]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": _metadata(job.name, cluster.namespace, "sweep"),
        "spec": {
            "entrypoint": entrypoint(sweep),
            # The driver only schedules; the head has no CPUs to give it anyway.
            "entrypointNumCpus": 0,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": job.ttl_after_finished_s,
            "activeDeadlineSeconds": job.active_deadline_s,
            "backoffLimit": job.backoff_limit,
            "submissionMode": "K8sJobMode",
            "submitterPodTemplate": _submitter(cluster),
            "rayClusterSpec": cluster_spec(cluster),
        },
    }


def new_token(nbytes: int = 32) -> str:
    return secrets.token_hex(nbytes)


def render_secrets(namespace: str = "default") -> list[dict]:
    """Fresh random credentials: the Ray auth token, Redis and RabbitMQ passwords (admin,
    and the least-privilege worker user's), and the queue message signing key."""

    def secret(name: str, data: dict[str, str]) -> dict:
        meta = _metadata(name, namespace, "credentials")
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": data}

    return [
        secret(AUTH_SECRET, {"auth_token": new_token()}),
        secret("ttg-redis-auth", {"password": new_token(24), "worker_password": new_token(24)}),
        secret(
            "ttg-rabbitmq-auth",
            {"username": "ttg", "password": new_token(24), "worker_password": new_token(24)},
        ),
        secret("ttg-signing-key", {"signing_key": f"k1:{new_token(32)}"}),
    ]


def to_yaml(objects: Sequence[dict]) -> str:
    """Objects as one multi-document YAML stream, keys in the order built."""
    return yaml.safe_dump_all(list(objects), sort_keys=False, width=1000)
