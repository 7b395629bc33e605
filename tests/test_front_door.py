"""The front door as a notebook user meets it: a warm Ray across calls, no process left
behind, typed signatures, the failure policy, progress, the new spaces, early stops and
the CLI's validation and help."""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray
from rich.console import Console

import ttg_ray
from ttg_ray.core.params import Grid, space_from_spec
from ttg_ray.engine.progress import ProgressDisplay
from ttg_ray.engine.store import read_store
from ttg_ray.errors import InvalidFunction, InvalidSpace, SweepFailed, UsageError

ROOT = Path(__file__).resolve().parents[1]


def fails_at_seven(p):
    if p == 7:
        raise ValueError("seven is bad")
    return p * 2


def always_fails(p):
    raise RuntimeError(f"no {p}")


def double(p):
    return p * 2


@pytest.fixture(scope="module")
def warm():
    """The Ray ttg_ray starts for this module, stopped at the end (other modules start
    their own)."""
    yield
    ttg_ray.shutdown()
    assert not ray.is_initialized()


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


# The warm Ray ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_second_call_reuses_the_ray_the_first_started(warm):
    first = ttg_ray.compute(abs, 1000, workers=2, include_dashboard=False, progress=False)
    node = _node()
    second = ttg_ray.compute(double, range(50), progress=False)
    assert first.values == list(range(1000)) and second.values == [2 * i for i in range(50)]
    assert ray.is_initialized() and _node() == node


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_asking_for_other_workers_restarts_it_and_shutdown_stops_it(warm):
    ttg_ray.compute(abs, 10, workers=2, include_dashboard=False, progress=False)
    node = _node()
    ttg_ray.compute(abs, 10, workers=1, include_dashboard=False, progress=False)
    assert _node() != node and ray.cluster_resources()["CPU"] == 1
    ttg_ray.shutdown()
    assert not ray.is_initialized()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_ray_the_user_started_is_never_stopped(warm):
    ttg_ray.shutdown()
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        assert ttg_ray.compute(double, 5, progress=False).values == [0, 2, 4, 6, 8]
        ttg_ray.shutdown()
        assert ray.is_initialized()
    finally:
        ray.shutdown()


def _session_processes(sid: int) -> list[tuple[int, str]]:
    """Live processes of session ``sid`` (a child started with start_new_session)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text().rpartition(")")[2].split()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[3]) == sid and stat[0] not in ("Z", "X"):
            found.append((int(name), cmd))
    return found


def _none_left(sid: int, within_s: float = 20.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + within_s
    while (left := _session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, _ in left:  # never leave them to the next test, whatever the assertion says
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_process_exits_with_no_ray_process_left_behind():
    script = "import ttg_ray; print(ttg_ray.compute(abs, 100, progress=False).ok)"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0 and out.strip() == b"True"
    assert _none_left(proc.pid) == []


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("when", ["gcs_server", "DashboardAgent"])
def test_ctrl_c_during_ray_start_up_exits_130_and_leaves_no_process(when):
    cmd = [sys.executable, "-m", "ttg_ray.run", "--params", "100", "--no-progress"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(when in c for _, c in _session_processes(proc.pid)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before Ray's start-up could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=200)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert _none_left(proc.pid) == []


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_an_unreachable_address_exits_3_without_waiting_for_ray():
    proc = subprocess.run(
        [sys.executable, "-m", "ttg_ray.run", "--params", "10", "--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 3 and "cannot reach the Ray cluster at 127.0.0.1:1" in proc.stderr


# Typed signatures and unknown options ---------------------------------------------------


@pytest.mark.parametrize("fn", [ttg_ray.compute, ttg_ray.stream])
def test_every_option_is_spelt_out_with_a_type_and_a_default(fn):
    params = inspect.signature(fn).parameters
    options = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    names = {p.name for p in options}
    assert {"backend", "workers", "chunk_size", "max_retries", "on_error", "progress"} <= names
    assert {"output", "resume", "run_id", "options", "setup"} <= names
    for p in options:
        assert p.annotation is not inspect.Parameter.empty, p.name
        assert p.default is not inspect.Parameter.empty, p.name
    assert params["on_error"].default == "raise" and params["max_retries"].default == 3


@pytest.mark.parametrize(
    ("kwargs", "closest"),
    [({"chunksize": 3}, "chunk_size"), ({"adress": "x"}, "address"), ({"on_eror": 1}, "on_error")],
)
def test_an_unknown_option_fails_at_once_naming_the_closest(kwargs, closest):
    started = ray.is_initialized()
    with pytest.raises(UsageError, match=f"did you mean '{closest}'"):
        ttg_ray.compute(abs, 10, **kwargs)
    assert ray.is_initialized() == started  # refused before any backend started


def test_bad_progress_and_on_error_values_are_usage_errors():
    with pytest.raises(UsageError, match="on_error"):
        ttg_ray.compute(abs, 10, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="progress"):
        ttg_ray.compute(abs, 10, progress="yes")  # type: ignore[arg-type]


def test_the_public_api_is_mypy_clean():
    pytest.importorskip("mypy")
    files = ["ttg_ray/__init__.py", "ttg_ray/api.py", "ttg_ray/errors.py"]
    files += ["ttg_ray/core/params.py", "ttg_ray/core/sampling.py", "ttg_ray/core/setup.py"]
    files += ["ttg_ray/engine/progress.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (ROOT / "ttg_ray" / "py.typed").exists()


# The failure policy ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_on_error_raise_is_the_default_and_carries_parameter_traceback_and_partial(warm):
    with pytest.raises(SweepFailed) as caught:
        ttg_ray.compute(fails_at_seven, 40, chunk_size=5, max_retries=1, progress=False)
    err = caught.value
    assert err.failure.index == 7 and err.failure.param == 7
    assert "seven is bad" in err.failure.traceback and "seven is bad" in str(err)
    partial = err.partial
    assert isinstance(partial, ttg_ray.SweepResult) and partial.values[7] is None
    assert all(v in (None, 2 * i) for i, v in enumerate(partial.values))


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_function_that_always_raises_stops_at_the_first_failure(warm):
    with pytest.raises(SweepFailed) as caught:
        ttg_ray.compute(always_fails, 2000, max_retries=0, progress=False)
    summary = caught.value.partial.summary
    assert summary.processed < 2000 and summary.retries == 0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_on_error_record_runs_everything_and_warns_once_with_the_first_traceback(warm, caplog):
    with caplog.at_level(logging.WARNING, logger="ttg_ray.api"):
        result = ttg_ray.compute(
            fails_at_seven, 20, max_retries=0, on_error="record", progress=False
        )
    assert not result.ok and [f.index for f in result.failures] == [7]
    assert result.values[8] == 16
    warnings = [r for r in caplog.records if r.name == "ttg_ray.api"]
    assert len(warnings) == 1
    assert "1 of 20 parameters failed" in warnings[0].getMessage()
    assert "seven is bad" in warnings[0].getMessage()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_stream_raises_at_the_failure_under_the_default(warm):
    seen = []
    with pytest.raises(SweepFailed):
        for index, _, _ in ttg_ray.stream(fails_at_seven, 30, chunk_size=3, max_retries=0):
            seen.append(index)
    assert 7 not in seen


# Progress -------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("progress", [True, False, None])
def test_progress_true_false_and_auto_all_run(warm, progress):
    assert ttg_ray.compute(double, 30, progress=progress).values == [2 * i for i in range(30)]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_progress_callable_sees_done_and_total(warm):
    seen = []
    ttg_ray.compute(double, 100, chunk_size=10, progress=lambda d, t: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert {t for _, t in seen} == {100}
    assert done == sorted(done) and done[-1] == 100  # never backwards, ends at all
    assert set(done) <= set(range(0, 101, 10))  # whole chunks of 10


def test_the_bar_shows_done_total_rate_eta_and_failures_and_logs_go_above_it():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    failed = [0]
    bar = ProgressDisplay(description="sweep", failed=lambda: failed[0], console=console)
    bar(0, 1000)
    for done in range(100, 1001, 100):
        failed[0] = done // 500
        bar(done, 1000)
        time.sleep(0.01)
    bar.close()
    text = out.getvalue()
    assert "1000/1000" in text and "params/s" in text and "ETA" in text and "2 failed" in text


def test_log_lines_printed_while_the_bar_shows_end_up_above_it(capsys):
    handler = logging.StreamHandler(sys.__stderr__)
    logger = logging.getLogger("ttg_ray")
    old = logger.handlers[:]
    logger.handlers[:] = [handler]
    try:
        bar = ProgressDisplay()
        bar(1, 10)
        # While the bar shows, the handler writes through rich's proxy, not the raw stream.
        assert handler.stream is not sys.__stderr__
        bar.close()
        assert handler.stream is sys.__stderr__
    finally:
        logger.handlers[:] = old


# Spaces ---------------------------------------------------------------------------------


def test_float_ranges_linspace_and_logspace():
    assert list(ttg_ray.FloatRange(0, 1, 0.1)) == [i / 10 for i in range(10)]
    assert list(ttg_ray.FloatRange(1, 0, -0.25)) == [1.0, 0.75, 0.5, 0.25]
    assert list(ttg_ray.Linspace(0, 1, 5)) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert list(ttg_ray.Logspace(1e-4, 1e-1, 4)) == [1e-4, 1e-3, 1e-2, 1e-1]
    grid = Grid({"lr": ttg_ray.Logspace(1e-3, 1e-1, 3), "layers": [1, 2]})
    assert len(grid) == 6 and grid[5] == {"lr": 0.1, "layers": 2}


def test_random_samples_are_seeded_and_each_point_is_computed_on_its_own():
    dists = {
        "lr": ttg_ray.LogUniform(1e-4, 1e-1),
        "width": ttg_ray.RandInt(8, 64),
        "act": ttg_ray.Choice(["relu", "tanh"]),
        "dropout": ttg_ray.Uniform(0.0, 0.5),
    }
    a = ttg_ray.RandomSample(1000, dists, seed=3)
    b = ttg_ray.RandomSample(1000, dists, seed=3)
    assert [a[i] for i in range(1000)] == list(b.iter_slice(0, 1000))
    assert a[0] != ttg_ray.RandomSample(1000, dists, seed=4)[0]
    points = list(a.iter_slice(0, 1000))
    assert all(1e-4 <= p["lr"] < 1e-1 and 8 <= p["width"] < 64 for p in points)
    assert {p["act"] for p in points} == {"relu", "tanh"}
    small = sum(p["lr"] < 1e-3 for p in points)  # log-uniform: a third per decade
    assert 200 < small < 470


@pytest.mark.parametrize("method", ["sobol", "lhs"])
def test_quasi_random_designs_cover_the_cube_evenly(method):
    pytest.importorskip("scipy")
    space = ttg_ray.QuasiRandom(64, {"x": ttg_ray.Uniform(0, 1)}, method=method, seed=1)
    xs = sorted(space[i]["x"] for i in range(64))
    # Every 1/16th of [0, 1) gets exactly 4 of the 64 points (random draws would not).
    assert [sum(k / 16 <= x < (k + 1) / 16 for x in xs) for k in range(16)] == [4] * 16
    assert list(space.iter_slice(10, 20)) == [space[i] for i in range(10, 20)]


@pytest.mark.parametrize(
    "space",
    [
        ttg_ray.FloatRange(0, 1, 0.1),
        ttg_ray.Linspace(-1, 1, 7),
        ttg_ray.Logspace(1, 1000, 4),
        ttg_ray.RandomSample(10, {"x": ttg_ray.Uniform(0, 1), "c": ttg_ray.Choice([1, "a"])}),
        Grid({"lr": ttg_ray.Logspace(1e-3, 1e-1, 3), "k": [1, 2]}),
    ],
    ids=repr,
)
def test_each_space_survives_its_json_spec(space):
    again = space_from_spec(json.loads(json.dumps(space.to_spec())))
    assert again == space and list(again.iter_slice(0, len(space))) == [
        space[i] for i in range(len(space))
    ]


def test_bad_spaces_are_invalid_space_errors():
    for build in (
        lambda: ttg_ray.FloatRange(0, 1, 0),
        lambda: ttg_ray.Logspace(0, 1, 3),
        lambda: ttg_ray.LogUniform(0, 1),
        lambda: ttg_ray.RandInt(5, 5),
        lambda: ttg_ray.Choice([]),
        lambda: ttg_ray.RandomSample(5, {}),
    ):
        with pytest.raises(InvalidSpace):
            build()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_compute_takes_the_new_spaces_and_generators(warm):
    assert ttg_ray.compute(double, ttg_ray.Linspace(0, 1, 3), progress=False).values == [
        0.0,
        1.0,
        2.0,
    ]
    assert ttg_ray.compute(double, (i for i in range(4)), progress=False).values == [0, 2, 4, 6]
    space = ttg_ray.RandomSample(20, {"x": ttg_ray.Uniform(0, 1)}, seed=0)
    assert ttg_ray.compute(repr, space, progress=False).values == [repr(p) for p in space]


# stream() stopped early -----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_stream_stopped_early_is_consistent_for_resume_and_says_it_ran(warm, tmp_path):
    out = tmp_path / "out.jsonl"
    sweep = ttg_ray.stream(double, 400, chunk_size=10, output=out, progress=False)
    yielded = []
    for index, _, _ in sweep:
        yielded.append(index)
        if len(yielded) == 25:
            break
    sweep.close()
    with pytest.raises(UsageError, match="already been stopped"):
        list(sweep)
    written = [r["index"] for r in read_store(out)]
    assert len(written) == len(set(written))  # no index twice
    chunks = sorted({i // 10 for i in written})
    assert sorted(written) == [i for c in chunks for i in range(10 * c, 10 * c + 10)]  # whole
    assert set(yielded) <= set(written)  # what was handed out is in the file
    rest = ttg_ray.compute(double, 400, output=out, resume=True, progress=False)
    assert rest.values == [2 * i for i in range(400)]
    indices = [r["index"] for r in read_store(out)]
    assert sorted(indices) == list(range(400))


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_finished_stream_says_so_when_iterated_again(warm):
    sweep = ttg_ray.stream(double, 5, progress=False)
    assert sorted(v for _, _, v in sweep) == [0, 2, 4, 6, 8]
    with pytest.raises(UsageError, match="already run"):
        list(sweep)


# The CLI: validation and help -----------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ttg_ray.run", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--range", "10:5"], "empty"),
        (["--params", "0"], "empty"),
        (["--values", "[]"], "empty"),
        (["--grid", "k=5:1"], "empty"),
        (["--grid", "lr=0.1,,x"], "empty value"),
        (["--grid", "lr=0.1,x"], "quote it as JSON"),
        (["--grid", "lr=log:0:1:5"], "must be > 0"),
        (["--grid", "lr=lin:0:1:x"], "lin:START:STOP:NUM"),
        (["--sample", "5"], "--grid lr=loguniform"),
        (["--sample", "5", "--grid", "lr=normal:0:1"], "unknown distribution"),
        (["--function", "lambda x: x*2"], "define the function in a module"),
        (["--output", "/nonexistent/dir/r.jsonl"], "mkdir -p /nonexistent/dir"),
    ],
)
def test_malformed_cli_values_exit_2_with_the_fix_before_any_backend(args, says):
    proc = _run(*args)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert "connecting" not in proc.stderr  # no backend was started


def test_run_help_gives_defaults_exit_codes_and_examples():
    text = _run("--help").stdout
    for needle in ("exit codes:", "130", "examples:", "log:1e-4", "(default: 3)"):
        assert needle in text, needle
    for flag in ("--function", "--backend", "--max-retries", "--chunk-size", "--workers"):
        block = text.split("options:", 1)[1].split(flag, 1)[1][:400]
        assert "default" in block, flag


def test_internal_flags_are_hidden_and_submit_help_explains_the_sweep_arguments():
    worker = subprocess.run(
        [sys.executable, "-m", "ttg_ray.worker", "--help"], capture_output=True, text=True
    )
    assert worker.returncode == 0 and "--parent-pid" not in worker.stdout
    submit = subprocess.run(
        [sys.executable, "-m", "ttg_ray.kube", "submit", "--help"], capture_output=True, text=True
    )
    assert submit.returncode == 0 and "after --" in " ".join(submit.stdout.split())


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_sampled_cli_sweep_runs(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _run(
        "--sample", "12", "--seed", "3", "--grid", "lr=loguniform:1e-4:1e-1",
        "--grid", "act=choice:relu,tanh", "--function", "builtins:repr",
        "--workers", "1", "--no-dashboard", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    params = [r["param"] for r in read_store(out)]
    assert len(params) == 12 and all(set(p) == {"lr", "act"} for p in params)


def test_the_python_examples_in_the_readme_are_valid_python():
    text = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        compile(textwrap.dedent(block), "README", "exec")


# Per-worker setup -----------------------------------------------------------------------


def load_model():
    """Stands in for an expensive load; records which process loaded it."""
    return {"pid": os.getpid(), "scale": 3}


def predict(p, model):
    return (p * model["scale"], model["pid"], os.getpid())


def broken_setup():
    raise OSError("model file missing")


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_setup_runs_once_per_worker_process_and_its_result_is_handed_over(warm):
    result = ttg_ray.compute(predict, 200, setup=load_model, chunk_size=10, progress=False)
    assert [v[0] for v in result.values] == [3 * i for i in range(200)]
    # Each value was computed with the model its own process loaded, never another's.
    assert all(loaded_by == ran_in for _, loaded_by, ran_in in result.values)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_failing_setup_fails_the_sweep_with_its_error(warm):
    with pytest.raises(SweepFailed, match="model file missing"):
        ttg_ray.compute(predict, 10, setup=broken_setup, max_retries=0, progress=False)


def test_setup_in_process_is_called_once_and_a_new_sweep_replaces_it():
    from ttg_ray.core.setup import WithSetup

    calls = []

    def setup():
        calls.append(1)
        return len(calls)

    first = WithSetup(lambda p, r: (p, r), setup)
    assert [first(i) for i in range(3)] == [(0, 1), (1, 1), (2, 1)]
    second = WithSetup(lambda p, r: (p, r), setup)
    assert second(0) == (0, 2) and len(calls) == 2


def test_setup_on_a_queue_backend_must_be_importable_and_is_checked_before_anything_starts(
    monkeypatch,
):
    from ttg_ray.backends.base import Backend

    def refuse(self, *args):
        raise AssertionError("the backend was opened")

    monkeypatch.setattr(Backend, "open", refuse)
    for backend in ("redis", "rabbitmq"):
        with pytest.raises(InvalidFunction, match="define it at module level") as err:
            ttg_ray.stream(predict, 10, backend=backend, setup=lambda: {"scale": 3})
        assert "module:attr" in str(err.value)
        # An importable one passes the check: the sweep gets as far as opening its backend.
        with pytest.raises(AssertionError, match="the backend was opened"):
            ttg_ray.compute(predict, 10, backend=backend, setup=load_model, progress=False)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_cli_setup_flag_hands_its_result_to_the_function(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _run(
        "--params", "20", "--function", "test_front_door:predict",
        "--setup", "test_front_door:load_model", "--workers", "1", "--no-dashboard",
        "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    values = {r["index"]: r["value"] for r in read_store(out)}
    assert {i: v[0] for i, v in values.items()} == {i: 3 * i for i in range(20)}
