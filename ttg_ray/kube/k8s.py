"""The Kubernetes API side of ``python -m ttg_ray.kube``: apply, read and delete KubeRay
objects with the official client, imported only here and only when called (so ``render``
and ``submit`` work without it); its errors are translated into ttg_ray's."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from ttg_ray.errors import BackendUnavailable, TtgError, UsageError

GROUP, VERSION = "ray.io", "v1"
PLURALS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}
KIND_NAMES = {"raycluster": "RayCluster", "rayjob": "RayJob"}
# (connect, read) per request: a server that accepts and never answers fails, not hangs
REQUEST_TIMEOUT_S = (5.0, 30.0)
# RBAC verb -> the client method prefix
VERBS = {"create": "create", "get": "get", "update": "replace", "delete": "delete"}
# jobDeploymentStatus values in which KubeRay gave up on the job (activeDeadlineSeconds
# exceeded, submission failed, invalid spec), whatever jobStatus last said
FAILED_DEPLOYMENTS = {"Failed", "ValidationFailed"}


def _custom_api():
    try:
        from kubernetes import client, config
    except ImportError as err:
        raise UsageError("the kubernetes client is missing: pip install 'ttg-ray[k8s]'") from err
    try:
        config.load_kube_config()
    except (config.ConfigException, yaml.YAMLError) as kube_err:
        try:
            config.load_incluster_config()
        except config.ConfigException as err:
            raise BackendUnavailable(
                f"no usable Kubernetes configuration ({_one_line(kube_err)}): set KUBECONFIG "
                "to a working kubeconfig, or run kuberay/up.sh to create the Kind cluster"
            ) from err
    return client.CustomObjectsApi()


def _one_line(err: object) -> str:
    return " ".join(str(err).split())


def _status_message(err: Any) -> str:
    """The API server's own sentence from the Status body, else the HTTP reason."""
    try:
        return json.loads(err.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(err.reason)


def _api_error(err: Any, verb: str, namespace: str, plural: str, name: str) -> TtgError:
    """The ttg_ray error for an API server's refusal of ``verb`` on one custom object."""
    what, message = f"{plural}.{GROUP}", _status_message(err)
    try:
        is_status = json.loads(err.body).get("kind") == "Status"
    except (TypeError, ValueError, AttributeError):
        is_status = False
    if err.status == 404 and not is_status:
        return BackendUnavailable(
            f"the API server does not serve {what}/{VERSION}: the KubeRay operator and its "
            "CRDs are not installed in this cluster; run kuberay/up.sh (or helm install "
            "kuberay-operator kuberay/kuberay-operator)"
        )
    if err.status == 404:
        return UsageError(
            f"{message} in namespace {namespace}; `kubectl get {plural} -n {namespace}` "
            "lists the ones there"
        )
    if err.status == 401:
        return BackendUnavailable(
            f"the Kubernetes API server refused the kubeconfig's credentials ({message}); "
            "renew them (for Kind: kind export kubeconfig --name ttg)"
        )
    if err.status == 403:
        return BackendUnavailable(
            f"{message}; the kubeconfig's user needs the RBAC verb {verb} on {what} "
            f"(check: kubectl auth can-i {verb} {what} -n {namespace})"
        )
    if err.status in (400, 422):
        return UsageError(f"the API server rejected {plural}/{name}: {message}")
    if err.status >= 500:
        return BackendUnavailable(f"the Kubernetes API server failed ({err.status}): {message}")
    return TtgError(f"Kubernetes API error {err.status} on {plural}/{name}: {message}")


def _call(api: Any, verb: str, namespace: str, plural: str, *rest: Any) -> Any:
    """One API call on a ray.io/v1 custom object (``rest``: its name and/or body), with the
    client's errors translated into ttg_ray's."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    name = rest[0] if isinstance(rest[0], str) else rest[0].get("metadata", {}).get("name")
    method = getattr(api, f"{VERBS[verb]}_namespaced_custom_object")
    try:
        return method(GROUP, VERSION, namespace, plural, *rest, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as err:
        raise _api_error(err, verb, namespace, plural, name) from err
    except (HTTPError, OSError) as err:
        host = getattr(getattr(api, "api_client", None), "configuration", None)
        host = getattr(host, "host", "in the kubeconfig")
        reason = getattr(err, "reason", None) or err
        raise BackendUnavailable(
            f"cannot reach the Kubernetes API server at {host} ({_one_line(reason)}); is the "
            "cluster up (kubectl cluster-info), or does KUBECONFIG name the right one?"
        ) from err


def apply(objects: list[dict]) -> None:
    """Create each KubeRay object, or replace it when it exists already."""
    from kubernetes.client.exceptions import ApiException

    api = _custom_api()
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        if obj.get("apiVersion") != f"{GROUP}/{VERSION}" or kind not in PLURALS:
            raise UsageError(f"{kind} is not a ray.io/v1 kind; apply it with kubectl")
        where = (meta.get("namespace", "default"), PLURALS[kind])
        try:
            _call(api, "create", *where, obj)
            print(f"{kind.lower()}/{meta['name']} created")
        except TtgError as err:
            if not isinstance(err.__cause__, ApiException) or err.__cause__.status != 409:
                raise
            current = _call(api, "get", *where, meta["name"])
            obj = dict(
                obj, metadata=dict(meta, resourceVersion=current["metadata"]["resourceVersion"])
            )
            _call(api, "update", *where, meta["name"], obj)
            print(f"{kind.lower()}/{meta['name']} replaced")


def describe_status(kind: str, obj: dict) -> list[str]:
    """Readable lines from a RayJob's job and deployment status, or a RayCluster's state,
    replicas and conditions (fields of the KubeRay v1 CRDs)."""
    status = obj.get("status") or {}
    lines = [f"{kind}/{obj.get('metadata', {}).get('name')}"]
    if kind == "RayJob":
        keys = ("jobDeploymentStatus", "jobStatus", "reason", "message", "jobId", "rayClusterName")
        lines += [f"  {key}: {status[key]}" for key in keys if status.get(key)]
    else:
        keys = ("state", "reason", "readyWorkerReplicas", "desiredWorkerReplicas")
        lines += [f"  {key}: {status[key]}" for key in keys if status.get(key) not in (None, "")]
    for cond in status.get("conditions") or []:
        reason = f" ({cond['reason']})" if cond.get("reason") else ""
        lines.append(f"  condition {cond.get('type')}={cond.get('status')}{reason}")
    if len(lines) == 1:
        lines.append("  no status yet: is the KubeRay operator running?")
    return lines


def job_failed(obj: dict) -> bool:
    """True when the Ray job failed or was stopped, or KubeRay gave up on it (a RayJob past
    activeDeadlineSeconds is jobDeploymentStatus Failed while jobStatus still says RUNNING)."""
    status = obj.get("status") or {}
    return (
        status.get("jobStatus") in ("FAILED", "STOPPED")
        or status.get("jobDeploymentStatus") in FAILED_DEPLOYMENTS
    )


def status(args: argparse.Namespace) -> int:
    """Print the object's status; 1 for a RayJob that failed (see job_failed), else 0."""
    kind = KIND_NAMES[args.kind]
    obj = _call(_custom_api(), "get", args.namespace, PLURALS[kind], args.name)
    print("\n".join(describe_status(kind, obj)))
    return 1 if kind == "RayJob" and job_failed(obj) else 0


def delete(args: argparse.Namespace) -> int:
    kind = KIND_NAMES[args.kind]
    _call(_custom_api(), "delete", args.namespace, PLURALS[kind], args.name)
    print(f"{args.kind}/{args.name} deleted")
    return 0
