"""Every manifest in kuberay/ validated offline: KubeRay objects against the v1.7.0 CRD
schemas (unknown fields and wrong types refused, defaults applied before `required`) plus
the operator's own rules; core kinds with kubernetes-validate; and the project's rules
(head without task CPUs, one worker per node, hardened pods, matching versions)."""

from __future__ import annotations

import copy
import re
import shlex

import pytest
import ray
import tomllib
import yaml

from tests.support.k8s_schema import K8S_VERSION, KUBERAY_DIR, ROOT, crd_schemas  # noqa: F401
from tests.support.k8s_validate import (
    Problem,
    apply_defaults,
    core_problems,
    schema_problems,
    validate_kuberay,
)
from ttg_ray.kube import render

MANIFESTS = sorted(p.name for p in KUBERAY_DIR.glob("*.yaml") if p.name != "kind-config.yaml")


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBERAY_DIR / name).read_text()) if d]


def _all_docs() -> list[dict]:
    return [doc for name in MANIFESTS for doc in _docs(name)]


def _pod_specs(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "Deployment":
        return [spec["template"]["spec"]]
    if doc["kind"] == "RayJob":
        return [spec["submitterPodTemplate"]["spec"], *_cluster_pods(spec["rayClusterSpec"])]
    if doc["kind"] == "RayCluster":
        return _cluster_pods(spec)
    return []


def _cluster_pods(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def _paths(problems: list[Problem]) -> set[str]:
    return {p.path for p in problems}


def test_the_expected_manifests_exist():
    assert set(MANIFESTS) == {
        "raycluster.yaml",
        "rayjob.yaml",
        "redis.yaml",
        "rabbitmq.yaml",
        "queue-workers.yaml",
    }


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_validates(name, crd_schemas):  # noqa: F811
    docs = _docs(name)
    assert docs
    for doc in docs:
        if doc["apiVersion"] == "ray.io/v1":
            problems = validate_kuberay(doc, crd_schemas)
        else:
            problems = core_problems(doc, K8S_VERSION)
        assert problems == [], f"{name} {doc['kind']}: " + "; ".join(map(str, problems))


@pytest.mark.parametrize(
    ("name", "rendered"),
    [("raycluster.yaml", render.render_raycluster), ("rayjob.yaml", render.render_rayjob)],
)
def test_checked_in_manifest_equals_render_defaults(name, rendered):
    # Regenerate with `python -m ttg_ray.kube render raycluster|rayjob` (keep comments).
    assert _docs(name) == [rendered()]


def test_kind_config_has_one_control_plane_and_three_workers():
    config = yaml.safe_load((KUBERAY_DIR / "kind-config.yaml").read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert sorted(roles) == ["control-plane", "worker", "worker", "worker"]
    images = {node["image"] for node in config["nodes"]}
    # Pinned by digest, so a re-pushed tag cannot change the node image.
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(rf"kindest/node:v{re.escape(K8S_VERSION)}@sha256:[0-9a-f]{{64}}", image)


def test_head_takes_no_tasks_and_exposes_gcs_dashboard_client():
    spec = _docs("raycluster.yaml")[0]["spec"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 8265, 10001} <= ports


def test_three_workers_spread_one_per_node():
    # tests/test_kuberay_spread.py places the pods on the Kind nodes; here the fields.
    group = _docs("raycluster.yaml")[0]["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 3
    (spread,) = group["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["maxSkew"] == 1 and spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"]["ray.io/group"] == group["groupName"]
    # The tainted control plane must not count as an empty domain.
    assert spread["nodeTaintsPolicy"] == "Honor"


def test_versions_agree_everywhere():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("ray"))
    from packaging.requirements import Requirement

    assert Requirement(pin).specifier.contains(render.RAY_VERSION)
    assert ray.__version__ == render.RAY_VERSION
    assert f"ttg-ray:{pyproject['project']['version']}" == render.DEFAULT_IMAGE
    for doc in _docs("raycluster.yaml") + _docs("rayjob.yaml"):
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        assert spec["rayVersion"] == render.RAY_VERSION
    for doc in _all_docs():
        for pod in _pod_specs(doc):
            for c in pod["containers"]:
                if c["image"].startswith("ttg-ray"):
                    assert c["image"] == render.DEFAULT_IMAGE


def test_every_container_is_hardened_limited_and_probed():
    checked = 0
    for doc in _all_docs():
        for pod in _pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True
            for c in pod["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, c["name"]
                assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]), c["name"]
                assert {"cpu", "memory"} <= set(c["resources"]["limits"]), c["name"]
                if c["name"] in ("ray-head", "ray-worker"):
                    # KubeRay injects its own (httpGet /api/healthz, 120 x 5 s liveness)
                    # only where the template has none; ours would replace them.
                    assert "readinessProbe" not in c and "livenessProbe" not in c, c["name"]
                elif c["name"] != "ray-job-submitter":  # a one-shot Job: no probes
                    assert "readinessProbe" in c and "livenessProbe" in c, c["name"]
                checked += 1
    assert checked >= 9


def test_the_standalone_cluster_replaces_its_pods_when_the_template_changes():
    spec = _docs("raycluster.yaml")[0]["spec"]
    assert spec["upgradeStrategy"] == {"type": "Recreate"}
    assert render.render_raycluster()["spec"]["upgradeStrategy"] == {"type": "Recreate"}


def test_ray_pods_have_read_only_root_and_writable_tmp():
    for name in ("raycluster.yaml", "rayjob.yaml", "queue-workers.yaml"):
        for doc in _docs(name):
            for pod in _pod_specs(doc):
                volumes = {v["name"]: v for v in pod["volumes"]}
                for c in pod["containers"]:
                    assert c["securityContext"]["readOnlyRootFilesystem"] is True
                    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
                    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_ray_token_auth_is_on_with_the_secret_up_sh_creates():
    script = (KUBERAY_DIR / "up.sh").read_text()
    for doc in _docs("raycluster.yaml") + _docs("rayjob.yaml"):
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        assert spec["authOptions"] == {"mode": "token", "secretName": render.AUTH_SECRET}
    assert f'ensure_secret {render.AUTH_SECRET} "auth_token=' in script


def test_rayjob_runs_the_cli_with_lifecycle_limits():
    spec = _docs("rayjob.yaml")[0]["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:5] == ["python", "-m", "ttg_ray.run", "--backend", "ray"]
    from ttg_ray.cli.run import build_parser

    args = build_parser().parse_args(argv[3:])
    assert args.backend == "ray" and args.params == 100_000
    assert spec["shutdownAfterJobFinishes"] is True
    # README: ttlSecondsAfterFinished 600, activeDeadlineSeconds 3600, backoffLimit 0
    assert spec["ttlSecondsAfterFinished"] == 600 and spec["activeDeadlineSeconds"] == 3600
    assert spec["backoffLimit"] == 0


def test_brokers_persist_and_take_credentials_from_secrets():
    assert "guest" not in yaml.safe_dump_all(_all_docs()).lower()
    assert all(d["kind"] != "Secret" for d in _all_docs()), "no credentials in the repo"
    redis = next(d for d in _docs("redis.yaml") if d["kind"] == "Deployment")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert "--appendonly yes" in " ".join(container["args"])
    assert {d["kind"] for d in _docs("redis.yaml")} >= {"PersistentVolumeClaim", "Service"}
    rabbit = next(d for d in _docs("rabbitmq.yaml") if d["kind"] == "Deployment")
    env = {e["name"]: e for e in rabbit["spec"]["template"]["spec"]["containers"][0]["env"]}
    for var in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "ttg-rabbitmq-auth"
    assert any(d["kind"] == "PersistentVolumeClaim" for d in _docs("rabbitmq.yaml"))


def test_queue_workers_run_the_worker_module_for_each_backend():
    url_variable = {"redis": "TTG_REDIS_URL", "rabbitmq": "TTG_AMQP_URL"}
    backends = []
    for doc in _docs("queue-workers.yaml"):
        container = doc["spec"]["template"]["spec"]["containers"][0]
        backend = container["command"][container["command"].index("--backend") + 1]
        backends.append(backend)
        assert container["command"] == [
            "python", "-m", "ttg_ray.worker", "--backend", backend,
            "--allow-module", "ttg_ray.workloads",
        ]  # fmt: skip
        names = {e["name"] for e in container["env"]}
        assert names & set(url_variable.values()) == {url_variable[backend]}, backend
    assert sorted(backends) == ["rabbitmq", "redis"]


# A deliberately broken RayCluster: each defect is refused with its exact field path.
BROKEN = [
    (
        lambda s: s["headGroupSpec"]["template"]["spec"]["containers"][0].update(
            imagePullPolicyy="x"
        ),
        "spec.headGroupSpec.template.spec.containers[0].imagePullPolicyy",
        "unknown field",
    ),
    (
        lambda s: s["workerGroupSpecs"][0].update(replicas="3"),
        "spec.workerGroupSpecs[0].replicas",
        "is not of type 'integer'",
    ),
    (
        lambda s: s["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
        "spec.headGroupSpec.rayStartParams.num-cpus",
        "string",
    ),
    (
        lambda s: s["workerGroupSpecs"][0].update(minReplicas=4, maxReplicas=3),
        "spec.workerGroupSpecs[0].minReplicas",
        "> maxReplicas",
    ),
    (
        lambda s: s["workerGroupSpecs"][0].update(replicas=5),
        "spec.workerGroupSpecs[0].replicas",
        "minReplicas..maxReplicas",
    ),
    (
        lambda s: s["workerGroupSpecs"].append(copy.deepcopy(s["workerGroupSpecs"][0])),
        "spec.workerGroupSpecs[1].groupName",
        "duplicate",
    ),
    (lambda s: s.pop("headGroupSpec"), "spec", "'headGroupSpec' is a required property"),
    (
        lambda s: s["authOptions"].update(mode="password"),
        "spec.authOptions.mode",
        "is not one of",
    ),
    (lambda s: s.update(rayVersion="2.40.0"), "spec.rayVersion", "2.52.0 or newer"),
    (
        lambda s: s["workerGroupSpecs"][0]["template"]["spec"].update(
            topologySpreadConstraints=[{"maxSkew": 1}]
        ),
        "spec.workerGroupSpecs[0].template.spec.topologySpreadConstraints[0]",
        "'topologyKey' is a required property",
    ),
]


@pytest.mark.parametrize(("breaks", "path", "message"), BROKEN)
def test_broken_raycluster_is_refused_at_the_exact_path(breaks, path, message, crd_schemas):  # noqa: F811
    obj = _docs("raycluster.yaml")[0]
    breaks(obj["spec"])
    problems = validate_kuberay(obj, crd_schemas)
    assert any(p.path == path and message in p.message for p in problems), problems


def test_unknown_top_level_and_metadata_fields_are_refused(crd_schemas):  # noqa: F811
    obj = _docs("raycluster.yaml")[0]
    obj["specs"] = {}
    obj["metadata"]["lables"] = {}
    assert {"specs", "metadata.lables"} <= _paths(validate_kuberay(obj, crd_schemas))


def test_defaults_are_applied_before_required_is_checked():
    schema = {
        "type": "object",
        "required": ["mode"],
        "properties": {"mode": {"type": "string", "default": "K8sJobMode"}},
    }
    assert schema_problems({}, schema) == []
    assert apply_defaults({}, schema) == {"mode": "K8sJobMode"}
    del schema["properties"]["mode"]["default"]
    assert _paths(schema_problems({}, schema)) == {"<root>"}


def test_crd_defaults_fill_list_map_keys_before_duplicates_are_found(crd_schemas):  # noqa: F811
    # protocol defaults to TCP, so these two ports are the same list-map entry.
    obj = _docs("raycluster.yaml")[0]
    ports = obj["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    ports.append({"name": "again", "containerPort": 6379, "protocol": "TCP"})
    problems = validate_kuberay(obj, crd_schemas)
    assert any(
        p.path.startswith("spec.headGroupSpec.template.spec.containers[0].ports[")
        and "duplicate" in p.message
        for p in problems
    ), problems


def test_rayjob_operator_rules(crd_schemas):  # noqa: F811
    job = _docs("rayjob.yaml")[0]
    job["spec"]["clusterSelector"] = {"ray.io/cluster": "ttg-ray"}
    assert {"spec", "spec.shutdownAfterJobFinishes"} <= _paths(validate_kuberay(job, crd_schemas))
    job = _docs("rayjob.yaml")[0]
    job["spec"]["shutdownAfterJobFinishes"] = False
    del job["spec"]["entrypoint"]
    paths = _paths(validate_kuberay(job, crd_schemas))
    assert {"spec.ttlSecondsAfterFinished", "spec.entrypoint"} <= paths


def test_core_kinds_refuse_unknown_fields_and_wrong_types():
    deployment = next(d for d in _docs("redis.yaml") if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "one"
    assert _paths(core_problems(deployment, K8S_VERSION)) == {"spec.replicas"}
    service = next(d for d in _docs("redis.yaml") if d["kind"] == "Service")
    service["spec"]["portz"] = []
    assert core_problems(service, K8S_VERSION) == [
        Problem("spec", "Additional properties are not allowed ('portz' was unexpected)")
    ]
