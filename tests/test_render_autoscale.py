"""`render --autoscale`: a RayCluster with the in-tree autoscaler, valid against the KubeRay
v1.7.0 CRDs, and a RayJob whose sweep asks for at most what the worker group can reach."""

from __future__ import annotations

import pytest
import yaml

from tests.support.k8s_schema import crd_schemas  # noqa: F401
from tests.support.k8s_validate import validate_kuberay
from ttg_ray.kube import cli, render


def _render(capsys, *args: str) -> dict:
    assert cli.main(["render", *args]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_autoscaling_raycluster_validates(capsys, crd_schemas):  # noqa: F811
    obj = _render(capsys, "raycluster", "--autoscale", "--min-workers", "0", "--max-workers", "5")
    assert validate_kuberay(obj, crd_schemas) == []
    spec = obj["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    group = spec["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (0, 0, 5)


def test_autoscaling_rayjob_validates_and_bounds_its_request(capsys, crd_schemas):  # noqa: F811
    obj = _render(capsys, "rayjob", "--autoscale", "--max-workers", "4", "--worker-cpus", "2")
    assert validate_kuberay(obj, crd_schemas) == []
    assert obj["spec"]["entrypoint"].endswith("--autoscale-cpus 8")


def test_without_autoscale_nothing_changes():
    spec = render.render_raycluster()["spec"]
    assert spec["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in spec


@pytest.mark.parametrize(
    "args",
    [["--autoscale", "--min-workers", "3", "--max-workers", "2"], ["--max-workers", "4"]],
)
def test_bad_autoscale_bounds_are_usage_errors(capsys, args):
    assert cli.main(["render", "raycluster", *args]) == 2
    assert "--autoscale" in capsys.readouterr().err
