"""The Ray backend on a real local Ray: values, failures, retries, worker death."""

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import ttg_ray
from benchmarks.faults import descendants
from ttg_ray import workloads
from ttg_ray.errors import InvalidFunction, TtgError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # ttg_ray's warm Ray: started once here (retried once if a busy machine makes Ray's
    # start-up time out), reused by every test below, stopped at the end.
    ttg_ray.compute(abs, 1, workers=2, include_dashboard=False, progress=False)
    yield
    ttg_ray.shutdown()


def placeholder(p):
    return workloads.seed_placeholder(p, work_ms=0)


def test_values_equal_a_serial_loop():
    space = ttg_ray.Grid({"a": range(30), "b": [1, 2, 3]})
    result = ttg_ray.compute(placeholder, space)
    assert result.ok
    assert result.values == [placeholder(space[i]) for i in range(len(space))]
    assert result.summary.processed == 90 and result.summary.duplicates_discarded == 0


def test_automatic_chunks_and_node_record():
    result = ttg_ray.compute(workloads.seed_placeholder, 3000)  # 1 ms per parameter
    assert result.values == [workloads.seed_placeholder(i, 0) for i in range(3000)]
    assert sum(result.summary.chunks_per_node.values()) == result.summary.chunks
    assert 2 < result.summary.chunks < 300


def test_always_raising_parameter_is_reported_with_traceback():
    fn = lambda p: workloads.faulty(p, fail_params=[13])  # noqa: E731  (lambdas travel to Ray)
    result = ttg_ray.compute(fn, 100, chunk_size=10, max_retries=2, on_error="record")
    assert not result.ok
    assert [(f.index, f.type, f.attempts) for f in result.failures] == [(13, "ValueError", 3)]
    assert "designed to fail" in result.failures[0].traceback
    assert result.values == [None if i == 13 else placeholder(i) for i in range(100)]
    assert result.summary.retries == 2


def test_flaky_parameter_is_a_retry_not_a_failure(tmp_path):
    fn = lambda p: workloads.faulty(p, flaky_params=[40], state_dir=str(tmp_path))  # noqa: E731
    result = ttg_ray.compute(fn, 100, chunk_size=10)
    assert result.ok and result.summary.retries == 2
    assert result.values == [placeholder(i) for i in range(100)]


def test_stream_yields_each_index_once_as_results_complete():
    sweep = ttg_ray.stream(placeholder, range(5, 505), chunk_size=50)
    seen = {}
    for index, param, value in sweep:
        assert index not in seen
        seen[index] = (param, value)
    assert sorted(seen) == list(range(500))
    assert all(
        param == index + 5 and value == placeholder(param) for index, (param, value) in seen.items()
    )
    assert sweep.summary.processed == 500


def test_ten_million_points_stream_through_completely():
    expected_sum = sum(placeholder(i) for i in range(0, 10_000_000, 1_000_000))  # spot values
    sweep = ttg_ray.stream(placeholder, 10_000_000)
    count, spots = 0, 0.0
    for batch in sweep.batches():
        count += len(batch.values)
        indices = batch.indices
        for k in range(0, len(indices)):
            if indices[k] % 1_000_000 == 0:
                spots += batch.values[k]
    assert count == 10_000_000 and sweep.summary.processed == 10_000_000
    assert spots == pytest.approx(expected_sum)
    assert sweep.summary.duplicates_discarded == 0


def busy_past_zero(p, marks: str):
    if p == 0:
        return p
    try:  # busy, not asleep: Ray's KeyboardInterrupt does not cut a time.sleep short
        (Path(marks) / f"started-{p}").touch()
        end = time.monotonic() + 90
        while time.monotonic() < end:
            pass
    finally:  # a cancelled task ends here at once
        (Path(marks) / f"ended-{p}").touch()
    return p


def _wait_for(predicate, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()


def test_an_early_stop_cancels_the_chunks_still_running(tmp_path):
    sweep = ttg_ray.stream(lambda p: busy_past_zero(p, str(tmp_path)), 4, chunk_size=1)
    results = iter(sweep)  # held: a dropped iterator would stop the sweep at once
    assert next(results) == (0, 0, 0)
    assert _wait_for(lambda: any(tmp_path.glob("started-*")))
    sweep.close()
    started = {f.name.split("-")[1] for f in tmp_path.glob("started-*")}
    ended = lambda: {f.name.split("-")[1] for f in tmp_path.glob("ended-*")}  # noqa: E731
    assert _wait_for(lambda: ended() >= started), "a stopped sweep left its chunks running"
    assert ttg_ray.compute(placeholder, 20, chunk_size=5).values == [
        placeholder(i) for i in range(20)
    ]


def sleeps_past_zero(p, marks: str):
    if p > 0:
        (Path(marks) / f"started-{p}").touch()
        time.sleep(120)  # in C: Ray's cancel cannot interrupt it
    return p


@pytest.mark.timeout(90)
def test_the_next_sweep_kills_chunks_that_ignored_the_cancel(tmp_path, caplog):
    sweep = ttg_ray.stream(lambda p: sleeps_past_zero(p, str(tmp_path)), 4, chunk_size=1)
    results = iter(sweep)
    assert next(results) == (0, 0, 0)
    assert _wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2)  # both CPUs
    sweep.close()
    # Left alone, the sleepers would hold both CPUs for 2 minutes and the next sweep
    # would wait for them (the test's time-out).
    with caplog.at_level(logging.WARNING, logger="ttg_ray"):
        assert ttg_ray.compute(placeholder, 20, chunk_size=5).values == [
            placeholder(i) for i in range(20)
        ]
    assert "ignored the cancel" in caplog.text


@pytest.mark.timeout(90)
def test_the_next_sweep_kills_the_leftovers_of_every_stopped_sweep(tmp_path, caplog):
    # Two sweeps open at once, each with a chunk blocked in C on one of the two CPUs,
    # both stopped before the next sweep: it kills both (it kept only the last one's).
    sweeps = []
    for name in ("a", "b"):
        marks = tmp_path / name
        marks.mkdir()
        sweep = ttg_ray.stream(lambda p, m=str(marks): sleeps_past_zero(p, m), 2, chunk_size=1)
        results = iter(sweep)
        assert next(results) == (0, 0, 0)
        assert _wait_for(lambda m=marks: any(m.glob("started-*")))
        sweeps.append((sweep, results))
    for sweep, _ in sweeps:
        sweep.close()
    with caplog.at_level(logging.WARNING, logger="ttg_ray"):
        assert ttg_ray.compute(placeholder, 20, chunk_size=5).ok
    assert "2 chunk(s) of a stopped sweep ignored the cancel" in caplog.text


def _ray_worker_titles() -> list[str]:
    titles = [" ".join(proc.cmdline()) for proc in descendants()]
    return sorted(t.split()[0] for t in titles if t.startswith("ray::") and "Agent" not in t)


def test_a_new_ray_starts_a_worker_process_per_cpu_and_the_watch_actor():
    # Was one more: the watch actor, created while the warm-up tasks waited for their
    # workers, made Ray start a spare worker process (13 of 15 fresh starts; 460 MB of
    # workers' memory against 380). It is created once the warm-up is done.
    ttg_ray.shutdown()
    assert ttg_ray.compute(placeholder, 10, workers=2, include_dashboard=False).ok
    time.sleep(1.0)  # a spare would have been started with the warm-up, long before
    assert _ray_worker_titles() == ["ray::IDLE", "ray::IDLE", "ray::_Watch"]


def test_unpicklable_function_is_a_clear_error():
    lock = threading.Lock()
    with pytest.raises(InvalidFunction, match="cannot be sent to Ray workers"):
        ttg_ray.compute(lambda p: (lock, p), 10)


def test_killed_worker_process_reruns_its_chunk(tmp_path):
    hang_at, n = 250, 1000
    fn = lambda p: workloads.faulty(  # noqa: E731
        p, hang_params=[hang_at], state_dir=str(tmp_path), hang_s=120
    )
    marker = Path(tmp_path) / f"hang-{hang_at}.pid"
    killed: dict[str, int] = {}

    def kill_the_busy_worker(done: int, total: int) -> None:
        # The parameter wrote its pid and sleeps: its worker is provably busy on it.
        if not killed and marker.exists() and marker.read_text():
            killed["pid"] = int(marker.read_text())
            os.kill(killed["pid"], signal.SIGKILL)
            killed["done"] = done

    result = ttg_ray.compute(fn, n, chunk_size=50, progress=kill_the_busy_worker)
    assert killed, "the busy worker was never killed"
    assert 0 < killed["done"] < n, "the kill did not land inside the run"
    assert result.ok, result.failures
    assert result.values == [placeholder(i) for i in range(n)]
    assert result.summary.processed == n and result.summary.duplicates_discarded == 0
    # Ray's own task retry reran the chunk: the runner never had to split a lost one.
    assert result.summary.retries == 0


def lock_at_five(p):
    return threading.Lock() if p == 5 else placeholder(p)


class Boom(BaseException):
    pass


def base_exception_at_three(p):
    if p == 3:
        raise Boom("not an Exception")
    return placeholder(p)


def test_a_value_ray_cannot_send_back_fails_only_its_parameter():
    result = ttg_ray.compute(lock_at_five, 40, chunk_size=10, on_error="record")
    assert [(f.index, f.type) for f in result.failures] == [(5, "TypeError")]
    assert "pickle" in result.failures[0].message
    assert [v for i, v in enumerate(result.values) if i != 5] == [
        placeholder(i) for i in range(40) if i != 5
    ]


def test_a_base_exception_fails_only_its_parameter():
    result = ttg_ray.compute(
        base_exception_at_three, 20, chunk_size=10, max_retries=0, on_error="record"
    )
    assert [(f.index, f.type) for f in result.failures] == [(3, "Boom")]
    assert result.values == [None if i == 3 else placeholder(i) for i in range(20)]


def fails_at_two(p):
    return workloads.faulty(p, fail_params=[2])


def test_resume_keeps_earlier_failures_and_reads_back_values(tmp_path):
    out = tmp_path / "out.jsonl"
    first = ttg_ray.compute(fails_at_two, 10, max_retries=0, output=out, on_error="record")
    assert [f.index for f in first.failures] == [2]
    again = ttg_ray.compute(
        fails_at_two, 10, max_retries=0, output=out, resume=True, on_error="record"
    )
    assert not again.ok and [(f.index, f.type) for f in again.failures] == [(2, "ValueError")]
    assert again.values == first.values and again.values[2] is None
    assert again.summary.failed == 1 and again.summary.processed == 0
    assert again.summary.skipped_resumed == 10
    assert len(out.read_text().splitlines()) == 1 + 10  # the header, then one line each


def crashes_at_seven(p):
    return workloads.faulty(p, crash_params=[7])


def test_a_parameter_that_kills_its_worker_fails_alone():
    result = ttg_ray.compute(crashes_at_seven, 20, chunk_size=5, max_retries=1, on_error="record")
    assert [f.index for f in result.failures] == [7]
    assert result.failures[0].type in ("WorkerCrashedError", "RayActorError", "NodeDiedError")
    assert result.values == [None if i == 7 else placeholder(i) for i in range(20)]
    assert result.summary.retries == 5 + 3  # the chunk 5..9, then its half 7..9


def test_a_function_the_workers_cannot_import_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "ttg_only_on_the_driver.py").write_text("def f(p):\n    return p\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from ttg_only_on_the_driver import f

    with pytest.raises(TtgError) as err:
        ttg_ray.compute(f, 4, chunk_size=2, max_retries=0)
    message = str(err.value)
    assert "could not start on Ray: " in message
    assert "No module named 'ttg_only_on_the_driver'" in message
    assert "install the function's module on every node" in message
