"""Plain HTTP to a Ray dashboard with the cluster's token (Authorization: Bearer), for what
the rehearsal asks: a probe's status code, and the state API's tasks and nodes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from ttg_ray.errors import BackendUnavailable


def _request(url: str, token: str | None, method: str = "GET") -> urllib.request.Request:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    return request


def status(url: str, token: str | None = None, method: str = "GET", timeout_s: float = 5.0) -> int:
    """The HTTP status of one request; 0 when nothing answered."""
    try:
        with urllib.request.urlopen(_request(url, token, method), timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # URLError, refused, timed out
        return 0


def state(url: str, token: str, what: str, timeout_s: float = 30.0) -> list[dict]:
    """Rows of the state API (``what``: tasks, nodes, ...) with details, up to 10,000."""
    full = f"{url}/api/v0/{what}?detail=1&limit=10000"
    try:
        with urllib.request.urlopen(_request(full, token), timeout=timeout_s) as response:
            return json.load(response)["data"]["result"]["result"]
    except (OSError, ValueError, KeyError) as err:
        raise BackendUnavailable(
            f"cannot read {what} from the Ray dashboard at {url}: {err}; is the head up, "
            "and is RAY_AUTH_TOKEN the cluster's?"
        ) from err
