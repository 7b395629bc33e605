"""The Kubernetes API side of ``python -m ttg_ray.kube``: apply, read and delete KubeRay
objects with the official client, imported only here and only when called (so ``render``
and ``submit`` work without it); its errors are translated into ttg_ray's."""

from __future__ import annotations

import argparse
from typing import Any

from ttg_ray.errors import BackendUnavailable, TtgError, UsageError

GROUP, VERSION = "ray.io", "v1"
PLURALS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}
KIND_NAMES = {"raycluster": "RayCluster", "rayjob": "RayJob"}


def _custom_api():
    try:
        from kubernetes import client, config
    except ImportError as err:
        raise UsageError("the kubernetes client is missing: pip install 'ttg-ray[k8s]'") from err
    try:
        config.load_kube_config()
    except config.ConfigException:
        try:
            config.load_incluster_config()
        except config.ConfigException as err:
            raise BackendUnavailable(
                "no Kubernetes configuration: set KUBECONFIG or run kuberay/up.sh first"
            ) from err
    return client.CustomObjectsApi()


def _call(fn, *args: Any, **kwargs: Any) -> Any:
    """Run one API call, translating the client's errors into ttg_ray's."""
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, **kwargs)
    except ApiException as err:
        if err.status == 404:
            raise UsageError(
                f"not found: {err.reason}; is the KubeRay operator installed?"
            ) from err
        raise TtgError(f"Kubernetes API error {err.status}: {err.reason}") from err
    except OSError as err:
        raise BackendUnavailable(f"cannot reach the Kubernetes API server: {err}") from err


def apply(objects: list[dict]) -> None:
    """Create each KubeRay object, or replace it when it exists already."""
    from kubernetes.client.exceptions import ApiException

    api = _custom_api()
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        if obj.get("apiVersion") != f"{GROUP}/{VERSION}" or kind not in PLURALS:
            raise UsageError(f"{kind} is not a ray.io/v1 kind; apply it with kubectl")
        where = (GROUP, VERSION, meta.get("namespace", "default"), PLURALS[kind])
        try:
            _call(api.create_namespaced_custom_object, *where, obj)
            print(f"{kind.lower()}/{meta['name']} created")
        except TtgError as err:
            if not isinstance(err.__cause__, ApiException) or err.__cause__.status != 409:
                raise
            current = _call(api.get_namespaced_custom_object, *where, meta["name"])
            obj = dict(
                obj, metadata=dict(meta, resourceVersion=current["metadata"]["resourceVersion"])
            )
            _call(api.replace_namespaced_custom_object, *where, meta["name"], obj)
            print(f"{kind.lower()}/{meta['name']} replaced")


def describe_status(kind: str, obj: dict) -> list[str]:
    """Readable lines from status.conditions, and for a RayJob its job status."""
    status = obj.get("status") or {}
    lines = [f"{kind}/{obj.get('metadata', {}).get('name')}"]
    if kind == "RayJob":
        for key in ("jobDeploymentStatus", "jobStatus", "jobId", "rayClusterName", "message"):
            if status.get(key):
                lines.append(f"  {key}: {status[key]}")
    else:
        for key in ("state", "readyWorkerReplicas", "desiredWorkerReplicas"):
            if key in status:
                lines.append(f"  {key}: {status[key]}")
    for cond in status.get("conditions") or []:
        reason = f" ({cond['reason']})" if cond.get("reason") else ""
        lines.append(f"  condition {cond.get('type')}={cond.get('status')}{reason}")
    if len(lines) == 1:
        lines.append("  no status yet: is the KubeRay operator running?")
    return lines


def status(args: argparse.Namespace) -> int:
    kind = KIND_NAMES[args.kind]
    api = _custom_api()
    obj = _call(
        api.get_namespaced_custom_object, GROUP, VERSION, args.namespace, PLURALS[kind], args.name
    )
    print("\n".join(describe_status(kind, obj)))
    job_status = (obj.get("status") or {}).get("jobStatus")
    return 1 if job_status in ("FAILED", "STOPPED") else 0


def delete(args: argparse.Namespace) -> int:
    kind = KIND_NAMES[args.kind]
    api = _custom_api()
    _call(
        api.delete_namespaced_custom_object,
        GROUP,
        VERSION,
        args.namespace,
        PLURALS[kind],
        args.name,
    )
    print(f"{args.kind}/{args.name} deleted")
    return 0
