"""Time and memory limits, stopped chunks and hostile messages: the pure parts, and a
queue worker on the in-memory broker (the real backends are in test_limits_backends)."""

from __future__ import annotations

import json
import threading
import time
import types

import pytest

from tests.support.fakes import InlineBackend
from tests.support.memory_queue import memory_broker, results
from ttg_ray.backends.base import BackendOptions
from ttg_ray.backends.limits import rss_mb
from ttg_ray.backends.queue_worker import QueueWorker, WorkerSettings
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import Progress, cut_short, rest_of, run_chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import decode_task, encode_task
from ttg_ray.core.params import ParamRange
from ttg_ray.engine.runner import Runner
from ttg_ray.errors import BadMessage, UsageError
from ttg_ray.workloads import seed_placeholder

pytestmark = pytest.mark.timeout(60)


def test_run_chunk_keeps_progress_for_a_watchdog():
    progress = Progress()
    result = run_chunk(lambda p: p * 2, ParamRange(10), Chunk("r", "c", 3, 7), progress=progress)
    assert progress.position == 4 and progress.values == [6, 8, 10, 12] == result.values
    assert progress.finished and progress.running_since(time.monotonic()) is None


def test_progress_shows_another_thread_the_running_parameter_and_since_when():
    progress, release = Progress(), threading.Event()
    holding = threading.Event()

    def fn(p):
        if p == 5:
            holding.set()
            release.wait(10)
        return p * 2

    chunk = Chunk("r", "c", 3, 7)
    runner = threading.Thread(target=run_chunk, args=(fn, ParamRange(10), chunk),
                              kwargs={"progress": progress})  # fmt: skip
    runner.start()
    assert holding.wait(10)
    first_seen = progress.running_since(100.0)
    # Two parameters done (3, 4), the third running since the reader first saw it there.
    assert progress.position == 2 and progress.values == [6, 8]
    assert first_seen == 100.0 and progress.running_since(105.0) == 100.0
    release.set()
    runner.join(10)
    assert progress.position == 4 and progress.running_since(110.0) is None


def test_cut_short_keeps_the_finished_prefix_and_fails_the_stuck_parameter():
    chunk = Chunk("r", "c", 10, 20, attempt=2)
    result = cut_short(chunk, ParamRange(30), 3, [1, 2, 3, 99], [], ("TimeoutError", "late"))
    assert (result.chunk_id, result.lo, result.hi, result.indices) == ("c", 10, 14, None)
    assert result.values == [1, 2, 3, None]
    (failure,) = result.failures
    assert (failure.index, failure.type, failure.message, failure.attempts) == (
        13,
        "TimeoutError",
        "late",
        2,
    )
    assert rest_of(chunk, result) == list(range(14, 20))


def test_cut_short_of_explicit_indices_and_of_nothing():
    chunk = Chunk("r", "c", 2, 9, indices=(2, 5, 8))
    result = cut_short(chunk, ParamRange(10), 1, ["a"], [], ("MemoryError", "big"))
    assert result.indices == (2, 5) and result.values == ["a", None]
    assert rest_of(chunk, result) == [8]
    nothing = cut_short(chunk, ParamRange(10), 0, [], [])
    assert nothing.size == 0 and rest_of(chunk, nothing) == [2, 5, 8]


class CuttingBackend(InlineBackend):
    """Stops the first chunk after two parameters, failing the third with TimeoutError."""

    def submit(self, chunk: Chunk) -> None:
        if chunk.chunk_id != "c000000":
            return super().submit(chunk)
        self.submitted.append(chunk)
        values = [self.fn(i) for i in list(chunk.iter_indices())[:2]]
        stuck = ("TimeoutError", "parameter ran past timeout_s=2 s; stopped")
        self._ready.append(cut_short(chunk, self.space, 2, values, [], stuck))


def test_runner_runs_the_rest_of_a_cut_chunk_and_retries_the_stuck_parameter():
    backend = CuttingBackend(BackendOptions(max_retries=1))
    runner = Runner(backend, lambda p: p + 1, ParamRange(40), "run", chunk_size=10)
    batches = list(runner.batches())
    done = sorted(i for b in batches for i in b.indices)
    assert done == list(range(40))  # the stuck one succeeded on its retry
    ids = [c.chunk_id for c in backend.submitted]
    assert "c000000@3" in ids and "c000000-r2" in ids
    continuation = next(c for c in backend.submitted if c.chunk_id == "c000000@3")
    assert (continuation.lo, continuation.hi, continuation.attempt) == (3, 10, 1)
    assert runner.summary.duplicates_discarded == 0


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"timeout_s": 0}, "timeout_s must be a number > 0"),
        ({"max_memory_mb": -5}, "max_memory_mb must be a number > 0"),
        ({"timeout_s": True}, "timeout_s must be a number > 0"),
    ],
)
def test_backend_options_refuse_nonsense_limits(values, why):
    with pytest.raises(UsageError, match=why):
        BackendOptions(**values)


def _task(**changes) -> bytes:
    body = json.loads(
        encode_task(
            Chunk("r", "c", 0, 10),
            ParamRange(10),
            FunctionRef.parse("ttg_ray.workloads:seed_placeholder"),
        )
    )
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (
            {"hi": 10**11, "space": {"kind": "range", "start": 0, "stop": 10**11, "step": 1}},
            "100,000,000,000 parameters, over this worker's limit of 100,000",
        ),
        ({"kwargs": {"blob": "x" * (1024 * 1024 + 1)}}, "kwargs are over"),
        ({"chunk_id": "c" * 500}, "over 200 characters"),
        ({"hi": 11}, "exceeds its space of 10"),
        ({"indices": [3, 12], "hi": 13}, "exceeds its space"),
        ({"timeout_s": -1}, "timeout_s must be a number > 0"),
        ({"space": {"kind": "range", "start": 0, "stop": 10**30, "step": 1}}, "too large"),
    ],
)
def test_decoder_refuses_hostile_messages_with_a_reason(changes, why):
    with pytest.raises(BadMessage, match=why):
        decode_task(_task(**changes))


def test_decoder_cap_is_the_workers_to_choose():
    with pytest.raises(BadMessage, match="limit of 5"):
        decode_task(_task(), max_chunk_params=5)
    message = decode_task(_task(timeout_s=2.5, max_memory_mb=300))
    assert (message.timeout_s, message.max_memory_mb) == (2.5, 300)
    assert decode_task(message.encode()) == message


@pytest.fixture
def broker(run_id):
    return memory_broker(run_id)


def _results(driver, run_id, n=1, timeout_s=30.0):
    return results(driver, run_id, n, timeout_s)


def _worker(settings: WorkerSettings, **changes) -> tuple[QueueWorker, threading.Thread]:
    worker = QueueWorker(WorkerSettings(**{**settings.__dict__, **changes}))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def test_worker_stops_a_hung_parameter_and_finishes_its_neighbours(broker, run_id):
    settings, driver = broker
    fn = FunctionRef.parse("support.limits_fns:hangs", {"at": [4], "work_ms": 0})
    chunk = Chunk(run_id, "c1", 0, 10)
    driver.publish(encode_task(chunk, ParamRange(10), fn, timeout_s=0.5))
    worker, thread = _worker(settings, allow_modules=("support.limits_fns",))
    try:
        (result,) = _results(driver, run_id)
    finally:
        worker.stop()
        thread.join(10)
    assert result.chunk_id == "c1" and (result.lo, result.hi) == (0, 10)
    assert result.values == [seed_placeholder(i, 0) if i != 4 else None for i in range(10)]
    (failure,) = result.failures
    assert (failure.index, failure.type) == (4, "TimeoutError")
    assert "timeout_s=0.5" in failure.message
    assert driver.depth().in_flight == 0


def test_worker_stops_a_runaway_parameter_at_its_memory_limit(broker, run_id):
    settings, driver = broker
    fn = FunctionRef.parse("support.limits_fns:grows", {"at": [2], "work_ms": 0})
    driver.publish(encode_task(Chunk(run_id, "c1", 0, 6), ParamRange(6), fn))
    # The chunk's process is forked from this one (the test process, with whatever earlier
    # tests loaded): the limit is this process's size plus 300 MB, as it would be 300 MB
    # over a fresh worker's.
    limit_mb = rss_mb() + 300
    worker, thread = _worker(
        settings, allow_modules=("support.limits_fns",), max_memory_mb=limit_mb
    )
    try:
        (result,) = _results(driver, run_id)
    finally:
        worker.stop()
        thread.join(10)
    assert result.values == [seed_placeholder(i, 0) if i != 2 else None for i in range(6)]
    (failure,) = result.failures
    assert (failure.index, failure.type) == (2, "MemoryError")


def test_sigterm_grace_hands_back_the_rest_of_a_chunk_that_cannot_finish(broker, run_id):
    settings, driver = broker
    fn = FunctionRef.parse("support.limits_fns:hangs", {"at": [3], "work_ms": 0})
    driver.publish(encode_task(Chunk(run_id, "c1", 0, 8), ParamRange(8), fn))
    worker, thread = _worker(settings, allow_modules=("support.limits_fns",), stop_grace_s=0.5)
    while worker.executor.position < 3:
        time.sleep(0.02)
    worker.stop()
    thread.join(20)
    assert not thread.is_alive()
    (result,) = _results(driver, run_id)
    # What finished comes back; the driver runs the rest (see the runner test above).
    assert (result.lo, result.hi, result.failures) == (0, 3, [])
    assert result.values == [seed_placeholder(i, 0) for i in range(3)]
    stats = driver.depth()
    assert stats.in_flight == 0 and stats.waiting == 0


def test_worker_dead_letters_a_giant_chunk_and_keeps_going(broker, run_id):
    settings, driver = broker
    space = ParamRange(10**11)
    fn = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 0})
    driver.publish(encode_task(Chunk(run_id, "evil", 0, 10**11), space, fn))
    driver.publish(encode_task(Chunk(run_id, "ok", 0, 5), space, fn))
    worker, thread = _worker(settings)
    try:
        (result,) = _results(driver, run_id)
    finally:
        worker.stop()
        thread.join(10)
    assert result.chunk_id == "ok" and result.values == [seed_placeholder(i, 0) for i in range(5)]
    ((_, reason),) = driver.dead_letters()
    assert "100,000,000,000 parameters, over this worker's limit" in reason


def test_stall_watch_reports_a_chunk_far_slower_than_expected_once():
    from ttg_ray.backends.base import RunningChunk
    from ttg_ray.engine.stalls import StallWatch

    watch = StallWatch(factor=5, min_s=30)
    assert watch.limit_s(None) == 30 and watch.limit_s(2.0) == 30 and watch.limit_s(10) == 50
    slow = RunningChunk("c7", "host w1", 77, 77, chunk_s=45.0, param_s=44.0, seen_at=0.0)
    fine = RunningChunk("c8", "host w2", 80, 80, chunk_s=45.0, param_s=1.0, seen_at=0.0)
    expected = {"c7": 1.0, "c8": 10.0}.get
    assert watch.check([slow, fine], expected) == [slow]
    assert watch.check([slow, fine], expected) == []  # once
    text = StallWatch.describe(slow, 1.0)
    assert "chunk c7 has run 45 s (expected about 1.0 s)" in text
    assert "on parameter 77 (77) for 44 s, on host w1" in text


def test_with_no_timing_yet_a_chunk_moving_through_long_parameters_is_not_stalled():
    from ttg_ray.backends.base import RunningChunk
    from ttg_ray.engine.stalls import StallWatch

    watch, unknown = StallWatch(factor=5, min_s=30), {}.get
    moving = RunningChunk("c1", "w1", 15, 15, chunk_s=31.0, param_s=1.0, seen_at=0.0)
    stuck = RunningChunk("c2", "w2", 40, 40, chunk_s=35.0, param_s=31.0, seen_at=0.0)
    silent = RunningChunk("c3", "w3", None, None, chunk_s=31.0, param_s=0.0, seen_at=0.0)
    assert watch.check([moving, stuck, silent], unknown) == [stuck, silent]


class StallingBackend(InlineBackend):
    """Holds chunk c000001 back and reports it as running for a long time."""

    def submit(self, chunk: Chunk) -> None:
        if chunk.chunk_id == "c000001":
            self.held = chunk
            return
        super().submit(chunk)

    def running(self):
        from ttg_ray.backends.base import RunningChunk

        if getattr(self, "held", None) is None:
            return []
        self.polls = getattr(self, "polls", 0) + 1
        if self.polls > 3:  # reported, now let it finish
            self._ready.append(run_chunk(self.fn, self.space, self.held))
            self.held = None
            return []
        return [RunningChunk("c000001", "w9", 15, 15, chunk_s=99.0, param_s=98.0, seen_at=0.0)]


def test_runner_logs_a_stalled_chunk_once_at_warning(caplog, monkeypatch):
    # Only the runner's clock: it moves 1 s per reading, so it checks for stalls each loop.
    monkeypatch.setattr(
        "ttg_ray.engine.runner.time", types.SimpleNamespace(monotonic=_fast_clock())
    )
    backend = StallingBackend()
    runner = Runner(backend, lambda p: p, ParamRange(40), "run", chunk_size=10)
    with caplog.at_level("WARNING", logger="ttg_ray.engine.runner"):
        done = sorted(i for b in runner.batches() for i in b.indices)
    assert done == list(range(40))
    stalls = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
    assert len(stalls) == 1
    assert "chunk c000001 has run 99 s" in stalls[0] and "on parameter 15" in stalls[0]


def _fast_clock():
    now = [1000.0]

    def tick() -> float:
        now[0] += 1.0
        return now[0]

    return tick


def _lock_at_one(p):
    return threading.Lock() if p == 1 else p


def test_a_value_that_cannot_leave_the_chunk_process_fails_only_its_parameter(broker, run_id):
    settings, driver = broker
    fn = FunctionRef.parse("test_limits:_lock_at_one")
    driver.publish(encode_task(Chunk(run_id, "c1", 0, 4), ParamRange(4), fn))
    worker, thread = _worker(settings, allow_modules=("test_limits",))
    try:
        (result,) = _results(driver, run_id)
    finally:
        worker.stop()
        thread.join(10)
    assert result.values == [0, None, 2, 3]
    assert [(f.index, f.type) for f in result.failures] == [(1, "TypeError")]
