import numpy as np
import pytest

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import (
    Progress,
    cut_short,
    encodable_values,
    lost_chunk,
    rest_of,
    run_chunk,
    unencodable_failure,
)
from ttg_ray.core.params import Grid, ParamList, ParamRange
from ttg_ray.core.results import ParamFailure
from ttg_ray.core.summary import ValueStats
from ttg_ray.errors import Unencodable


def fails_on_multiples_of_three(p):
    if p % 3 == 0:
        raise ValueError(f"bad {p}")
    return p * 10


def test_a_raising_parameter_does_not_cost_its_neighbours():
    result = run_chunk(
        fails_on_multiples_of_three, ParamRange(10), Chunk("r", "c1", 2, 8, attempt=2)
    )
    assert result.values == [20, None, 40, 50, None, 70]
    assert [(f.index, f.param, f.type, f.attempts) for f in result.failures] == [
        (3, 3, "ValueError", 2),
        (6, 6, "ValueError", 2),
    ]
    assert "bad 3" in result.failures[0].message
    assert "fails_on_multiples_of_three" in result.failures[0].traceback
    assert result.compute_s >= 0 and not result.lost


def test_explicit_indices_and_grid_params():
    space = Grid({"a": [1, 2], "b": [10, 20, 30]})
    chunk = Chunk("r", "c1", 1, 6, indices=(1, 5))
    result = run_chunk(lambda p: p["a"] * p["b"], space, chunk)
    assert result.values == [20, 60]


def test_lost_chunk_blames_every_parameter_and_says_why():
    result = lost_chunk(Chunk("r", "c1", 0, 3), ParamRange(5), "WorkerCrashedError", "died")
    assert result.lost == "died" and result.values == [None] * 3
    assert [f.index for f in result.failures] == [0, 1, 2]


def test_a_parameter_raising_stop_iteration_fails_alone():
    def stops_at_two(x):
        if x == 2:
            raise StopIteration
        return x

    result = run_chunk(stops_at_two, ParamRange(5), Chunk("r", "c", 0, 5))
    assert result.values == [0, 1, None, 3, 4]
    assert [(f.index, f.type, f.message) for f in result.failures] == [
        (2, "StopIteration", f"{stops_at_two.__qualname__} raised StopIteration")
    ]


class StopsAtOne:
    """A callable object: no __qualname__ of its own, so its class names it."""

    def __call__(self, x):
        if x == 1:
            raise StopIteration
        return x


def test_stop_iteration_names_a_callable_without_a_qualname():
    [failure] = run_chunk(StopsAtOne(), ParamRange(2), Chunk("r", "c", 0, 2)).failures
    assert failure.message == "StopsAtOne raised StopIteration"


def test_the_last_parameter_failing_ends_the_chunk():
    result = run_chunk(lambda x: 1 / (x - 3), ParamRange(4), Chunk("r", "c", 0, 4))
    assert [f.index for f in result.failures] == [3]
    assert result.values == [-1 / 3, -1 / 2, -1.0, None]


def numpy_or_set(p):
    if p == 2:
        return {p}
    return {"x": np.float32(p), "a": np.arange(p, dtype=np.int8)} if p % 3 else None


def test_encode_check_gives_the_codecs_values_and_fails_the_unencodable_once():
    chunk = Chunk("r", "c1", 0, 5)
    raw = run_chunk(numpy_or_set, ParamRange(5), chunk)
    assert not raw.failures and type(raw.values[1]["x"]) is np.float32  # Ray, no file
    result = run_chunk(numpy_or_set, ParamRange(5), chunk, encode_values=True)
    assert type(result.values[1]["x"]) is float and result.values[4]["a"].dtype == np.int8
    assert result.values[0] is None and result.values[2] is None
    [failure] = result.failures
    assert (failure.index, failure.type, failure.retryable) == (2, "Unencodable", False)


def exits_at_two(p):
    if p == 2:
        raise SystemExit(4)
    return p


def interrupted_at_one(p):
    if p == 1:
        raise KeyboardInterrupt
    return p


def test_system_exit_fails_only_its_parameter():
    # Pins 847eec9: SystemExit escaping run_chunk made a queue worker spin on the chunk.
    result = run_chunk(exits_at_two, ParamRange(4), Chunk("r", "c1", 0, 4))
    assert result.values == [0, 1, None, 3]
    assert [(f.index, f.type, f.message) for f in result.failures] == [(2, "SystemExit", "4")]


def test_keyboard_interrupt_stops_the_chunk():
    with pytest.raises(KeyboardInterrupt):
        run_chunk(interrupted_at_one, ParamRange(4), Chunk("r", "c1", 0, 4))


def test_the_chunk_result_carries_the_chunk_and_where_it_ran():
    chunk = Chunk("run-3", "c000004-r2", 2, 9, indices=(2, 5, 8), attempt=2)
    result = run_chunk(fails_on_multiples_of_three, ParamRange(10), chunk, node="n1", worker="w7")
    assert (result.run_id, result.chunk_id, result.lo, result.hi) == ("run-3", "c000004-r2", 2, 9)
    assert (result.indices, result.attempt, result.node, result.worker) == (
        (2, 5, 8),
        2,
        "n1",
        "w7",
    )
    assert result.values == [20, 50, 80] and result.failures == [] and result.lost == ""
    failed = run_chunk(fails_on_multiples_of_three, Grid({"x": [3, 4]}), Chunk("r", "c", 0, 1))
    assert failed.failures[0].param == {"x": 3} and failed.failures[0].index == 0


def test_a_lost_chunk_keeps_its_identity_and_parameters():
    chunk = Chunk("run-3", "c9a", 0, 10, indices=(4, 7), attempt=3)
    result = lost_chunk(chunk, Grid({"x": range(10)}), "ResultTooLarge", "too big")
    assert (result.run_id, result.chunk_id, result.lo, result.hi) == ("run-3", "c9a", 0, 10)
    assert (result.indices, result.attempt, result.lost, result.values) == (
        (4, 7), 3, "too big", [None, None]
    )  # fmt: skip
    assert [(f.index, f.param, f.type, f.message, f.attempts) for f in result.failures] == [
        (4, {"x": 4}, "ResultTooLarge", "too big", 3),
        (7, {"x": 7}, "ResultTooLarge", "too big", 3),
    ]
    assert (result.compute_s, result.node, result.worker) == (0.0, "", "")


def test_defaults_and_the_time_spent():
    import time

    result = run_chunk(lambda p: time.sleep(0.001) or p, ParamRange(2), Chunk("r", "c", 0, 2))
    assert (result.node, result.worker) == ("", "")
    assert result.compute_s > 0  # recorded, whatever the machine's speed


def test_the_result_carries_the_statistics_of_its_values():
    result = run_chunk(lambda p: p * 2.0, ParamRange(4), Chunk("r", "c", 0, 4))
    assert result.stats == ValueStats.of([0.0, 2.0, 4.0, 6.0])
    assert result.stats.count == 4


def test_a_given_progress_is_the_one_kept_up_to_date():
    progress = Progress(chunk_started=5.0)
    result = run_chunk(
        fails_on_multiples_of_three, ParamRange(5), Chunk("r", "c", 1, 4), progress=progress
    )
    assert progress.values == result.values == [10, 20, None]
    assert [f.index for f in progress.failures] == [3]
    assert progress.finished is True and progress.position == 3


def test_running_since_is_when_a_reader_first_saw_the_position():
    progress = Progress(chunk_started=10.0)
    assert progress.position == 0
    assert progress.running_since(11.0) == 10.0  # the first parameter began with the chunk
    progress.values.append(1)
    assert progress.running_since(12.5) == 12.5
    assert progress.running_since(14.0) == 12.5  # the same parameter still runs
    progress.values.append(2)
    assert progress.running_since(15.0) == 15.0
    progress.finished = True
    assert progress.running_since(16.0) is None


def test_encoding_keeps_earlier_failures_and_fails_only_the_unencodable():
    space = ParamList(["a", "b", "c", "d"])
    chunk = Chunk("r", "c", 0, 4, attempt=3)
    earlier = ParamFailure(1, "b", "ValueError", "bad")
    values, failures = encodable_values([{1}, None, np.int64(7), {2}], [earlier], chunk, space)
    assert values == [None, None, 7, None] and type(values[2]) is int
    message = codec_message("value is a set, which cannot be written; return a sorted list instead")
    assert failures == [
        earlier,
        ParamFailure(0, "a", "Unencodable", message, attempts=3, retryable=False),
        ParamFailure(3, "d", "Unencodable", message, attempts=3, retryable=False),
    ]


def codec_message(reason):
    return (
        f"{reason}; a result file or queue message keeps JSON values, numpy numbers and "
        "numeric or bool numpy arrays (lists, tuples and str-keyed dicts of them)"
    )


def test_plain_values_are_returned_as_they_are():
    values, failures = [1, 2.5, "x", True, None], []
    assert encodable_values(values, failures, Chunk("r", "c", 0, 5), ParamRange(5)) == (
        values,
        failures,
    )


def test_an_unencodable_failure_is_never_retried():
    failure = unencodable_failure(4, {"x": 4}, Unencodable("value is odd"), 2)
    assert failure == ParamFailure(
        4, {"x": 4}, "Unencodable", codec_message("value is odd"), attempts=2, retryable=False
    )


def failures_at(*indices):
    return [ParamFailure(i, i, "ValueError", f"bad {i}") for i in indices]


def test_cut_short_keeps_the_prefix_done():
    chunk = Chunk("run", "c7", 10, 15, attempt=2)
    values = [10, None, 12, None]  # the worker was stopped with 13 under way
    result = cut_short(chunk, ParamRange(20), 3, values, failures_at(11, 13), node="n1")
    assert (result.run_id, result.chunk_id, result.lo, result.hi) == ("run", "c7", 10, 13)
    assert (result.indices, result.attempt, result.node) == (None, 2, "n1")
    assert result.values == [10, None, 12]
    assert result.failures == failures_at(11)
    assert rest_of(chunk, result) == [13, 14]


def test_cut_short_fails_the_parameter_it_was_stuck_on():
    chunk = Chunk("run", "c7", 10, 15, attempt=2)
    result = cut_short(chunk, ParamRange(20), 2, [10, 11], [], ("TimeoutError", "took 5 s"))
    assert (result.lo, result.hi, result.indices) == (10, 13, None)
    assert result.values == [10, 11, None]
    assert result.failures == [ParamFailure(12, 12, "TimeoutError", "took 5 s", attempts=2)]
    assert rest_of(chunk, result) == [13, 14]


def test_cut_short_of_explicit_indices():
    chunk = Chunk("run", "c7", 0, 12, indices=(2, 5, 8, 11), attempt=3)
    space = Grid({"x": range(12)})
    failures = failures_at(5, 8)
    result = cut_short(chunk, space, 2, [2, None, None], failures, ("MemoryError", "over 1 GiB"))
    assert (result.lo, result.hi, result.indices, result.attempt) == (2, 9, (2, 5, 8), 3)
    assert result.values == [2, None, None]
    assert result.failures == [
        *failures_at(5),
        ParamFailure(8, {"x": 8}, "MemoryError", "over 1 GiB", attempts=3),
    ]
    assert rest_of(chunk, result) == [11]


def test_cut_short_before_the_first_parameter():
    chunk = Chunk("run", "c7", 4, 8, indices=(4, 7))
    result = cut_short(chunk, ParamRange(9), 0, [], [])
    assert (result.lo, result.hi, result.indices, result.values, result.failures) == (
        4, 4, None, [], []
    )  # fmt: skip
    assert rest_of(chunk, result) == [4, 7]


def test_cut_short_after_the_last_parameter_blames_nobody():
    chunk = Chunk("run", "c7", 0, 2)
    result = cut_short(chunk, ParamRange(3), 2, [0, 1], [], ("TimeoutError", "late"))
    assert (result.lo, result.hi, result.values, result.failures) == (0, 2, [0, 1], [])
    assert rest_of(chunk, result) == []
