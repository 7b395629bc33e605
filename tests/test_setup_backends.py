"""Per-worker setup on the queue backends (the real Redis and RabbitMQ): setup runs once
per worker process and its result reaches every call, a setup that raises fails the
parameters with its error, and the CLI's --setup lets the workers import it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.setup_fns import broken_setup, counted_setup, report

import ttg_ray
from ttg_ray.engine.store import read_store
from ttg_ray.errors import InvalidFunction, SweepFailed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
BROKERS = ["redis", "rabbitmq"]
WORKERS = 2


def broker(request, backend: str) -> dict:
    if backend == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {"amqp_url": request.getfixturevalue("amqp_url")}


def check_once_per_process(values: list, n: int) -> None:
    """Every value carries setup's count 1 in the process that ran it, loaded there."""
    assert [v[0] for v in values] == list(range(n))
    assert {v[2] for v in values} == {1}
    assert all(v[1] == v[3] for v in values)
    assert 1 <= len({v[3] for v in values}) <= WORKERS


@pytest.mark.parametrize("backend", BROKERS)
def test_setup_runs_once_per_worker_process(request, backend, run_id):
    result = ttg_ray.compute(
        report,
        200,
        setup=counted_setup,
        backend=backend,
        workers=WORKERS,
        chunk_size=10,  # 20 chunks: each worker process runs several
        run_id=run_id,
        progress=False,
        **broker(request, backend),
    )
    check_once_per_process(result.values, 200)


@pytest.mark.parametrize("backend", BROKERS)
def test_a_setup_that_raises_fails_the_parameters_with_its_error(request, backend, run_id):
    common = {"backend": backend, "workers": WORKERS, "max_retries": 0, "progress": False}
    common.update(broker(request, backend))
    result = ttg_ray.compute(
        report, 6, setup=broken_setup, on_error="record", run_id=run_id, **common
    )
    assert sorted(f.index for f in result.failures) == list(range(6))
    assert {(f.type, f.message) for f in result.failures} == {("OSError", "model file missing")}
    with pytest.raises(SweepFailed, match="model file missing"):
        ttg_ray.compute(report, 6, setup=broken_setup, run_id=f"{run_id}-raise", **common)


@pytest.mark.parametrize("backend", BROKERS)
def test_the_cli_setup_flag_works_on_the_queue_backends(request, backend, tmp_path):
    out = tmp_path / "out.jsonl"
    flag = {"redis": "--redis-url", "rabbitmq": "--amqp-url"}[backend]
    url = next(iter(broker(request, backend).values()))
    cmd = [sys.executable, "-m", "ttg_ray.run", "--backend", backend, flag, url]
    cmd += ["--function", "support.setup_fns:report", "--setup", "support.setup_fns:counted_setup"]
    cmd += ["--params", "60", "--chunk-size", "5", "--workers", str(WORKERS), "--no-progress"]
    cmd += ["--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = sorted(read_store(out), key=lambda r: r["index"])
    check_once_per_process([r["value"] for r in records], 60)


def _closure_setup():
    state = {"scale": 3}

    def setup():
        return state

    return setup


@pytest.mark.parametrize("backend", BROKERS)
@pytest.mark.parametrize("setup", [lambda: 1, _closure_setup()], ids=["lambda", "closure"])
def test_a_setup_workers_cannot_import_is_refused_before_any_work(
    request, monkeypatch, backend, setup, run_id
):
    from ttg_ray.backends.base import Backend

    opened = []
    monkeypatch.setattr(Backend, "_open", lambda self, *a: opened.append(self))
    for entry in (ttg_ray.compute, ttg_ray.stream):
        with pytest.raises(InvalidFunction) as err:
            entry(
                report, 10, setup=setup, backend=backend, run_id=run_id, **broker(request, backend)
            )
        assert "cannot be sent to queue workers" in str(err.value)
        assert "define it at module level" in str(err.value)
        assert "module:attr" in str(err.value)
    assert opened == []
