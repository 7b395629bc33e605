import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttg_ray.core.params import (
    Grid,
    ParamList,
    ParamRange,
    as_space,
    parse_axis,
    parse_count,
    parse_range,
    space_from_spec,
    window_spec,
)
from ttg_ray.errors import InvalidSpace


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-7, 7).filter(bool))
def test_range_matches_python_range(start, stop, step):
    space = ParamRange(start, stop, step)
    expected = range(start, stop, step)
    assert len(space) == len(expected)
    assert [space[i] for i in range(len(space))] == list(expected)
    assert list(space.iter_slice(0, len(space))) == list(expected)
    assert space_from_spec(json.loads(json.dumps(space.to_spec()))) == space


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.lists(st.integers(), min_size=1, max_size=4),
        min_size=1,
        max_size=3,
    )
)
def test_grid_is_the_cartesian_product_last_axis_fastest(axes):
    import itertools

    space = Grid(axes)
    names = list(axes)
    expected = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]
    assert len(space) == len(expected)
    assert [space[i] for i in range(len(space))] == expected
    assert space_from_spec(json.loads(json.dumps(space.to_spec()))) == space


def test_grid_with_range_axis_and_negative_index():
    space = Grid({"a": range(0, 10, 2), "b": ["x", "y"]})
    assert len(space) == 10
    assert space[0] == {"a": 0, "b": "x"}
    assert space[3] == {"a": 2, "b": "y"}
    assert space[-1] == {"a": 8, "b": "y"}
    assert space.to_spec()["axes"][0] == {"name": "a", "range": [0, 10, 2]}


def test_list_space_and_window_spec():
    space = ParamList([1, "two", {"three": 3}, [4]])
    assert len(space) == 4 and space[2] == {"three": 3}
    window = space_from_spec(window_spec(space, 1, 3))
    assert [window[1], window[2]] == ["two", {"three": 3}]
    with pytest.raises(IndexError):
        window[0]
    assert window_spec(ParamRange(10), 2, 5) == ParamRange(10).to_spec()


def test_ten_million_points_cost_nothing():
    spaces = [ParamRange(10_000_000), Grid({"a": range(10_000), "b": range(1_000)})]
    assert all(len(s) == 10_000_000 for s in spaces)
    assert spaces[1][9_999_999] == {"a": 9_999, "b": 999}
    # Correctness, not timing: nothing was materialised, so this stays tiny.
    assert len(json.dumps([s.to_spec() for s in spaces])) < 200


def test_index_out_of_range():
    with pytest.raises(IndexError):
        ParamRange(3)[3]


@pytest.mark.parametrize(
    "params, expected_len",
    [(5, 5), (range(2, 8), 6), ([3, 1, 2], 3), ({"x": [1, 2], "y": range(3)}, 6)],
)
def test_as_space_accepts_what_compute_accepts(params, expected_len):
    assert len(as_space(params)) == expected_len


@pytest.mark.parametrize("bad", [-1, True, "abc", 3.5, None])
def test_as_space_rejects_bad_params(bad):
    with pytest.raises(InvalidSpace):
        as_space(bad)


def test_parsers():
    assert parse_range("2:10:3") == range(2, 10, 3)
    assert parse_range("0:5") == range(5)
    assert len(parse_count("7")) == 7
    assert parse_axis("lr=0.1,0.01,abc") == ("lr", (0.1, 0.01, "abc"))
    assert parse_axis("n=0:4") == ("n", range(0, 4))


@pytest.mark.parametrize("text", ["5", "a:b", "1:2:0", "1::2", ":", "1:2:3:4"])
def test_parse_range_rejects(text):
    with pytest.raises(InvalidSpace, match="range"):
        parse_range(text)


@pytest.mark.parametrize("text", ["x", "=1,2", "x=", "x=1:z"])
def test_parse_axis_rejects(text):
    with pytest.raises(InvalidSpace):
        parse_axis(text)


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {"kind": "cube"},
        {"kind": "range", "start": 0},
        {"kind": "range", "start": 0, "stop": "9"},
        {"kind": "grid", "axes": [{"name": "a", "values": []}]},
        {"kind": "grid", "axes": []},
    ],
)
def test_space_from_spec_rejects(spec):
    with pytest.raises(InvalidSpace):
        space_from_spec(spec)
