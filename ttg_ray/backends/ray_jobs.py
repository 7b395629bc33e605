"""The Ray job API client, for submitting a sweep to a cluster (``python -m ttg_ray.kube
submit``): the one place outside the Ray backend that imports ray, with its errors
translated into ttg_ray's."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ttg_ray.errors import BackendUnavailable

log = logging.getLogger(__name__)

TOKEN_SOURCE = "$(kubectl get secret ttg-ray-auth -o jsonpath='{.data.auth_token}' | base64 -d)"
OVERRIDING_ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
REACH_HINT = (
    "start the cluster or `kubectl port-forward svc/ttg-ray-head-svc 8265:8265`, and with "
    "token auth export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=..."
)


def _token_given() -> bool:
    # Where Ray's client looks for a token: the variable, a file it names, the default file.
    return bool(
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").is_file()
    )


def _auth_problem(address: str) -> str:
    """One line naming the variable to set; Ray's own message runs to several lines of
    generic advice."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (
            f"the Ray dashboard at {address} requires a token: export RAY_AUTH_MODE=token "
            f"and RAY_AUTH_TOKEN={TOKEN_SOURCE}"
        )
    if _token_given():
        return (
            f"the Ray dashboard at {address} refused the token in RAY_AUTH_TOKEN: "
            f"set RAY_AUTH_TOKEN to the cluster's token, RAY_AUTH_TOKEN={TOKEN_SOURCE}"
        )
    return (
        f"the Ray dashboard at {address} requires a token and none was found: "
        f"export RAY_AUTH_TOKEN={TOKEN_SOURCE}"
    )


@contextlib.contextmanager
def _address_as_given() -> Iterator[None]:
    """Ray lets RAY_API_SERVER_ADDRESS or RAY_ADDRESS override the address a client is
    given, and a KubeRay pod sets RAY_ADDRESS to its GCS: hide both while the client is
    made, so --address is the one used."""
    saved = {k: os.environ.pop(k) for k in OVERRIDING_ADDRESS_VARS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def job_api_errors(address: str) -> Iterator[None]:
    """Translate the job API client's errors for a call to the dashboard at ``address``:
    an authentication failure or an unreachable dashboard is BackendUnavailable (exit 3).
    ray.exceptions.AuthenticationError derives from RayError, not RuntimeError, so it
    needs catching by name."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as err:
        raise BackendUnavailable(_auth_problem(address)) from err
    except ConnectionError as err:  # requests' ConnectionError is an OSError too
        raise BackendUnavailable(
            f"cannot reach the Ray dashboard at {address}: {REACH_HINT}"
        ) from err


def job_client(address: str) -> Any:
    """A JobSubmissionClient for the dashboard at ``address``; BackendUnavailable when it
    cannot be reached or refuses the token."""
    from ray.job_submission import JobSubmissionClient

    try:
        with job_api_errors(address), _address_as_given():
            return JobSubmissionClient(address)
    except RuntimeError as err:
        raise BackendUnavailable(
            f"cannot reach the Ray dashboard at {address}: {err}; {REACH_HINT}"
        ) from err


async def follow_logs(client: Any, job_id: str, out: TextIO) -> bool:
    """Copy the job's log stream to ``out`` until it ends. True when the stream ended
    cleanly; False when the connection dropped first (a restarted port-forward closes the
    WebSocket with 1006, which Ray raises as RuntimeError), so the caller can fall back to
    polling the job's status instead of ending in a traceback."""
    import aiohttp
    from ray.exceptions import AuthenticationError

    try:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()
    except (RuntimeError, OSError, aiohttp.ClientError, AuthenticationError) as err:
        log.warning("log stream of job %s dropped (%s); polling its status instead", job_id, err)
        return False
    return True
