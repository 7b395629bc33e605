"""``python -m ttg_ray.kuberay``: render, apply, inspect and delete KubeRay objects, and submit
a sweep as a Ray Job to a dashboard address. The only module that imports `kubernetes`
(lazily, so `render` and `submit` work without it).

Exit codes: 0 ok (job SUCCEEDED), 1 job failed or stopped (or the sweep's own exit code
when Ray reports it), 2 bad usage, 3 cluster or API server unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ttg_ray import kuberay_render as render
from ttg_ray.errors import BackendUnavailable, TtgError, UsageError

log = logging.getLogger(__name__)

GROUP, VERSION = "ray.io", "v1"
PLURALS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}
KIND_NAMES = {"raycluster": "RayCluster", "rayjob": "RayJob"}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _split_sweep(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Everything after the first '--' is the sweep's own arguments."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def _render_options(p: argparse.ArgumentParser) -> None:
    d = render.ClusterOptions()
    p.add_argument("--name", help="object name (default ttg-ray / ttg-sweep)")
    p.add_argument("--namespace", default=d.namespace)
    p.add_argument("--image", default=d.image)
    p.add_argument("--image-pull-policy", default=d.image_pull_policy)
    p.add_argument("--workers", type=int, default=d.workers, help="worker pods")
    p.add_argument("--worker-cpus", default=d.worker_cpus)
    p.add_argument("--worker-memory", default=d.worker_memory)
    p.add_argument("--head-cpus", default=d.head_cpus)
    p.add_argument("--head-memory", default=d.head_memory)
    j = render.JobOptions()
    p.add_argument("--active-deadline-s", type=int, default=j.active_deadline_s)
    p.add_argument("--ttl-after-finished-s", type=int, default=j.ttl_after_finished_s)
    p.add_argument("--backoff-limit", type=int, default=j.backoff_limit)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ttg_ray.kuberay",
        description="KubeRay objects for ttg_ray sweeps. Sweep arguments go after '--'.",
    )
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="print RayCluster / RayJob / Secret YAML")
    r.add_argument("what", choices=("raycluster", "rayjob", "secrets"))
    _render_options(r)
    a = sub.add_parser("apply", help="create or replace KubeRay objects in the cluster")
    a.add_argument("what", nargs="?", choices=("raycluster", "rayjob"))
    a.add_argument("-f", "--file", help="apply this YAML file ('-' for stdin) instead")
    _render_options(a)
    for verb in ("status", "delete"):
        s = sub.add_parser(verb, help=f"{verb} a RayCluster or RayJob")
        s.add_argument("kind", choices=sorted(KIND_NAMES))
        s.add_argument("name")
        s.add_argument("--namespace", default="default")
    s = sub.add_parser("submit", help="submit the sweep as a Ray Job and follow its logs")
    s.add_argument("--address", default="http://127.0.0.1:8265", help="Ray dashboard URL")
    s.add_argument("--submission-id", help="default: ttg-<random>")
    s.add_argument("--working-dir", help="upload this directory with the job (runtime_env)")
    s.add_argument("--no-follow", action="store_true", help="print the id and return")
    s.add_argument("--timeout-s", type=float, default=0, help="stop the job after this; 0=never")
    return p


def _objects(what: str, args: argparse.Namespace, sweep: list[str]) -> list[dict]:
    cluster = render.ClusterOptions(
        namespace=args.namespace,
        image=args.image,
        image_pull_policy=args.image_pull_policy,
        workers=args.workers,
        max_workers=args.workers,
        worker_cpus=args.worker_cpus,
        worker_memory=args.worker_memory,
        head_cpus=args.head_cpus,
        head_memory=args.head_memory,
    )
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if what == "secrets":
        return render.render_secrets(args.namespace)
    if what == "raycluster":
        return [render.render_raycluster(replace(cluster, name=args.name or cluster.name))]
    job = render.JobOptions(
        sweep_args=tuple(sweep) or render.DEFAULT_SWEEP,
        active_deadline_s=args.active_deadline_s,
        ttl_after_finished_s=args.ttl_after_finished_s,
        backoff_limit=args.backoff_limit,
        cluster=cluster,
    )
    return [render.render_rayjob(replace(job, name=args.name or job.name))]


def _custom_api():
    try:
        from kubernetes import client, config
    except ImportError as err:
        raise UsageError("the kubernetes client is missing: pip install 'ttg-ray[k8s]'") from err
    try:
        config.load_kube_config()
    except config.ConfigException:
        try:
            config.load_incluster_config()
        except config.ConfigException as err:
            raise BackendUnavailable(
                "no Kubernetes configuration: set KUBECONFIG or run kuberay/up.sh first"
            ) from err
    return client.CustomObjectsApi()


def _call(fn, *args: Any, **kwargs: Any) -> Any:
    """Run one API call, translating the client's errors into ttg_ray's."""
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, **kwargs)
    except ApiException as err:
        if err.status == 404:
            raise UsageError(
                f"not found: {err.reason}; is the KubeRay operator installed?"
            ) from err
        raise TtgError(f"Kubernetes API error {err.status}: {err.reason}") from err
    except OSError as err:
        raise BackendUnavailable(f"cannot reach the Kubernetes API server: {err}") from err


def apply(objects: list[dict]) -> None:
    """Create each KubeRay object, or replace it when it exists already."""
    from kubernetes.client.exceptions import ApiException

    api = _custom_api()
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        if obj.get("apiVersion") != f"{GROUP}/{VERSION}" or kind not in PLURALS:
            raise UsageError(f"{kind} is not a ray.io/v1 kind; apply it with kubectl")
        where = (GROUP, VERSION, meta.get("namespace", "default"), PLURALS[kind])
        try:
            _call(api.create_namespaced_custom_object, *where, obj)
            print(f"{kind.lower()}/{meta['name']} created")
        except TtgError as err:
            if not isinstance(err.__cause__, ApiException) or err.__cause__.status != 409:
                raise
            current = _call(api.get_namespaced_custom_object, *where, meta["name"])
            obj = dict(
                obj, metadata=dict(meta, resourceVersion=current["metadata"]["resourceVersion"])
            )
            _call(api.replace_namespaced_custom_object, *where, meta["name"], obj)
            print(f"{kind.lower()}/{meta['name']} replaced")


def describe_status(kind: str, obj: dict) -> list[str]:
    """Readable lines from status.conditions, and for a RayJob its job status."""
    status = obj.get("status") or {}
    lines = [f"{kind}/{obj.get('metadata', {}).get('name')}"]
    if kind == "RayJob":
        for key in ("jobDeploymentStatus", "jobStatus", "jobId", "rayClusterName", "message"):
            if status.get(key):
                lines.append(f"  {key}: {status[key]}")
    else:
        for key in ("state", "readyWorkerReplicas", "desiredWorkerReplicas"):
            if key in status:
                lines.append(f"  {key}: {status[key]}")
    for cond in status.get("conditions") or []:
        reason = f" ({cond['reason']})" if cond.get("reason") else ""
        lines.append(f"  condition {cond.get('type')}={cond.get('status')}{reason}")
    if len(lines) == 1:
        lines.append("  no status yet: is the KubeRay operator running?")
    return lines


def _status(args: argparse.Namespace) -> int:
    kind = KIND_NAMES[args.kind]
    api = _custom_api()
    obj = _call(
        api.get_namespaced_custom_object, GROUP, VERSION, args.namespace, PLURALS[kind], args.name
    )
    print("\n".join(describe_status(kind, obj)))
    job_status = (obj.get("status") or {}).get("jobStatus")
    return 1 if job_status in ("FAILED", "STOPPED") else 0


def _delete(args: argparse.Namespace) -> int:
    kind = KIND_NAMES[args.kind]
    api = _custom_api()
    _call(
        api.delete_namespaced_custom_object,
        GROUP,
        VERSION,
        args.namespace,
        PLURALS[kind],
        args.name,
    )
    print(f"{args.kind}/{args.name} deleted")
    return 0


def _job_client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError) as err:
        raise BackendUnavailable(
            f"cannot reach the Ray dashboard at {address}: {err}; start the cluster or "
            "`kubectl port-forward svc/ttg-ray-head-svc 8265:8265`, and with token "
            "auth export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=..."
        ) from err


def submit(
    address: str, sweep: list[str], submission_id: str | None = None, working_dir: str | None = None
) -> tuple[Any, str]:
    """Send the sweep as a Ray Job; returns the client and the submission id."""
    client = _job_client(address)
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


def _submit(args: argparse.Namespace, sweep: list[str]) -> int:
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


def _read_objects(path: str) -> list[dict]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _dispatch(args: argparse.Namespace, sweep: list[str]) -> int:
    if args.command == "render":
        sys.stdout.write(render.to_yaml(_objects(args.what, args, sweep)))
        return 0
    if args.command == "apply":
        if bool(args.file) == bool(args.what):
            raise UsageError("apply takes either raycluster|rayjob or -f FILE")
        apply(_read_objects(args.file) if args.file else _objects(args.what, args, sweep))
        return 0
    if args.command == "status":
        return _status(args)
    if args.command == "delete":
        return _delete(args)
    return _submit(args, sweep)


def main(argv: Sequence[str] | None = None) -> int:
    own, sweep = _split_sweep(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(message)s")
    try:
        return _dispatch(args, sweep)
    except TtgError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
