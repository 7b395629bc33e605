"""The runner's contract, on an in-process backend: no Ray, no broker."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from tests.support.fakes import InlineBackend
from ttg_ray import workloads
from ttg_ray.backends.base import RunningChunk
from ttg_ray.core.chunks import Chunk, ChunkPlanner
from ttg_ray.core.execute import cut_short, lost_chunk, run_chunk
from ttg_ray.core.ledger import IndexLedger
from ttg_ray.core.params import ParamRange
from ttg_ray.engine.runner import RetryPolicy, Runner
from ttg_ray.engine.store import ResultStore, read_store

NO_WAIT = RetryPolicy(max_retries=3, base_s=0.0)


def square(p):
    return p * p


def run(backend, fn, n, **kwargs):
    kwargs.setdefault("retry", NO_WAIT)
    runner = Runner(backend, fn, ParamRange(n), "run-1", **kwargs)
    values, failures = {}, []
    for batch in runner.batches():
        for index, value in zip(batch.indices, batch.values):
            assert index not in values, f"index {index} yielded twice"
            values[index] = value
        failures += batch.failures
    return runner, values, failures


def test_every_index_once_with_serial_values():
    runner, values, failures = run(InlineBackend(), square, 1000, chunk_size=37)
    assert values == {i: i * i for i in range(1000)} and not failures
    s = runner.summary
    assert (s.processed, s.succeeded, s.failed, s.chunks) == (1000, 1000, 0, 28)
    assert s.chunks_per_node == {"inline-node": 28}
    assert s.value_sum == sum(i * i for i in range(1000))


def test_in_flight_chunks_are_bounded():
    class Slow(InlineBackend):
        def poll(self, timeout_s):  # hand back one result at a time
            ready, self._ready = self._ready[:1], self._ready[1:]
            return ready

    backend = Slow(slots=3)
    run(backend, square, 5000, chunk_size=10)
    assert backend.most_in_flight == 6  # 2 x capacity, whatever the size of the space


def test_only_failed_parameters_are_retried_then_recorded():
    runner, values, failures = run(
        InlineBackend(), lambda p: workloads.faulty(p, fail_params=[5, 50]), 100, chunk_size=10
    )
    assert sorted(values) == [i for i in range(100) if i not in (5, 50)]
    assert [(f.index, f.type, f.attempts) for f in failures] == [
        (5, "ValueError", 4),
        (50, "ValueError", 4),
    ]
    assert runner.summary.retries == 6  # two parameters x three retries
    assert runner.summary.value_sum == math.fsum(values.values())  # slow path: from values
    assert runner.summary.failed_indices == [5, 50]
    retried = [c for c in runner.backend.submitted if c.attempt > 1]
    assert all(c.size == 1 for c in retried)  # never the whole chunk


def test_flaky_parameter_counts_as_retry_not_failure(tmp_path):
    fn = lambda p: workloads.faulty(p, flaky_params=[3], state_dir=str(tmp_path))  # noqa: E731
    runner, values, failures = run(InlineBackend(), fn, 20, chunk_size=5)
    assert not failures and len(values) == 20
    assert runner.summary.retries == 2 and runner.summary.failed == 0


def test_duplicate_deliveries_are_discarded_first_wins():
    runner, values, _ = run(InlineBackend(duplicate=True), square, 300, chunk_size=50)
    assert values == {i: i * i for i in range(300)}
    assert runner.summary.duplicates_discarded == 300


def test_a_chunk_that_kills_its_worker_is_split_until_the_culprit_is_alone():
    poison = 37
    backend = InlineBackend(kills=lambda c: poison in c.iter_indices())
    _, values, failures = run(backend, square, 100, chunk_size=20)
    assert sorted(values) == [i for i in range(100) if i != poison]
    assert [(f.index, f.type) for f in failures] == [(poison, "WorkerCrashedError")]


def test_resume_runs_only_missing_indices(tmp_path):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    store.write(range(0, 40), range(0, 40), [i * i for i in range(0, 40)], [])
    store.write(range(70, 80), range(70, 80), [i * i for i in range(70, 80)], [])
    store.close()
    done = IndexLedger()
    done.add_range(0, 40)
    done.add_range(70, 80)
    backend = InlineBackend()
    runner, values, _ = run(
        backend, square, 100, chunk_size=25, store=ResultStore(path, resume=True), done=done
    )
    assert sorted(values) == list(range(40, 70)) + list(range(80, 100))
    assert runner.summary.skipped_resumed == 50
    runner.store.close()
    indices = [r["index"] for r in read_store(path)]
    assert sorted(indices) == list(range(100))


def test_store_gets_every_line_and_progress_is_reported(tmp_path):
    seen = []
    path = tmp_path / "out.jsonl"
    runner, _, _ = run(
        InlineBackend(),
        lambda p: workloads.faulty(p, fail_params=[2]),
        10,
        chunk_size=4,
        store=ResultStore(path),
        progress=lambda done, total: seen.append((done, total)),
    )
    runner.store.close()
    lines = Path(path).read_text().splitlines()
    assert "ttg_ray" in json.loads(lines[0])  # the header: which sweep the file belongs to
    records = {r["index"]: r for r in map(json.loads, lines[1:])}
    assert sorted(records) == list(range(10))
    assert records[2]["error"]["type"] == "ValueError" and "value" not in records[2]
    done = [d for d, _ in seen]
    assert {t for _, t in seen} == {10}
    assert done == sorted(done) and done[-1] == 10  # never backwards, ends at all


def test_retry_policy_backs_off_and_caps():
    policy = RetryPolicy(base_s=0.1, cap_s=0.5)
    assert [policy.delay_s(a) for a in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.4, 0.5])


def test_a_due_retry_with_no_free_slot_does_not_spin():
    class Busy(InlineBackend):
        """Holds each result back for two polls, as a busy worker would."""

        timeouts: list[float] = []

        def poll(self, timeout_s):
            self.timeouts.append(timeout_s)
            if len(self.timeouts) % 3:
                return []
            ready, self._ready = self._ready[:1], self._ready[1:]
            return ready

    # A lost chunk comes back as two halves, both due at once, with one slot free.
    backend = Busy(slots=1, kills=lambda chunk: 5 in chunk.iter_indices())
    _, values, failures = run(backend, square, 40, chunk_size=10)
    assert len(values) == 39 and [f.index for f in failures] == [5]
    assert 0.0 not in backend.timeouts  # full slots: wait for a result, never poll with 0


@pytest.mark.timeout(30)
def test_every_parameter_killing_its_worker_ends_with_all_failed():
    runner, values, failures = run(InlineBackend(kills=lambda chunk: True), square, 40)
    assert not values and sorted(f.index for f in failures) == list(range(40))
    assert runner.summary.failed == 40


class Clock:
    """A monotonic clock that moves only when the backend waits: timing without sleeps."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now


class Clocked(InlineBackend):
    """Holds results until asked; a poll with nothing ready waits out its timeout."""

    def __init__(self, clock: Clock, **kwargs):
        super().__init__(**kwargs)
        self.clock = clock
        self.polls: list[float] = []
        self.submit_times: dict[str, float] = {}

    def submit(self, chunk):
        self.submit_times[chunk.chunk_id] = self.clock.now
        super().submit(chunk)

    def poll(self, timeout_s):
        self.polls.append(round(timeout_s, 6))
        if not self._ready:
            self.clock.now += timeout_s
        return super().poll(timeout_s)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("ttg_ray.engine.runner.time", clock)
    return clock


def fails_at_three(p):
    return workloads.faulty(p, fail_params=[3])


def test_retries_back_off_from_a_non_zero_base(clock):
    backend = Clocked(clock, slots=1)
    policy = RetryPolicy(max_retries=3, base_s=0.25, cap_s=0.6)
    runner, values, failures = run(backend, fails_at_three, 8, chunk_size=4, retry=policy)
    assert values == {i: workloads.seed_placeholder(i, 0) for i in range(8) if i != 3}
    assert [(f.index, f.attempts) for f in failures] == [(3, 4)]
    t = backend.submit_times
    first_back = t["c000001"]  # submitted when c000000's result (with the failure) came back
    gaps = [t["c000000-r2"] - first_back, t["c000000-r2-r3"] - t["c000000-r2"]]
    gaps.append(t["c000000-r2-r3-r4"] - t["c000000-r2-r3"])
    assert gaps == pytest.approx([0.25, 0.5, 0.6])  # base, doubled, capped
    assert runner.summary.retries == 3 and runner.summary.failed_indices == [3]


def test_a_pending_retry_shortens_the_wait_only_while_a_slot_is_free(clock):
    backend = Clocked(clock, slots=1)
    policy = RetryPolicy(max_retries=1, base_s=0.3)
    run(backend, fails_at_three, 4, chunk_size=4, retry=policy, max_inflight=1)
    # the first result; then nothing in flight and the retry due in 0.3 s; its result
    assert backend.polls == [0.5, 0.3, 0.5]


def test_default_retry_policy():
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_s, policy.cap_s) == (3, 0.1, 5.0)
    assert [policy.delay_s(a) for a in (1, 2, 3, 7, 8)] == pytest.approx([0.1, 0.2, 0.4, 5, 5])


def test_max_inflight_and_max_chunk_params_are_honoured():
    backend = InlineBackend(slots=4)
    runner = Runner(
        backend, square, ParamRange(300), "run-1", max_inflight=1, max_chunk_params=40,
        retry=NO_WAIT,
    )  # fmt: skip
    assert sum(len(b.values) for b in runner.batches()) == 300
    assert backend.most_in_flight == 1
    assert max(c.size for c in backend.submitted) == 40


def test_lost_chunk_split_counts_retries_and_logs(caplog):
    caplog.set_level("INFO", logger="ttg_ray.engine.runner")
    backend = InlineBackend(kills=lambda c: 2 in c.iter_indices())
    runner, values, failures = run(backend, square, 4, chunk_size=4)
    assert values == {0: 0, 1: 1, 3: 9}
    assert [(f.index, f.type, f.message) for f in failures] == [
        (2, "WorkerCrashedError", "worker died")
    ]
    # 4 params split into 2 + 2, then the half holding 2 into 1 + 1
    assert runner.summary.retries == 6 and runner.summary.chunks == 5
    assert [c.chunk_id for c in backend.submitted] == [
        "c000000", "c000000a", "c000000b", "c000000ba", "c000000bb",
    ]  # fmt: skip
    messages = [r.getMessage() for r in caplog.records if r.levelname != "INFO"]
    assert messages == [
        "chunk c000000 (4 parameters) was lost: worker died; splitting it to find the cause",
        "chunk c000000b (2 parameters) was lost: worker died; splitting it to find the cause",
        "parameter(s) [2] kill their worker: worker died",
    ]


def test_a_lost_single_parameter_delivered_twice_counts_once():
    backend = InlineBackend(kills=lambda c: 1 in c.iter_indices(), duplicate=True)
    runner, values, failures = run(backend, square, 2, chunk_size=1)
    assert values == {0: 0} and [f.index for f in failures] == [1]
    assert runner.summary.duplicates_discarded == 2  # one copy of each chunk
    assert (runner.summary.failed, runner.summary.processed) == (1, 2)


def test_duplicates_on_the_slow_path_are_discarded_index_by_index():
    runner, values, failures = run(
        InlineBackend(duplicate=True), fails_at_three, 8, chunk_size=4, retry=NO_WAIT
    )
    assert sorted(values) == [0, 1, 2, 4, 5, 6, 7] and [f.index for f in failures] == [3]
    # each of the 2 chunks and the 3 retries of index 3 came twice
    assert runner.summary.duplicates_discarded == 4 + 4 + 3
    assert runner.summary.retries == 3


def test_lifecycle_events_in_order_with_their_fields(clock, caplog):
    caplog.set_level("INFO", logger="ttg_ray.engine.runner")
    run(InlineBackend(slots=3), fails_at_three, 10, chunk_size=5, retry=RetryPolicy(1, 0.0))
    records = [r for r in caplog.records if r.name == "ttg_ray.engine.runner"]
    events = [(getattr(r, "event", None), getattr(r, "fields", None)) for r in records]
    assert [e for e, _ in events] == [
        "starting", "initialized", "running", None, "progress", "completed",
    ]  # fmt: skip
    assert all(getattr(r, "run_id", None) == "run-1" for r in records if hasattr(r, "event"))
    assert events[1][1] == {"capacity": 3, "skipped_resumed": 0}
    assert events[4][1] == {"done": 9, "total": 10}
    assert events[5][1] == {"processed": 10, "failed": 1}
    messages = [r.getMessage() for r in records]
    assert messages[0] == "starting inline backend"
    assert messages[1] == "inline ready in 0.00 s with 3 worker slots; 10 of 10 parameters to run"
    assert messages[2] == "running"
    assert messages[3] == "retrying 1 failed parameter(s) of chunk c000000 (attempt 2 of 2)"
    assert messages[4] == "9/10 parameters done"
    assert messages[5] == "10 parameters in 0.00 s (1 failed)"


def test_progress_is_logged_every_ten_seconds(clock, caplog):
    caplog.set_level("INFO", logger="ttg_ray.engine.runner")

    class Slow(Clocked):
        def poll(self, timeout_s):  # each result takes 5 s
            self.clock.now += 5.0
            ready, self._ready = self._ready[:1], self._ready[1:]
            return ready

    seen = []
    run(Slow(clock, slots=1), square, 10, chunk_size=1, progress=lambda d, t: seen.append(d))
    assert seen == list(range(1, 11))
    logged = [r.fields["done"] for r in caplog.records if getattr(r, "event", "") == "progress"]
    assert logged == [1, 3, 5, 7, 9]  # at 5 s, then exactly every 10 s


def test_summary_counts_nodes_and_times(clock):
    class Nameless(Clocked):
        def submit(self, chunk):
            super().submit(chunk)
            self._ready[-1] = dataclasses.replace(self._ready[-1], node="")

    runner, _, _ = run(Nameless(clock), square, 30, chunk_size=10)
    s = runner.summary
    assert s.chunks_per_node == {"unknown": 3}
    assert (s.backend, s.run_id, s.total, s.chunks) == ("inline", "run-1", 30, 3)
    assert (s.succeeded, s.processed, s.skipped_resumed) == (30, 30, 0)
    assert s.startup_s == 0.0 and s.duration_s == 0.0  # the clock never moved


def test_store_lines_carry_the_params_of_a_grid_on_both_paths(tmp_path):
    from ttg_ray.core.params import Grid

    space = Grid({"a": [1, 2, 3], "b": [10, 20]})
    path = tmp_path / "out.jsonl"
    runner = Runner(
        InlineBackend(), lambda p: p["a"] * p["b"] if p != {"a": 2, "b": 10} else 1 / 0,
        space, "run-1", chunk_size=4, retry=RetryPolicy(0, 0.0), store=ResultStore(path),
    )  # fmt: skip
    list(runner.batches())
    runner.store.close()
    records = sorted(read_store(path), key=lambda r: r["index"])
    assert [r["param"] for r in records] == [space[i] for i in range(6)]
    assert [r.get("value") for r in records] == [10, 20, None, 40, 30, 60]
    assert records[2]["error"]["type"] == "ZeroDivisionError"


def test_the_backend_and_the_chunks_get_the_run_id_and_the_slots():
    class Recording(InlineBackend):
        first_poll_after: int | None = None

        def poll(self, timeout_s):
            if self.first_poll_after is None:
                self.first_poll_after = len(self.submitted)
            return super().poll(timeout_s)

    backend = Recording(slots=3)
    runner = Runner(backend, square, ParamRange(500), "run-7", retry=NO_WAIT)
    assert runner.max_chunk_params == 100_000
    assert sum(len(b.values) for b in runner.batches()) == 500
    assert backend.run_id == "run-7" and {c.run_id for c in backend.submitted} == {"run-7"}
    # automatic sizing sends one probe per worker slot before it waits for timings
    assert backend.first_poll_after == 3 and [c.size for c in backend.submitted[:3]] == [16] * 3


def test_one_slot_still_keeps_two_chunks_in_flight():
    class Slow(InlineBackend):
        def poll(self, timeout_s):
            ready, self._ready = self._ready[:1], self._ready[1:]
            return ready

    backend = Slow(slots=1)
    run(backend, square, 100, chunk_size=10)
    assert backend.most_in_flight == 2
    backend = Slow(slots=0)  # a backend that reports no slots still gets one
    run(backend, square, 100, chunk_size=10)
    assert backend.most_in_flight == 2


def test_halves_due_at_the_same_time_run_in_order(clock):
    backend = Clocked(clock, slots=1, kills=lambda c: 5 in c.iter_indices())
    runner, values, failures = run(backend, square, 8, chunk_size=8, max_inflight=1)
    assert [c.chunk_id for c in backend.submitted] == [
        "c000000", "c000000a", "c000000b", "c000000ba", "c000000bb", "c000000baa",
        "c000000bab",
    ]  # fmt: skip
    assert [f.index for f in failures] == [5] and len(runner.ledger) == 8
    assert set(backend.submit_times.values()) == {1000.0}  # halves run at once, no backoff
    assert values == {i: i * i for i in range(8) if i != 5}


def test_duration_is_kept_current_while_results_arrive(clock):
    backend = Clocked(clock, slots=1)
    runner = Runner(backend, square, ParamRange(40), "run-1", chunk_size=10, retry=NO_WAIT)
    durations = []
    for _ in runner.batches():
        durations.append(runner.summary.duration_s)
        clock.now += 2.0
    assert durations == [0.0, 2.0, 4.0, 6.0]


def test_results_for_indices_already_final_are_counted_as_duplicates():
    # Reached when a late copy of a chunk overlaps results another chunk delivered.
    runner = Runner(InlineBackend(), fails_at_three, ParamRange(10), "run-1", retry=NO_WAIT)
    runner.ledger.add_range(2, 4)
    for fn in (fails_at_three, square):  # the slow path, and the fast path's check
        chunk = Chunk("run-1", f"c-{fn.__name__}", 0, 6)
        runner._inflight[chunk.chunk_id] = chunk
        result = run_chunk(fn, ParamRange(10), chunk)
        batch = runner._handle(result, ChunkPlanner("run-1", [(0, 10)]))
        assert list(batch.indices) == [0, 1, 4, 5] and batch.failures == []
        assert batch.values == [fn(i) for i in (0, 1, 4, 5)]
        assert runner.summary.duplicates_discarded == 2 and runner.summary.retries == 0
        runner.ledger = IndexLedger()
        runner.ledger.add_range(2, 4)
        runner.summary.duplicates_discarded = 0
    runner.summary.duplicates_discarded = 0
    lost = lost_chunk(Chunk("run-1", "c1", 3, 4), ParamRange(10), "WorkerCrashedError", "x")
    assert runner._handle_lost(Chunk("run-1", "c1", 3, 4), lost).failures == []
    assert runner.summary.duplicates_discarded == 1


def test_a_retry_due_later_than_the_poll_cap_waits_in_slices(clock):
    backend = Clocked(clock, slots=1)
    run(backend, fails_at_three, 4, chunk_size=4, retry=RetryPolicy(1, base_s=1.2))
    assert backend.polls == [0.5, 0.5, 0.5, 0.2, 0.5]


def test_a_finished_sweep_opens_no_backend(caplog):
    caplog.set_level("INFO", logger="ttg_ray.engine.runner")
    done = IndexLedger()
    done.add_range(0, 5)
    backend = InlineBackend()
    runner = Runner(backend, square, ParamRange(5), "run-2", done=done)
    assert list(runner.batches()) == []
    assert not hasattr(backend, "run_id")  # never opened
    events = [(r.event, r.getMessage(), r.run_id) for r in caplog.records]
    assert events == [("completed", "nothing left to run", "run-2")]


class Growing(Clocked):
    """Gains two worker slots after its first poll; hands back one result a poll and
    records what the runner wants; results take ``per_param_s`` a parameter."""

    per_param_s = 0.001

    def __init__(self, clock, **kwargs):
        super().__init__(clock, **kwargs)
        self.wanted: list[int] = []

    def want(self, chunks):
        self.wanted.append(chunks)

    def submit(self, chunk):
        super().submit(chunk)
        self._ready[-1] = dataclasses.replace(
            self._ready[-1], compute_s=self.per_param_s * chunk.size
        )

    def poll(self, timeout_s):
        self.polls.append(timeout_s)
        self.slots = 3
        ready, self._ready = self._ready[:1], self._ready[1:]
        return ready


def test_the_runner_follows_the_capacity_and_says_how_much_work_is_left(clock, caplog):
    caplog.set_level("INFO", logger="ttg_ray.engine.runner")
    backend = Growing(clock, slots=1)
    _, values, _ = run(backend, square, 400, max_inflight=2)
    assert values == {i: i * i for i in range(400)}
    assert "capacity now 3 worker slot(s), was 1" in [r.getMessage() for r in caplog.records]
    assert caplog.records[1].fields["capacity"] == 1  # "initialized", before it grew
    # a probe, then chunks for 3 workers (the rest over 2 x 3), at least 20 ms of work
    sizes = [c.size for c in backend.submitted]
    assert sizes == [16, 64, 54, 45, 37, 31, 26, 22, 20, 20, 20, 20, 20, 5]
    # 400 parameters in probes of 16 at first; then in flight plus unplanned chunks
    assert backend.wanted == [25, 6, 7, 7, 7, 7, 7, 7, 6, 5, 4, 3, 2, 1, 0]


def test_work_wanted_counts_chunks_in_flight_due_and_unplanned(clock):
    backend = Growing(clock, slots=1)
    run(backend, fails_at_three, 45, chunk_size=10, max_inflight=2)
    # 5 chunks of 10 to plan; then 1 in flight + 1 retry due + 3 unplanned; ...
    assert backend.wanted == [5, 5, 4, 4, 3, 3, 2, 1, 0]
    backend = Growing(clock, slots=1)
    run(backend, square, 3, chunk_size=1, max_inflight=1)
    assert backend.wanted == [3, 2, 1, 0]


class Stalling(Growing):
    """Each poll takes 0.5 s and hands back one result; a chunk whose result it still
    holds reports as running for 100 s, on its first parameter for 40 s, and so does
    one the runner never sent. Results take 0.1 s a parameter."""

    per_param_s = 0.1

    def __init__(self, clock, **kwargs):
        super().__init__(clock, **kwargs)
        self.checked_at: list[float] = []

    def poll(self, timeout_s):
        self.clock.now += 0.5
        return super().poll(timeout_s)

    def running(self):
        self.checked_at.append(self.clock.now)
        return [
            RunningChunk(r.chunk_id, "w1", r.lo, r.lo, 100.0, 40.0, self.clock.now)
            for r in self._ready
        ] + [RunningChunk("c-gone", "w2", None, None, 100.0, 0.0, self.clock.now)]


def test_a_chunk_running_far_longer_than_expected_is_reported_once(clock, caplog):
    backend = Stalling(clock, slots=1)
    _, values, _ = run(backend, square, 40, max_inflight=2)
    assert values == {i: i * i for i in range(40)}
    assert backend.checked_at == [1000.5 + k for k in range(7)]  # at most once a second
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    hint = "set a timeout (--timeout-s) to stop such parameters"
    assert warnings[:3] == [
        f"stalled: chunk c-gone has run 100 s (no timing yet); it is between parameters, "
        f"on w2; {hint}",
        # 3 parameters at 0.1 s each
        f"stalled: chunk c000003 has run 100 s (expected about 0.3 s); it is on parameter "
        f"24 (24) for 40 s, on w1; {hint}",
        f"stalled: chunk c000005 has run 100 s (expected about 0.2 s); it is on parameter "
        f"30 (30) for 40 s, on w1; {hint}",
    ]
    assert len(warnings) == 6


class Stopping(InlineBackend):
    """Stops the worker of a first attempt on parameter 6, as a time limit would."""

    def submit(self, chunk):
        super().submit(chunk)
        result = self._ready[-1]
        if chunk.attempt == 1 and 6 in chunk.iter_indices():
            done = list(chunk.iter_indices()).index(6)
            stuck = ("TimeoutError", "over 2 s")
            self._ready[-1] = cut_short(chunk, self.space, done, result.values, [], stuck)


def test_the_rest_of_a_stopped_chunk_runs_as_a_chunk_of_its_own(caplog):
    caplog.set_level("INFO", logger="ttg_ray.engine.runner")
    backend = Stopping()
    runner, values, failures = run(backend, square, 12, chunk_size=10)
    assert values == {i: i * i for i in range(12)} and failures == []
    assert [(c.chunk_id, c.lo, c.hi, c.attempt) for c in backend.submitted] == [
        ("c000000", 0, 10, 1),
        ("c000001", 10, 12, 1),
        ("c000000@7", 7, 10, 1),  # the rest, nothing run twice
        ("c000000-r2", 6, 7, 2),  # the parameter it was stopped on, retried
    ]
    assert runner.summary.retries == 1 and runner.summary.chunks == 4
    messages = [r.getMessage() for r in caplog.records]
    assert "chunk c000000 stopped after 7 of 10 parameters; the other 3 run as chunk c000000@7" in (
        messages
    )


def test_a_stopped_probe_does_not_hold_up_the_plan():
    class OneAtATime(Stopping):
        def poll(self, timeout_s):
            ready, self._ready = self._ready[:1], self._ready[1:]
            return ready

    backend = OneAtATime(slots=1)
    _, values, failures = run(backend, square, 40, max_inflight=3)
    assert values == {i: i * i for i in range(40)} and failures == []
    # the stopped probe gives no timing: another probe goes out with its rest and retry
    assert [(c.chunk_id, c.lo, c.hi) for c in backend.submitted[:4]] == [
        ("c000000", 0, 16),
        ("c000000@7", 7, 16),
        ("c000000-r2", 6, 7),
        ("c000001", 16, 32),
    ]


def test_retried_parameters_that_pass_keep_their_own_values():
    calls = set()

    def fails_once_at_3_and_7(p):
        if p in (3, 7) and p not in calls:
            calls.add(p)
            raise ValueError(p)
        return p * p

    runner, values, failures = run(InlineBackend(), fails_once_at_3_and_7, 10, chunk_size=10)
    assert values == {i: i * i for i in range(10)} and failures == []
    assert [(c.chunk_id, c.indices) for c in runner.backend.submitted] == [
        ("c000000", None),
        ("c000000-r2", (3, 7)),
    ]


def test_no_chunk_is_planned_larger_than_the_backend_can_carry_back():
    class Carrying(InlineBackend):
        def largest_chunk(self):  # learnt from the first results, as the queue backends do
            return 25 if self.submitted else None

    backend = Carrying()
    _, values, _ = run(backend, square, 1000)
    assert values == {i: i * i for i in range(1000)}
    sizes = [chunk.size for chunk in backend.submitted]
    assert sizes[:2] == [16, 16] and max(sizes[2:]) == 25  # probes, then at most 25
