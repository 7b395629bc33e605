import numpy as np

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
    assert result.values[:3] == [-1 / 3, -1 / 2, -1.0] and result.values[3] is None


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
