"""Values kept exactly on every backend: the same sweep of a function returning numpy
arrays and dicts gives the same values and dtypes on Ray, Redis and RabbitMQ, from
compute(), from the JSON Lines file, from the Parquet directory and after --resume; an
unencodable value fails its parameter once, with no retry, the same way everywhere."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import ray

import ttg_ray
from ttg_ray import workloads

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
BACKENDS = ["ray", "redis", "rabbitmq"]
GRID = {"x": np.arange(6), "scale": [np.float32(0.5), 2.0]}


def sim(p: dict) -> dict:
    """A sweep function as users write them: numpy scalars, arrays, NaN, a failure."""
    x, scale = p["x"], p["scale"]
    if x == 4 and scale == 2.0:
        raise ValueError("x=4 diverges")
    return {
        "loss": np.float32(x) * np.float32(scale) / np.float32(3),
        "steps": np.int64(x * 1000),
        "trace": np.linspace(0, 1, x, dtype=np.float32),
        "grid": np.arange(4, dtype=np.uint16).reshape(2, 2) * x,
        "ok": np.bool_(x % 2),
        "worst": math.inf if x == 0 else math.nan,
    }


def leaky(p: int) -> object:
    return {1, 2} if p == 3 else p


@pytest.fixture(scope="module")
def local_ray():
    ttg_ray.shutdown()  # a warm Ray an earlier test module's sweep left running
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def options(request, backend: str, run_id: str) -> dict:
    if backend == "ray":
        return {"backend": "ray"}
    url = {"redis": ("redis_url", "redis_url"), "rabbitmq": ("amqp_url", "amqp_url")}[backend]
    return {
        "backend": backend,
        "workers": 2,
        "run_id": run_id,
        "allow_modules": (__name__,),
        url[0]: request.getfixturevalue(url[1]),
    }


def same(a, b) -> bool:
    """Equal in type and bits (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def same_frame(a, b) -> bool:
    if a.columns.tolist() != b.columns.tolist() or a.dtypes.tolist() != b.dtypes.tolist():
        return False
    return all(same(list(a[c]), list(b[c])) for c in a.columns)


def cut_in_half(path: Path) -> None:
    """The file as a run killed half way would leave it (header and half the lines)."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: 1 + (len(lines) - 1) // 2]))


def run_everything(request, backend: str, tmp_path: Path, run_id: str) -> dict:
    jsonl, parquet = tmp_path / f"{backend}.jsonl", tmp_path / f"{backend}.parquet"
    opts = options(request, backend, run_id)
    opts["on_error"] = "record"  # sim fails one parameter on purpose
    result = ttg_ray.compute(sim, GRID, output=jsonl, max_retries=0, **opts)
    ttg_ray.compute(sim, GRID, output=parquet, max_retries=0, **{**opts, "run_id": f"{run_id}p"})
    from_jsonl, from_parquet = ttg_ray.read_results(jsonl), ttg_ray.read_results(parquet)
    cut_in_half(jsonl)
    resumed = ttg_ray.compute(
        sim, GRID, output=jsonl, resume=True, max_retries=0, **{**opts, "run_id": f"{run_id}r"}
    )
    # The 6 of 12 records cut_in_half keeps; a failure record counts (resume keeps it).
    assert resumed.summary.skipped_resumed == 6
    return {
        "values": result.values,
        "resumed": resumed.values,
        "failures": [(f.index, f.type, f.message) for f in result.failures],
        "memory": result.to_pandas(),
        "jsonl": from_jsonl,
        "parquet": from_parquet,
        "after_resume": ttg_ray.read_results(jsonl),
    }


def test_every_backend_keeps_every_value_exactly(request, tmp_path, run_id, local_ray):
    seen = {b: run_everything(request, b, tmp_path, f"{run_id}-{b}") for b in BACKENDS}
    ray_run = seen["ray"]
    assert ray_run["failures"] == [(9, "ValueError", "x=4 diverges")]
    first = ray_run["values"][3]
    assert first["trace"].dtype == np.float32 and first["grid"].dtype == np.uint16
    assert first["loss"] == np.float32(1) * np.float32(2) / np.float32(3)
    assert same(ray_run["resumed"], ray_run["values"])
    for key in ("memory", "jsonl", "parquet", "after_resume"):
        assert same_frame(ray_run[key], ray_run["memory"]), key
    frame = ray_run["parquet"]
    assert {"x", "scale", "loss", "trace", "grid", "error_type"} <= set(frame.columns)
    assert frame.loc[9, "error_type"] == "ValueError"
    for backend in ("redis", "rabbitmq"):
        other = seen[backend]
        assert same(other["values"], ray_run["values"]), backend
        assert same(other["resumed"], ray_run["values"]), backend
        assert other["failures"] == ray_run["failures"], backend
        for key in ("memory", "jsonl", "parquet", "after_resume"):
            assert same_frame(other[key], ray_run["memory"]), (backend, key)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unencodable_value_fails_once_with_no_retry(
    request, backend, tmp_path, run_id, local_ray
):
    out = tmp_path / "r.jsonl"
    result = ttg_ray.compute(
        leaky, 8, output=out, max_retries=3, on_error="record", **options(request, backend, run_id)
    )
    [failure] = result.failures
    assert (failure.index, failure.type, failure.attempts) == (3, "Unencodable", 1)
    assert failure.message.startswith("value is a set, which cannot be written; return a sorted")
    assert result.summary.retries == 0
    assert result.values == [0, 1, 2, None, 4, 5, 6, 7]
    frame = ttg_ray.read_results(out)
    assert frame.loc[3, "error_type"] == "Unencodable" and frame["index"].tolist() == list(range(8))


@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_large_results_are_planned_to_fit_a_message_with_nothing_run_twice(
    request, backend, run_id, caplog
):
    # 400 arrays of 200 KB: the sizing by time alone would plan chunks of 100 parameters
    # (20 MB of results, over the 16 MiB message limit), each split and run again.
    fn = functools.partial(workloads.array_value, size=25_000)
    result = ttg_ray.compute(fn, 400, **options(request, backend, run_id))
    assert all(same(v, fn(i)) for i, v in enumerate(result.values))
    assert (result.summary.processed, result.summary.retries) == (400, 0)
    assert not [r for r in caplog.records if "message limit" in r.getMessage()]
