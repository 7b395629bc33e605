"""Offline checks of Kubernetes objects: KubeRay CRD schemas (as the API server applies them)
plus the operator's rules a schema cannot express. Needs jsonschema; no cluster."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@dataclass(frozen=True)
class Problem:
    """One reason an object would be refused, with the exact field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def format_path(parts: Iterable[Any]) -> str:
    """('spec', 'workerGroupSpecs', 0, 'replicas') -> 'spec.workerGroupSpecs[0].replicas'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def load_crd_schemas(crd_dir: Path, version: str = "v1") -> dict[str, dict]:
    """The openAPIV3Schema of each KubeRay kind, by kind name."""
    schemas = {}
    for kind, filename in CRD_FILES.items():
        crd = yaml.safe_load((crd_dir / filename).read_text())
        for served in crd["spec"]["versions"]:
            if served["name"] == version:
                schemas[kind] = served["schema"]["openAPIV3Schema"]
    return schemas


def closed_schema(node: Any, top: bool = True) -> Any:
    """The structural schema as JSON Schema: objects reject fields they do not declare
    (the API server prunes or, with strict field validation, refuses them), and
    `nullable` admits null. The top-level metadata is ObjectMeta, checked on its own."""
    if isinstance(node, list):
        return [closed_schema(item, False) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: closed_schema(value, False) for key, value in node.items()}
    if top:
        out["properties"] = dict(out["properties"], metadata=_OBJECT_META)
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if node.get("type") == "object" and not preserve and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


def apply_defaults(value: Any, schema: dict) -> Any:
    """A copy of value with the schema's defaults filled in, as the API server does
    before it checks `required`."""
    value = copy.deepcopy(value)
    _fill(value, schema)
    return value


def _fill(value: Any, schema: dict) -> None:
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, item in value.items():
            sub = props.get(name, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                _fill(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill(item, schema["items"])


def schema_problems(obj: dict, schema: dict) -> list[Problem]:
    """Every schema violation of obj (defaults applied first), unknown fields by name."""
    filled = apply_defaults(obj, schema)
    validator = jsonschema.Draft202012Validator(closed_schema(schema))
    problems = []
    for err in validator.iter_errors(filled):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            known = err.schema.get("properties", {})
            for name in sorted(set(err.instance) - set(known)):
                problems.append(Problem(format_path([*path, name]), "unknown field"))
        else:
            problems.append(Problem(format_path(path), err.message))
    problems.extend(_list_problems(filled, schema, []))
    return sorted(problems, key=str)


def _list_problems(value: Any, schema: dict, path: list) -> Iterator[Problem]:
    """x-kubernetes-list-type map/set: keys unique, as the API server enforces."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name, item in value.items():
            sub = props.get(name, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                yield from _list_problems(item, sub, [*path, name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        keys = schema.get("x-kubernetes-list-map-keys")
        kind = schema.get("x-kubernetes-list-type")
        seen = set()
        for i, item in enumerate(value):
            if kind in ("map", "set"):
                ident = _identity(item, keys if kind == "map" else None)
                if ident in seen:
                    yield Problem(format_path([*path, i]), f"duplicate entry {ident!r}")
                seen.add(ident)
            yield from _list_problems(item, schema["items"], [*path, i])


def _identity(item: Any, keys: list[str] | None) -> Any:
    if keys and isinstance(item, dict):
        return tuple(item.get(key) for key in keys)
    return yaml.safe_dump(item, sort_keys=True)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _meta_problems(obj: dict) -> Iterator[Problem]:
    name = obj.get("metadata", {}).get("name", "")
    if not isinstance(name, str) or not _DNS1035.match(name) or len(name) > 63:
        yield Problem("metadata.name", f"{name!r} must be a DNS-1035 label of at most 63 chars")


def cluster_spec_problems(spec: dict, path: list) -> Iterator[Problem]:
    """KubeRay's validateRayClusterSpec rules the CRD schema does not encode."""
    head = spec.get("headGroupSpec", {})
    groups = spec.get("workerGroupSpecs", []) or []
    for where, params in [(["headGroupSpec"], head.get("rayStartParams", {}))] + [
        (["workerGroupSpecs", i], g.get("rayStartParams", {})) for i, g in enumerate(groups)
    ]:
        for key, val in (params or {}).items():
            if not isinstance(val, str):
                yield Problem(
                    format_path([*path, *where, "rayStartParams", key]),
                    f"value {val!r} must be a string (quote it in YAML)",
                )
    if not head.get("template", {}).get("spec", {}).get("containers"):
        yield Problem(
            format_path([*path, "headGroupSpec", "template", "spec", "containers"]),
            "the head needs at least one container (the first runs Ray)",
        )
    names = set()
    for i, group in enumerate(groups):
        where = [*path, "workerGroupSpecs", i]
        if group.get("groupName") in names:
            yield Problem(format_path([*where, "groupName"]), "duplicate worker group name")
        names.add(group.get("groupName"))
        yield from _group_problems(group, where)
    auth = (spec.get("authOptions") or {}).get("mode")
    version = spec.get("rayVersion")
    if auth == "token" and (not version or _version(version) < (2, 52)):
        yield Problem(
            format_path([*path, "rayVersion"]),
            "authOptions.mode=token needs rayVersion 2.52.0 or newer",
        )


def _group_problems(group: dict, path: list) -> Iterator[Problem]:
    low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
    replicas = group.get("replicas", low)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        yield Problem(format_path([*path, "minReplicas"]), f"{low} > maxReplicas {high}")
    if all(isinstance(v, int) for v in (low, high, replicas)) and not low <= replicas <= high:
        yield Problem(
            format_path([*path, "replicas"]),
            f"{replicas} must lie in minReplicas..maxReplicas ({low}..{high})",
        )
    if group.get("numOfHosts", 1) < 1:
        yield Problem(format_path([*path, "numOfHosts"]), "must be at least 1")
    if not group.get("template", {}).get("spec", {}).get("containers"):
        yield Problem(
            format_path([*path, "template", "spec", "containers"]),
            "a worker group needs at least one container",
        )


def rayjob_problems(obj: dict) -> Iterator[Problem]:
    """KubeRay's validateRayJobSpec rules the CRD schema does not encode."""
    spec = obj.get("spec", {})
    has_cluster = "rayClusterSpec" in spec
    selector = spec.get("clusterSelector")
    if has_cluster == bool(selector):
        yield Problem("spec", "set exactly one of rayClusterSpec and clusterSelector")
    if selector and spec.get("shutdownAfterJobFinishes"):
        yield Problem("spec.shutdownAfterJobFinishes", "not allowed with clusterSelector")
    if spec.get("ttlSecondsAfterFinished", 0) < 0:
        yield Problem("spec.ttlSecondsAfterFinished", "must be >= 0")
    if spec.get("ttlSecondsAfterFinished") and not spec.get("shutdownAfterJobFinishes"):
        yield Problem("spec.ttlSecondsAfterFinished", "needs shutdownAfterJobFinishes: true")
    if spec.get("activeDeadlineSeconds", 1) <= 0:
        yield Problem("spec.activeDeadlineSeconds", "must be > 0")
    if spec.get("backoffLimit", 0) < 0:
        yield Problem("spec.backoffLimit", "must be >= 0")
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode != "InteractiveMode" and not spec.get("entrypoint"):
        yield Problem("spec.entrypoint", f"required in {mode}")
    if has_cluster:
        yield from cluster_spec_problems(spec["rayClusterSpec"], ["spec", "rayClusterSpec"])


def operator_problems(obj: dict) -> list[Problem]:
    """The rules KubeRay's webhook/controller enforce beyond the schema."""
    problems = list(_meta_problems(obj))
    if obj.get("kind") == "RayCluster":
        problems.extend(cluster_spec_problems(obj.get("spec", {}), ["spec"]))
    elif obj.get("kind") == "RayJob":
        problems.extend(rayjob_problems(obj))
    return problems


def validate_kuberay(obj: dict, schemas: dict[str, dict]) -> list[Problem]:
    """All problems with a KubeRay object: schema (defaults applied) then operator rules."""
    kind = obj.get("kind")
    if obj.get("apiVersion") != "ray.io/v1" or kind not in schemas:
        return [
            Problem("apiVersion", f"not a ray.io/v1 KubeRay kind: {obj.get('apiVersion')} {kind}")
        ]
    filled = apply_defaults(obj, schemas[kind])
    return schema_problems(obj, schemas[kind]) + operator_problems(filled)


def core_problems(obj: dict, k8s_version: str) -> list[Problem]:
    """Core kinds (Deployment, Service, PVC, Secret...) checked strictly by
    kubernetes-validate against the upstream schemas of one Kubernetes version."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [Problem(format_path(err.path), err.message)]
    return []
