"""``python -m ttg_ray.kube``: render, apply, inspect and delete KubeRay objects, and submit
a sweep as a Ray Job to a dashboard address (``python -m ttg_ray.kuberay`` is the old name,
kept for one release).

Exit codes: 0 ok (job SUCCEEDED), 1 job failed or stopped, --timeout-s included (or the
sweep's own exit code when Ray reports it for a failed job), 2 bad usage or no such object,
3 cluster or API server unreachable or unusable (no kubeconfig, credentials refused, RBAC
forbidden, KubeRay CRDs not installed), or the Ray token missing or wrong (the message says
which variables to set).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from ttg_ray.cli.exits import run_main
from ttg_ray.errors import UsageError
from ttg_ray.kube import k8s, render, submit

log = logging.getLogger(__name__)


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
    p.add_argument("--autoscale", action="store_true", help="in-tree autoscaler on")
    p.add_argument("--min-workers", type=int, default=d.min_workers, help="with --autoscale")
    p.add_argument("--max-workers", type=int, help="with --autoscale (default: --workers)")
    j = render.JobOptions()
    p.add_argument("--active-deadline-s", type=int, default=j.active_deadline_s)
    p.add_argument("--ttl-after-finished-s", type=int, default=j.ttl_after_finished_s)
    p.add_argument("--backoff-limit", type=int, default=j.backoff_limit)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ttg_ray.kube",
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
        s.add_argument("kind", choices=sorted(k8s.KIND_NAMES))
        s.add_argument("name")
        s.add_argument("--namespace", default="default")
    s = sub.add_parser(
        "submit",
        help="submit the sweep as a Ray Job and follow its logs",
        description="Submit a sweep as a Ray Job. Everything after -- is passed to "
        "python -m ttg_ray.run in the job (its --grid, --function, --output ...; see "
        "python -m ttg_ray.run --help).",
        epilog="exit codes:\n"
        "  0  the job SUCCEEDED\n"
        "  1  the job was STOPPED (over --timeout-s, or by hand), or FAILED with no exit code\n"
        "  N  the job FAILED: the sweep's own exit code (1 some parameters failed, 2 bad input)\n"
        "  2  bad usage of submit\n"
        "  3  dashboard unreachable, or the Ray token missing or wrong\n\n"
        "example:\n  python -m ttg_ray.kube submit --address http://127.0.0.1:8265 -- \\\n"
        "    --params 100000 --function ttg_ray.workloads:cpu_bound --summary-json s.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--address", default="http://127.0.0.1:8265", help="Ray dashboard URL")
    s.add_argument("--submission-id", help="default: ttg-<random>")
    s.add_argument("--working-dir", help="upload this directory with the job (runtime_env)")
    s.add_argument("--no-follow", action="store_true", help="print the id and return")
    s.add_argument(
        "--timeout-s", type=float, default=0, help="stop the job after this (exit 1); 0=never"
    )
    _rehearse_options(sub)
    return p


def _rehearse_options(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser(
        "rehearse",
        help="start the RayCluster as network-namespace hosts here (root) and run the sweep",
    )
    h.add_argument("--workers", type=int, default=3, help="worker hosts (replicas)")
    h.add_argument("--kill-node-at", type=float, metavar="PCT", help="kill a worker host then")
    h.add_argument("--add-node-at", type=float, metavar="PCT", help="start one more host then")
    h.add_argument("--startup-timeout-s", type=float, default=180.0, help="per host")
    h.add_argument("--workdir", help="logs, temp dirs and results (default: a new temp dir)")
    h.add_argument("--report-json", metavar="PATH", help="write what the rehearsal saw")


def _objects(what: str, args: argparse.Namespace, sweep: list[str]) -> list[dict]:
    cluster = render.ClusterOptions(
        namespace=args.namespace,
        image=args.image,
        image_pull_policy=args.image_pull_policy,
        workers=args.workers,
        max_workers=args.max_workers if args.max_workers is not None else args.workers,
        autoscale=args.autoscale,
        min_workers=args.min_workers,
        worker_cpus=args.worker_cpus,
        worker_memory=args.worker_memory,
        head_cpus=args.head_cpus,
        head_memory=args.head_memory,
    )
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.autoscale and not 0 <= cluster.min_workers <= cluster.max_workers:
        raise UsageError("--autoscale needs 0 <= --min-workers <= --max-workers")
    if not args.autoscale and args.max_workers is not None:
        raise UsageError("--max-workers and --min-workers go with --autoscale")
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
        k8s.apply(_read_objects(args.file) if args.file else _objects(args.what, args, sweep))
        return 0
    if args.command == "status":
        return k8s.status(args)
    if args.command == "delete":
        return k8s.delete(args)
    if args.command == "rehearse":
        return _rehearse(args, sweep)
    return submit.run(args, sweep)


def _rehearse(args: argparse.Namespace, sweep: list[str]) -> int:
    from ttg_ray.kube import rehearse

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    options = rehearse.RehearsalOptions(
        workers=args.workers,
        kill_node_at=args.kill_node_at,
        add_node_at=args.add_node_at,
        sweep=tuple(sweep),
        startup_timeout_s=args.startup_timeout_s,
        workdir=args.workdir,
        report_json=args.report_json,
    )
    # SIGTERM unwinds like Ctrl-C, so the teardown runs either way.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        return rehearse.run(options)
    except KeyboardInterrupt:
        print("interrupted; everything the rehearsal started is gone", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    own, sweep = _split_sweep(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(message)s")
    return run_main(lambda: _dispatch(args, sweep))


if __name__ == "__main__":
    sys.exit(main())
