"""The runner's contract, on an in-process backend: no Ray, no broker."""

import json
from pathlib import Path

import pytest

from tests.support.fakes import InlineBackend
from ttg_ray import workloads
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
    store.write([(i, i, i * i) for i in range(0, 40)], [])
    store.write([(i, i, i * i) for i in range(70, 80)], [])
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
    assert seen[-1] == (10, 10)


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
