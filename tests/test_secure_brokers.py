"""The queue path secured: sweeps over TLS (client certificates required) on a private
redis-server and RabbitMQ node, as users with only the documented least-privilege rights;
an untrusted certificate exits 3; forged tasks are dead-lettered with their reason while
a signed sweep completes beside them; no secret reaches output, `ps` or the summary."""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from conftest import missing_service
from support.brokers import (
    RABBIT_PERMISSIONS,
    REDIS_ACL_RULES,
    TlsRabbit,
    TlsRedis,
    make_pki,
    shared_tempdir,
)

import ttg_ray
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import encode_result, encode_task
from ttg_ray.core.params import ParamRange
from ttg_ray.core.results import ChunkResult
from ttg_ray.core.signing import Keyring
from ttg_ray.queues import open_adapter
from ttg_ray.workloads import seed_placeholder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
BROKERS = ["redis", "rabbitmq"]
URL_VAR = {"redis": "TTG_REDIS_URL", "rabbitmq": "TTG_AMQP_URL"}
URL_KW = {"redis": "redis_url", "rabbitmq": "amqp_url"}
FN = functools.partial(seed_placeholder, work_ms=0.5)


def require_binary(name: str) -> None:
    if shutil.which(name) is None:
        missing_service(f"the {name} binary")


@pytest.fixture(scope="module")
def pki():
    require_binary("openssl")
    directory = shared_tempdir("ttg-pki-")
    yield make_pki(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_redis(pki):
    require_binary("redis-server")
    server = TlsRedis(pki, pki.ca.parent)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_rabbit(pki):
    require_binary("rabbitmq-server")
    server = TlsRabbit(pki)
    try:
        server.start(
            lambda: open_adapter("rabbitmq", server.url(pki.ca), connect_timeout_s=2).close()
        )
        yield server
    finally:
        server.remove()


def broker(request, backend: str):
    return request.getfixturevalue("tls_redis" if backend == "redis" else "tls_rabbit")


def tls_env(monkeypatch, pki) -> None:
    monkeypatch.setenv("TTG_TLS_CA_FILE", str(pki.ca))
    monkeypatch.setenv("TTG_TLS_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("TTG_TLS_KEY_FILE", str(pki.client_key))


def admin(server: TlsRedis) -> redis.Redis:
    """The test's own admin connection, to read what the ttg user did and was refused."""
    return redis.Redis(
        port=server.port, username="admin", password=server.admin_password, ssl=True,
        ssl_ca_certs=str(server.pki.ca), ssl_certfile=str(server.pki.client_cert),
        ssl_keyfile=str(server.pki.client_key),
    )  # fmt: skip


def acl_denials(server: TlsRedis) -> list[dict]:
    with admin(server) as client:
        return [entry for entry in client.acl_log() if entry.get("username") == "ttg"]


def commands_run(server: TlsRedis) -> set[str]:
    with admin(server) as client:
        return {name.removeprefix("cmdstat_") for name in client.info("commandstats")}


@pytest.mark.parametrize("how", ["url", "env"])
@pytest.mark.parametrize("backend", BROKERS)
def test_sweep_over_tls_as_the_least_privileged_user(request, backend, how, pki, monkeypatch):
    server = broker(request, backend)
    if how == "env":  # CA and client certificate from TTG_TLS_*
        tls_env(monkeypatch, pki)
        url = server.url()
    else:  # from the URL: redis-py's ssl_* query, pika's ssl_options= literal
        url = server.url(pki.ca)
    # chunks of about 1 s, so workers also keep their claims alive (XCLAIM) meanwhile
    n, fn = 120, functools.partial(seed_placeholder, work_ms=50)
    result = ttg_ray.compute(
        fn, n, backend=backend, workers=2, chunk_size=20, **{URL_KW[backend]: url}
    )
    assert result.values == [seed_placeholder(i, 0) for i in range(n)]
    assert result.summary.failed == 0
    monitor = [sys.executable, "-m", "ttg_ray.monitor", "--backend", backend, "--once", "--json"]
    env = {**os.environ, URL_VAR[backend]: url}
    snapshot = subprocess.run(monitor, env=env, capture_output=True, text=True, timeout=60)
    assert snapshot.returncode == 0, snapshot.stderr[-2000:]
    assert "waiting" in json.loads(snapshot.stdout)
    if backend == "redis":
        assert acl_denials(server) == []  # every right the sweep used was granted
        assert {"xclaim", "xautoclaim", "evalsha", "xreadgroup"} <= commands_run(server)


def test_the_documented_rights_are_the_tested_ones():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert REDIS_ACL_RULES in readme
    assert REDIS_ACL_RULES in (root / "kuberay" / "redis.yaml").read_text()
    rabbit = (root / "kuberay" / "rabbitmq.yaml").read_text()
    quoted = " ".join(f"'{regex}'" for regex in RABBIT_PERMISSIONS)
    assert f"set_permissions -p ttg ttg-worker {quoted}" in rabbit
    assert f"set_permissions -p ttg ttg {quoted}" in readme
    workers = (root / "kuberay" / "queue-workers.yaml").read_text()
    assert workers.count("name: ttg-signing-key") == 2  # signing on for both brokers


@pytest.mark.parametrize("backend", BROKERS)
def test_untrusted_certificate_exits_3_with_a_clear_line(request, backend, pki):
    server = broker(request, backend)
    env = {**os.environ, URL_VAR[backend]: server.url(pki.wrong_ca)}
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, "--params", "10"]
    cmd += ["--workers", "1", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "TLS to" in line and "certificate verify failed" in line
    assert "give the CA that signed its certificate" in line
    assert server.password not in proc.stderr + proc.stdout


def start_worker(backend: str, url: str, name: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ttg_ray.worker", "--backend", backend]
    cmd += ["--worker-id", name, "--idle-timeout-s", "120"]
    return subprocess.Popen(cmd, env={**os.environ, URL_VAR[backend]: url})


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


@pytest.mark.parametrize("backend", BROKERS)
def test_forged_tasks_are_dead_lettered_while_a_signed_sweep_completes(
    request, backend, pki, monkeypatch, run_id
):
    server = broker(request, backend)
    tls_env(monkeypatch, pki)
    keys = Keyring.parse(f"live:{secrets.token_hex(24)}")
    monkeypatch.setenv("TTG_SIGNING_KEY", f"live:{keys.keys['live'].decode()}")
    url, n = server.url(), 200
    queue = open_adapter(backend, url)  # the shared namespace external workers consume
    queue.declare()
    # What anyone with write access to the broker could send: an allowed function, the
    # sweep's own run id and range, kwargs that would fail every parameter.
    evil_fn = FunctionRef.parse("ttg_ray.workloads:faulty", {"fail_params": list(range(n))})
    evil = encode_task(Chunk(run_id, "forged", 0, n), ParamRange(n), evil_fn)
    other = secrets.token_hex(24)
    forgeries = {
        "task message is not signed": evil,
        "wrong signature for key id 'live'": Keyring.parse(f"live:{other}").seal(evil, "task"),
        "unknown key id 'old'": Keyring.parse(f"old:{other}").seal(evil, "task"),
    }
    for body in forgeries.values():
        queue.publish(body)
    # A genuinely signed result of an earlier run, replayed onto this run's channel.
    replayed = ChunkResult("an-earlier-run", "c000000", 0, 20, None, 1, [-1.0] * 20)
    queue.declare(run_id)
    queue.publish_result(run_id, keys.seal(encode_result(replayed), "result"))
    # And a forged, unsigned result for the sweep's second chunk.
    forged = ChunkResult(run_id, "c000001", 20, 40, None, 1, [-1.0] * 20)
    queue.publish_result(run_id, encode_result(forged))
    workers = [start_worker(backend, url, f"{run_id}-ext{k}") for k in range(2)]
    try:
        result = ttg_ray.compute(
            FN, n, backend=backend, external_workers=True, workers=2, chunk_size=20,
            run_id=run_id, **{URL_KW[backend]: url},
        )  # fmt: skip
        assert result.values == [seed_placeholder(i, 0) for i in range(n)]
        assert result.summary.failed == 0
        deadline = time.monotonic() + 30
        while len(dead := queue.dead_letters()) < len(forgeries):
            assert time.monotonic() < deadline, dead
            time.sleep(0.2)
        assert len(dead) == len(forgeries)
        assert all(b'"chunk_id":"forged"' in body for body, _ in dead)
        reasons = [reason for _, reason in dead]
        for expected in forgeries:
            assert sum(expected in reason for reason in reasons) == 1, reasons
    finally:
        stop(workers)
        queue.purge(run_id)
        queue.close()


def run_and_watch(cmd: list[str], env: dict[str, str]) -> tuple[int, str, list[str]]:
    """Run ``cmd``; its exit code, output, and every command line it and its children
    showed in the process list while it ran."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: set[str] = set()
    while proc.poll() is None:
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
            seen.update(" ".join(p.cmdline()) for p in family)
        except psutil.Error:
            pass
        time.sleep(0.05)
    return proc.returncode, proc.stdout.read(), sorted(seen)


@pytest.mark.parametrize("backend", BROKERS)
def test_no_secret_in_output_process_list_errors_or_summary(request, backend, pki, tmp_path):
    server = broker(request, backend)
    signing_key, token = secrets.token_hex(24), secrets.token_hex(20)
    env = {
        **os.environ,
        URL_VAR[backend]: server.url(pki.ca),
        "TTG_SIGNING_KEY": f"live:{signing_key}",
        "RAY_AUTH_TOKEN": token,  # in the environment of a run, as on a secured cluster
    }
    summary = tmp_path / "summary.json"
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, "--params", "300"]
    cmd += ["--function", "ttg_ray.workloads:faulty", "--kwargs", '{"fail_params": [7]}']
    cmd += ["--workers", "2", "--chunk-size", "30", "--max-retries", "1", "--no-progress"]
    cmd += ["--log-level", "DEBUG", "--summary-json", str(summary)]
    cmd += ["--output", str(tmp_path / "out.jsonl")]
    code, output, ps = run_and_watch(cmd, env)
    assert code == 1, output[-3000:]  # index 7 failed, with its exception, on purpose
    assert "index 7" in output and "message signing on, key live" in output
    assert json.loads(summary.read_text())["failed"] == 1
    assert any("ttg_ray.worker" in line for line in ps)
    wrong_password = secrets.token_hex(16)
    env[URL_VAR[backend]] = server.url(pki.ca).replace(server.password, wrong_password)
    bad_code, bad_output, bad_ps = run_and_watch(cmd[:-4], env)
    assert bad_code == 3 and "rejected the credentials" in bad_output, bad_output[-3000:]
    everything = "\n".join(
        [
            output,
            summary.read_text(),
            *ps,
            bad_output,
            *bad_ps,
            (tmp_path / "out.jsonl").read_text(),
        ]
    )
    for secret in (server.password, wrong_password, signing_key, token):
        assert secret not in everything
