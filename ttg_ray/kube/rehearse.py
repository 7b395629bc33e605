"""``python -m ttg_ray.kube rehearse``: the RayCluster that ``render`` produces, started as
network-namespace hosts on a bridge of its own (one per pod, each with its IP and the
`ray start` KubeRay would run there, token auth on), the RayJob's sweep submitted to the
head's job API from this side, a worker host killed (and one added) mid-run, then a report
and a teardown that leaves no namespace, link or process behind, on any exit."""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from ttg_ray.config import child_env
from ttg_ray.engine.store import read_store
from ttg_ray.errors import BackendUnavailable, UsageError
from ttg_ray.kube import dashboard, raystart, render, timeline
from ttg_ray.kube.netns import Host, Network, check_ready

log = logging.getLogger(__name__)


# What a host here does differently from a pod, and why; printed with every rehearsal.
ADAPTED = (
    "ray start --temp-dir=/tmp/ttgr-*/<host>: a pod's /tmp is its own; here hosts share one disk",
    "ray start --object-store-memory=30% of the memory limit: what Ray derives from the pod's "
    "cgroup limit, which a host here does not have",
    "RAY_USAGE_STATS_ENABLED=0: no traffic may leave the bridge (no default route either)",
    "the sweep's --output moves to <workdir>/head/tmp/ttg-results/, with a --summary-json",
    "a `ray start` that exits while starting is restarted (restartPolicy Always), not later",
    "worker hosts start one after another, not all at once: they share this machine's CPUs, "
    "and Ray gives a starting node 30 s to register",
    "the job is submitted by `python -m ttg_ray.kube submit` from this machine, not by a "
    "submitter pod (the RayJob's submitterPodTemplate)",
)


@dataclass(frozen=True)
class RehearsalOptions:
    workers: int = 3
    kill_node_at: float | None = None  # percent of the sweep done
    add_node_at: float | None = None
    sweep: tuple[str, ...] = ()  # the RayJob entrypoint's sweep arguments; () = render's
    startup_timeout_s: float = 180.0  # per host, restarts included
    workdir: str | None = None  # logs, temp dirs, results; default a fresh temp dir
    report_json: str | None = None


@dataclass
class RehearsalHost:
    host: Host
    role: str  # head | worker | added
    pod: raystart.PodStart
    cpus: int = 0
    events: dict[str, float] = field(default_factory=dict)  # started, ready, killed
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0

    def launch(self, log_path: Path) -> None:
        """Run the pod's command in its host, as the container's entrypoint."""
        self.host.popen(["bash", "-c", self.pod.command], self.env, log_path)


def _sweep_args(sweep: Sequence[str], results: Path) -> list[str]:
    """The sweep with its --output moved into the head's own dir (a pod's /tmp is its
    own; here every host shares one file system) and a --summary-json beside it."""
    args = list(sweep or render.DEFAULT_SWEEP)
    if "--output" in args:
        args[args.index("--output") + 1] = str(results / "results.jsonl")
    else:
        args += ["--output", str(results / "results.jsonl")]
    return [*args, "--summary-json", str(results / "summary.json")]


def _total(sweep: Sequence[str]) -> int:
    if "--params" not in sweep:
        raise UsageError("the rehearsal follows progress by --params N: give the sweep --params")
    return int(sweep[sweep.index("--params") + 1])


class Rehearsal:
    """One rehearsal; ``run()`` returns its exit code, ``report`` what it saw."""

    def __init__(self, options: RehearsalOptions, out: TextIO = sys.stdout):
        self.opts = options
        self.out = out
        self.cluster = render.render_raycluster(render.ClusterOptions(workers=options.workers))
        self.secret = render.render_secrets()[0]
        self.token = self.secret["stringData"]["auth_token"]
        self.job = render.render_rayjob(
            render.JobOptions(sweep_args=options.sweep or render.DEFAULT_SWEEP)
        )
        self.hosts: list[RehearsalHost] = []
        self.report: dict[str, Any] = {
            "not_honoured": raystart.not_honoured(self.cluster),
            "adapted": list(ADAPTED),
        }

    def _say(self, text: str) -> None:
        self.out.write(f"[rehearse] {text}\n")
        self.out.flush()

    def run(self) -> int:
        check_ready()
        root = Path(self.opts.workdir or tempfile.mkdtemp(prefix="ttg-rehearse-"))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        # Ray's sockets live under --temp-dir and a Unix socket path has 107 bytes at
        # most, so the hosts' temp dirs get a short root of their own.
        self.temp_root = Path(tempfile.mkdtemp(prefix="ttgr-", dir="/tmp"))
        self.report["ray_temp_root"] = str(self.temp_root)
        net = Network()
        self.report["bridge"] = {"name": net.bridge, "subnet": str(net.subnet)}
        code = 1
        try:
            with net:
                code = self._run_in(net)
                return code
        finally:
            left = net.leftovers()
            self.report["leftovers"] = left
            self._say(f"torn down: {left or 'nothing left'}")
            if code == 0:
                shutil.rmtree(self.temp_root, ignore_errors=True)
            else:
                self._say(f"Ray's own logs are kept in {self.temp_root}")
            if self.opts.report_json:
                Path(self.opts.report_json).write_text(json.dumps(self.report, indent=2) + "\n")

    def _run_in(self, net: Network) -> int:
        for note in self.report["not_honoured"]:
            self._say(f"not honoured here: {note}")
        for note in ADAPTED:
            self._say(f"adapted here: {note}")
        head = self._start(net, "head", 0)
        self.url = f"http://{head.host.ip}:{raystart.dashboard_port(self.cluster)}"
        self._wait_ready(head)
        for i in range(self.opts.workers):
            self._wait_ready(self._start(net, "worker", i))
        self._check_auth()
        code = self._sweep(net)
        self._analyse()
        return code if code != 0 else self._check_results()

    def _pod_fields(self, role: str, ip: str) -> dict[str, str]:
        name = self.cluster["metadata"]["name"]
        suffix = f"{random.randrange(16**5):05x}"
        pod = f"{name}-head-{suffix}" if role == "head" else f"{name}-workers-worker-{suffix}"
        # Each host stands for one Kubernetes node, named by its IP.
        return {
            "metadata.name": pod,
            "metadata.namespace": "default",
            "spec.nodeName": ip,
            "status.podIP": ip,
        }

    def _start(self, net: Network, role: str, index: int) -> RehearsalHost:
        spec = self.cluster["spec"]
        kind = "head" if role == "head" else "worker"
        group = spec["headGroupSpec"] if kind == "head" else spec["workerGroupSpecs"][0]
        head_ip = self.hosts[0].host.ip if self.hosts else None
        etc_hosts = {raystart.head_service(self.cluster): head_ip} if head_ip else None
        host = net.add_host(f"{role}-{index}", etc_hosts)
        secrets = {self.secret["metadata"]["name"]: self.secret["stringData"]}
        fields = self._pod_fields(role, host.ip)
        pod = raystart.pod_start(self.cluster, kind, group, fields, secrets)
        flags = {"temp_dir": str(self.temp_root / host.name)}
        if (store := raystart.object_store_bytes(pod.start_params)) is not None:
            flags["object_store_memory"] = str(store)  # Ray's share of the pod's cgroup limit
        pod = pod.with_flags(**flags)
        env = {k: v for k, v in child_env().items() if k != "RAY_ADDRESS"}
        env.update(pod.env, RAY_USAGE_STATS_ENABLED="0")
        entry = RehearsalHost(host, role, pod, int(pod.start_params.get("num-cpus", "0")), env=env)
        entry.events["started"] = time.time()
        entry.launch(self.root / f"{host.name}.log")
        self.hosts.append(entry)
        self._say(f"{host.name} {host.ip} ({pod.pod_name}): {pod.command}")
        return entry

    def _wait_ready(self, entry: RehearsalHost) -> None:
        """Until the pod's readinessProbe (httpGet) answers 200 at the host's IP."""
        path, port = entry.pod.readiness_path, entry.pod.readiness_port
        url = f"http://{entry.host.ip}:{port}{path}"
        deadline = time.monotonic() + self.opts.startup_timeout_s
        while dashboard.status(url, None, timeout_s=2) != 200:
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"{entry.host.name} not ready at {url} after {self.opts.startup_timeout_s:g} "
                    f"s; see {self.root / entry.host.name}.log"
                )
            if entry.host.procs[-1].poll() is not None:
                self._restart(entry)
            self._check_head()
            time.sleep(0.5)
        entry.events["ready"] = time.time()
        took = entry.events["ready"] - entry.events["started"]
        self._say(f"{entry.host.name} ready ({path} 200) in {took:.1f} s")

    def _check_head(self) -> None:
        """A head whose `ray start` exited takes the cluster with it (no GCS fault
        tolerance): stop here, not after the workers' timeouts."""
        head = self.hosts[0]
        if "ready" in head.events and head.host.procs[-1].poll() is not None:
            raise BackendUnavailable(
                f"the head's `ray start` exited after it was ready; see "
                f"{self.root / head.host.name}.log (an overloaded machine can do this)"
            )

    def _restart(self, entry: RehearsalHost) -> None:
        """A container whose `ray start` exited is restarted, as the kubelet does for a
        RayCluster pod (restartPolicy Always): first whatever it left behind goes."""
        entry.host.kill()
        entry.restarts += 1
        self._say(f"{entry.host.name}: `ray start` exited; restart {entry.restarts}")
        time.sleep(min(10.0, 2.0**entry.restarts))  # the kubelet's back-off, shortened
        entry.launch(self.root / f"{entry.host.name}.log")

    def _check_auth(self) -> None:
        jobs = f"{self.url}/api/jobs/"
        codes = {
            "no token": dashboard.status(jobs, None, "POST"),
            "wrong token": dashboard.status(jobs, "0" * len(self.token), "POST"),
            "right token": dashboard.status(jobs, self.token),
        }
        self.report["auth"] = codes
        self._say(f"job API from the host side: {codes}")
        if codes["right token"] != 200 or codes["no token"] < 400 or codes["wrong token"] < 400:
            raise BackendUnavailable(f"token authentication is not working as set: {codes}")

    def _sweep(self, net: Network) -> int:
        results = self.root / "head" / "tmp" / "ttg-results"
        results.mkdir(parents=True, exist_ok=True)
        self.results = results
        self.report["results_path"] = str(results / "results.jsonl")
        sweep = _sweep_args(self.opts.sweep or render.DEFAULT_SWEEP, results)
        spec = self.job["spec"]
        argv = [
            sys.executable, "-m", "ttg_ray.kube", "submit", "--address", self.url,
            "--timeout-s", str(spec["activeDeadlineSeconds"]), "--", *sweep,
        ]  # fmt: skip
        self._say(f"submitting: {render.entrypoint(sweep)}")
        env = child_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        env.pop("RAY_ADDRESS", None)
        started = time.time()
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        tee = threading.Thread(target=self._tee, args=(proc.stdout,), daemon=True)
        tee.start()
        try:
            self._follow(net, proc, _total(sweep), started)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            tee.join(timeout=5)
        self.report["sweep_s"] = time.time() - started
        self.report["submit_exit_code"] = proc.returncode
        return proc.returncode

    def _tee(self, stream: TextIO) -> None:
        with open(self.root / "job.log", "w") as log_file:
            for line in stream:
                self.out.write(line)
                log_file.write(line)
        self.out.flush()

    def _follow(self, net: Network, proc: subprocess.Popen, total: int, started: float) -> None:
        """Watch the result file and kill or add a worker host at the given progress."""
        path, done, offset = self.results / "results.jsonl", 0, 0
        kill_at, add_at = self.opts.kill_node_at, self.opts.add_node_at
        added: RehearsalHost | None = None
        while proc.poll() is None:
            self._check_head()
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(offset)
                    block = f.read()
                offset += len(block)
                done += block.count(b"\n")
            pct = 100.0 * done / max(1, total)
            if kill_at is not None and pct >= kill_at:
                kill_at = None
                self._kill(self.hosts[self.opts.workers], pct)  # the last of the replicas
            if add_at is not None and pct >= add_at:
                add_at = None
                added = self._start(net, "added", len(self.hosts) - 1)
                self.report["added"] = {"ip": added.host.ip, "at_s": time.time(), "pct": pct}
            if added is not None and "ready" not in added.events:
                self._check_added(added)
            time.sleep(0.2)

    def _check_added(self, entry: RehearsalHost) -> None:
        """Without stopping the sweep: restart its `ray start` if it exited, note when
        its readiness probe first answers."""
        if entry.host.procs[-1].poll() is not None:
            self._restart(entry)
        url = f"http://{entry.host.ip}:{entry.pod.readiness_port}{entry.pod.readiness_path}"
        if dashboard.status(url, None, timeout_s=0.5) == 200:
            entry.events["ready"] = time.time()
            took = entry.events["ready"] - entry.events["started"]
            self.report["added"]["ready_after_s"] = took
            self._say(f"{entry.host.name} ready in {took:.1f} s")

    def _kill(self, entry: RehearsalHost, pct: float) -> None:
        at = time.time()
        killed = entry.host.kill()
        entry.host.unplug()
        entry.events["killed"] = at
        self.report["killed"] = {"ip": entry.host.ip, "at_s": at, "pct": pct, "processes": killed}
        self._say(f"killed {entry.host.name} {entry.host.ip} at {pct:.0f} %: {killed} processes")

    def _analyse(self) -> None:
        tasks = dashboard.state(self.url, self.token, "tasks")
        tl = timeline.build(tasks, dashboard.state(self.url, self.token, "nodes"))
        self.report["hosts"] = [
            {
                "name": h.host.name,
                "ip": h.host.ip,
                "role": h.role,
                "cpus": h.cpus,
                "restarts": h.restarts,
                **h.events,
            }
            for h in self.hosts
        ]
        self.report["chunks_per_host"] = dict(tl.finished())
        self.report["chunk_attempts"] = len(tl.attempts)
        killed, added = self.report.get("killed"), self.report.get("added")
        if killed:
            at, ip = killed["at_s"], killed["ip"]
            self.report["before_kill"] = dict(tl.finished(before_s=at))
            self.report["after_kill"] = dict(tl.started(after_s=at))
            self.report["lost_with_node"] = len(tl.lost_on(ip))
            self.report["rerun_s"] = tl.rerun_s(ip, at)
            self.report["recovery_s"] = tl.recovery_s(at)
            death = tl.node_death_s.get(ip)
            self.report["node_dead_after_s"] = death - at if death else None
        if added:
            self.report["after_add"] = dict(tl.started(after_s=added["at_s"]))
        self._print_report()

    def _print_report(self) -> None:
        for line in timeline.report_lines(self.report):
            self._say(line)

    def _check_results(self) -> int:
        seen: dict[int, int] = {}
        for record in read_store(self.results / "results.jsonl"):
            seen[record["index"]] = seen.get(record["index"], 0) + 1
        total = _total(self.opts.sweep or render.DEFAULT_SWEEP)
        twice = sum(1 for n in seen.values() if n > 1)
        missing = total - len(seen)
        self.report["results"] = {"distinct": len(seen), "duplicated": twice, "missing": missing}
        self._say(f"results: {len(seen)} of {total} indices, {twice} twice, {missing} missing")
        return 0 if twice == 0 and missing == 0 else 1


def run(options: RehearsalOptions, out: TextIO = sys.stdout) -> int:
    rehearsal = Rehearsal(replace(options, sweep=tuple(options.sweep)), out)
    return rehearsal.run()
