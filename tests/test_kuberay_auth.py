"""Token authentication against a real `ray start --head` with RAY_AUTH_MODE=token (own free
ports and temp dir, stopped by PID), as a KubeRay head runs it with authOptions: a missing or
wrong token exits 3 with one line naming the variable to set, and the endpoint KubeRay's
injected probes use answers without a token."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid

import pytest

from tests.test_kuberay_submit import ROOT, running_head

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
TOKEN = uuid.uuid4().hex


@pytest.fixture(scope="module")
def token_head():
    with running_head(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN) as head:
        yield head


def _submit(url: str, tmp_path, **auth: str) -> subprocess.CompletedProcess:
    """The CLI in its own process: Ray reads the client's auth mode once per process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(auth, PYTHONPATH=str(ROOT), HOME=str(tmp_path))  # no ~/.ray/auth_token
    return subprocess.run(
        [sys.executable, "-m", "ttg_ray.kube", "submit", "--address", url, "--", "--params", "1"],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("auth", "names"),
    [
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}, "refused the token"),
        ({"RAY_AUTH_MODE": "token"}, "none was found"),
        ({"RAY_AUTH_MODE": "disabled"}, "RAY_AUTH_MODE=token"),
    ],
    ids=["wrong-token", "no-token", "auth-mode-off"],
)
def test_a_missing_or_wrong_token_exits_3_with_one_line(token_head, tmp_path, auth, names):
    url, _agent = token_head
    proc = _submit(url, tmp_path, **auth)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 3, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and names in lines[0]
    assert "RAY_AUTH_TOKEN=" in lines[0] and "kubectl get secret ttg-ray-auth" in lines[0]
    assert TOKEN not in proc.stderr


def test_the_right_token_runs_the_sweep(token_head, tmp_path):
    url, _agent = token_head
    proc = _submit(url, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert "SUCCEEDED" in proc.stderr


def test_kuberays_probe_endpoint_needs_no_token(token_head):
    # KubeRay 1.7.0 injects httpGet /api/healthz on the agent port (Ray >= 2.53); the
    # kubelet sends no token, so the endpoint must answer without one under token auth.
    from ttg_ray.kube import render

    _url, agent = token_head
    probe = f"http://127.0.0.1:{agent}{render.KUBERAY_HEALTH_PATH}"
    with urllib.request.urlopen(probe, timeout=10) as resp:
        body = resp.read().decode()
    assert resp.status == 200 and "raylet: success" in body and "gcs: success" in body
