"""Submit a sweep to a Ray cluster's job API and follow it to its end: the sweep runs as
``python -m ttg_ray.run --backend ray ...`` inside the cluster's image."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ttg_ray.backends.ray_jobs import follow_logs, job_api_errors, job_client
from ttg_ray.errors import BackendUnavailable, TtgError, UsageError
from ttg_ray.kube import render

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# How long polling keeps retrying an unreachable dashboard (a port-forward being restarted)
# before giving up; the job itself keeps running in the cluster either way.
LOST_DASHBOARD_S = 300.0


def submit(
    address: str, sweep: list[str], submission_id: str | None = None, working_dir: str | None = None
) -> tuple[Any, str]:
    """Send the sweep as a Ray Job; returns the client and the submission id."""
    client = job_client(address)
    runtime_env = {"working_dir": working_dir} if working_dir else None
    try:
        with job_api_errors(address):
            job_id = client.submit_job(
                entrypoint=render.entrypoint(sweep or render.DEFAULT_SWEEP),
                submission_id=submission_id or f"ttg-{uuid.uuid4().hex[:12]}",
                runtime_env=runtime_env,
            )
    except RuntimeError as err:
        raise TtgError(f"the Ray dashboard at {address} refused the job: {err}") from err
    return client, job_id


def wait_for_end(
    client: Any,
    job_id: str,
    address: str,
    deadline: float | None = None,
    poll_s: float = 0.5,
    lost_s: float = LOST_DASHBOARD_S,
) -> str:
    """Poll until the job is terminal (the log stream can end a moment before, or drop).
    Past ``deadline`` (time.monotonic()) the job is stopped once. An unreachable dashboard
    is retried for ``lost_s`` seconds, then BackendUnavailable names the job to look up."""
    stopped, lost_since = False, None
    while True:
        try:
            with job_api_errors(address):
                if deadline is not None and not stopped and time.monotonic() > deadline:
                    print(f"job {job_id}: over --timeout-s; stopping it", file=sys.stderr)
                    client.stop_job(job_id)
                    stopped = True
                status = str(client.get_job_status(job_id).value)
            lost_since = None
        except BackendUnavailable as err:
            if not isinstance(err.__cause__, ConnectionError):
                raise  # a refused token does not get better by waiting
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since >= lost_s:
                raise BackendUnavailable(
                    f"{err}; job {job_id} keeps running in the cluster: "
                    f"`ray job status {job_id}` once the dashboard answers again"
                ) from err.__cause__
            status = ""
        if status in TERMINAL:
            return status
        time.sleep(poll_s)


def follow(client: Any, job_id: str, address: str, out, timeout_s: float = 0) -> str:
    """Stream the job's logs to ``out``, then wait for its terminal status. When the log
    stream drops (a restarted port-forward), fall back to polling the status; past
    ``timeout_s`` (0 = never) stop the job."""
    deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        streamed = asyncio.run(
            asyncio.wait_for(follow_logs(client, job_id, out), timeout_s or None)
        )
        if not streamed:
            print(
                f"job {job_id}: the log stream dropped; polling its status until it ends "
                f"(logs: `ray job logs {job_id}`)",
                file=sys.stderr,
            )
    except TimeoutError:
        print(f"job {job_id}: over --timeout-s {timeout_s:g}; stopping it", file=sys.stderr)
        with job_api_errors(address):
            client.stop_job(job_id)
        deadline = None  # stopped once is enough
    return wait_for_end(client, job_id, address, deadline)


def job_exit_code(client: Any, job_id: str, status: str) -> int:
    """0 when SUCCEEDED; 1 when STOPPED (by --timeout-s or by hand: whatever the stopped
    driver exited with is the signal's, not the sweep's); when FAILED the sweep's own exit
    code if Ray knows it, else 1."""
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return 1
    code = getattr(client.get_job_info(job_id), "driver_exit_code", None)
    return code if isinstance(code, int) and code > 0 else 1


def run(args: argparse.Namespace, sweep: list[str]) -> int:
    if args.working_dir and not Path(args.working_dir).is_dir():
        raise UsageError(f"--working-dir {args.working_dir} is not a directory")
    client, job_id = submit(args.address, sweep, args.submission_id, args.working_dir)
    print(f"submitted {job_id} to {args.address}", file=sys.stderr)
    if args.no_follow:
        print(job_id)
        return 0
    status = follow(client, job_id, args.address, sys.stdout, args.timeout_s)
    print(f"job {job_id}: {status}", file=sys.stderr)
    with job_api_errors(args.address):
        return job_exit_code(client, job_id, status)
