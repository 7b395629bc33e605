"""Where the tests find the KubeRay v1.7.0 CRDs (shared/, beside the repo, never copied in)
and the Kubernetes version core kinds are checked against (the Kind node image's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.support.k8s_validate import load_crd_schemas

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT.parent / "shared" / "kuberay" / "crds"
KUBERAY_DIR = ROOT / "kuberay"
K8S_VERSION = "1.33.1"  # kindest/node image in kuberay/kind-config.yaml


@pytest.fixture(scope="session")
def crd_schemas() -> dict[str, dict]:
    if not (CRD_DIR / "ray.io_rayclusters.yaml").is_file():
        missing_service(f"the KubeRay v1.7.0 CRDs in {CRD_DIR} (shared/kuberay/crds)")
    return load_crd_schemas(CRD_DIR)
