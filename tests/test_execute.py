import numpy as np
import pytest

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import lost_chunk, run_chunk
from ttg_ray.core.params import Grid, ParamRange


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
    assert [(f.index, f.type) for f in result.failures] == [(2, "StopIteration")]


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
