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

from ttg_ray.backends.ray_jobs import job_client
from ttg_ray.errors import TtgError, UsageError
from ttg_ray.kube import render

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def submit(
    address: str, sweep: list[str], submission_id: str | None = None, working_dir: str | None = None
) -> tuple[Any, str]:
    """Send the sweep as a Ray Job; returns the client and the submission id."""
    client = job_client(address)
    runtime_env = {"working_dir": working_dir} if working_dir else None
    try:
        job_id = client.submit_job(
            entrypoint=render.entrypoint(sweep or render.DEFAULT_SWEEP),
            submission_id=submission_id or f"ttg-{uuid.uuid4().hex[:12]}",
            runtime_env=runtime_env,
        )
    except RuntimeError as err:
        raise TtgError(f"the Ray dashboard at {address} refused the job: {err}") from err
    return client, job_id


async def _follow(client: Any, job_id: str, out) -> None:
    async for lines in client.tail_job_logs(job_id):
        out.write(lines)
        out.flush()


def wait_for_end(client: Any, job_id: str, poll_s: float = 0.5) -> str:
    """Poll until the job is terminal (the log stream can end a moment before)."""
    while (status := str(client.get_job_status(job_id).value)) not in TERMINAL:
        time.sleep(poll_s)
    return status


def job_exit_code(client: Any, job_id: str, status: str) -> int:
    """0 when SUCCEEDED; else the sweep's own exit code when Ray knows it, else 1."""
    if status == "SUCCEEDED":
        return 0
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
    try:
        asyncio.run(asyncio.wait_for(_follow(client, job_id, sys.stdout), args.timeout_s or None))
    except TimeoutError:
        print(f"job {job_id}: over --timeout-s {args.timeout_s:g}; stopping it", file=sys.stderr)
        client.stop_job(job_id)
    status = wait_for_end(client, job_id)
    print(f"job {job_id}: {status}", file=sys.stderr)
    return job_exit_code(client, job_id, status)
