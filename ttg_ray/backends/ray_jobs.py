"""The Ray job API client, for submitting a sweep to a cluster (``python -m ttg_ray.kube
submit``): the one place outside the Ray backend that imports ray, with its errors
translated into ttg_ray's."""

from __future__ import annotations

from typing import Any

from ttg_ray.errors import BackendUnavailable


def job_client(address: str) -> Any:
    """A JobSubmissionClient for the dashboard at ``address``; BackendUnavailable when it
    cannot be reached."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError) as err:
        raise BackendUnavailable(
            f"cannot reach the Ray dashboard at {address}: {err}; start the cluster or "
            "`kubectl port-forward svc/ttg-ray-head-svc 8265:8265`, and with token "
            "auth export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=..."
        ) from err
