import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttg_ray.core.params import (
    Grid,
    ParamList,
    ParamRange,
    as_space,
    parse_axis,
    parse_range,
    require_params,
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


def test_one_argument_range_counts_from_zero_and_step_defaults_to_one():
    space = ParamRange(4)
    assert (space.start, space.stop, space.step) == (0, 4, 1)
    assert repr(space) == "ParamRange(0, 4, 1)"
    assert repr(ParamRange(2, 9, 3)) == "ParamRange(2, 9, 3)"
    assert list(ParamRange(2, 9, 3).iter_slice(1, 3)) == [5, 8]


@pytest.mark.parametrize(
    "args, message",
    [
        ((1.5,), "range stop must be an integer, got 1.5"),
        ((True, 3), "range start must be an integer, got True"),
        ((0, 3, "1"), "range step must be an integer, got '1'"),
        ((0, 3, 0), "range step must not be 0"),
    ],
)
def test_range_arguments_are_checked(args, message):
    with pytest.raises(InvalidSpace) as err:
        ParamRange(*args)
    assert str(err.value) == message


def test_index_errors_name_the_index_and_the_size():
    with pytest.raises(IndexError) as err:
        ParamRange(3)[-4]
    assert str(err.value) == "index -1 out of range for a space of 3 parameters"
    assert ParamRange(3)[-3] == 0 and ParamRange(3)[2] == 2


def test_fingerprint_equality_and_hash_follow_the_spec():
    a, b = Grid({"x": [1, 2], "y": range(3)}), Grid({"x": [1, 2], "y": range(3)})
    blob = '{"axes":[{"name":"x","values":[1,2]},{"name":"y","range":[0,3,1]}],"kind":"grid"}'
    import hashlib

    assert a.fingerprint() == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Grid({"x": [1, 2], "y": range(4)}) and a != a.to_spec()
    assert ParamRange(3) != ParamList([0, 1, 2])


def test_grid_repr_and_axis_checks():
    grid = Grid({"a": [1, 2], "b": range(2)})
    assert repr(grid) == "Grid({'a': (1, 2), 'b': range(0, 2)})"
    assert grid.names == ("a", "b") and grid.axes == ((1, 2), range(0, 2))
    cases = [
        ({}, "a grid needs at least one axis, e.g. --grid x=1,2,3"),
        ({"": [1]}, "grid axis names must be non-empty strings, got ''"),
        ({3: [1]}, "grid axis names must be non-empty strings, got 3"),
        ({"a": "xyz"}, "grid axis 'a' must be a list or a range, got 'xyz'"),
        ({"a": {1, 2}}, "grid axis 'a' must be a list or a range, got {1, 2}"),
        ({"a": []}, "grid axis 'a' is empty; give it at least one value"),
        ({"a": range(0)}, "grid axis 'a' is empty; give it at least one value"),
    ]
    for axes, message in cases:
        with pytest.raises(InvalidSpace) as err:
            Grid(axes)
        assert str(err.value) == message


def test_list_spec_slices_and_repr():
    space = ParamList((1, 2, 3, 4))
    assert space.to_spec() == {"kind": "list", "values": [1, 2, 3, 4]}
    assert list(space.iter_slice(1, 3)) == [2, 3]
    assert repr(space) == "ParamList(<4 values>)"
    assert space.window_spec(1, 3) == {"kind": "list", "values": [2, 3], "offset": 1}
    with pytest.raises(InvalidSpace) as err:
        ParamList("abc")
    assert str(err.value) == "a parameter list must be a sequence of values, not a string"
    with pytest.raises(InvalidSpace):
        ParamList(b"abc")


def test_a_window_answers_only_its_own_indices():
    window = space_from_spec({"kind": "list", "values": ["c", "d"], "offset": 2})
    assert len(window) == 4 and window[2] == "c" and window[3] == "d"
    assert list(window.iter_slice(2, 4)) == ["c", "d"]
    assert window_spec(window, 2, 3) == window.to_spec() == {"kind": "list", "values": ["c", "d"]}
    for outside in (1, 4):
        with pytest.raises(IndexError) as err:
            window._get(outside)
        assert str(err.value) == f"index {outside} is outside this message's window"
    with pytest.raises(IndexError):
        list(window.iter_slice(1, 3))
    assert window_spec(Grid({"a": [1]}), 0, 1) == Grid({"a": [1]}).to_spec()


def test_the_base_space_slices_by_indexing():
    from ttg_ray.core.params import Space

    class Squares(Space):
        def __len__(self):
            return 5

        def _get(self, index):
            return index * index

    assert list(Squares().iter_slice(1, 4)) == [1, 4, 9]
    with pytest.raises(NotImplementedError):
        Squares().to_spec()
    with pytest.raises(NotImplementedError):
        len(Space())
    with pytest.raises(NotImplementedError):
        Space()._get(0)


def test_specs_round_trip_with_defaults():
    assert space_from_spec({"kind": "range", "start": 1, "stop": 4}) == ParamRange(1, 4, 1)
    grid = space_from_spec(
        {"kind": "grid", "axes": [{"name": "a", "range": [0, 4, 2]}, {"name": "b", "values": [7]}]}
    )
    assert [grid[i] for i in range(len(grid))] == [{"a": 0, "b": 7}, {"a": 2, "b": 7}]
    assert space_from_spec({"kind": "list", "values": [5, 6]}) == ParamList([5, 6])


@pytest.mark.parametrize(
    "spec, message",
    [
        (None, "a space spec must be an object with a 'kind', got None"),
        ({"start": 0}, "a space spec must be an object with a 'kind', got {'start': 0}"),
        (
            {"kind": "cube"},
            "unknown space kind 'cube'; expected range, grid, list, frange, linspace, "
            "logspace, random or quasirandom",
        ),
        ({"kind": "range", "start": 0}, "malformed 'range' space spec: KeyError('stop')"),
        ({"kind": "grid", "axes": [{"range": [1]}]}, "malformed 'grid' space spec: KeyError"),
        ({"kind": "grid", "axes": 3}, "malformed 'grid' space spec: TypeError"),
        ({"kind": "list", "values": [1], "offset": "x"}, "malformed 'list' space spec: Value"),
    ],
)
def test_space_from_spec_says_what_is_wrong(spec, message):
    with pytest.raises(InvalidSpace) as err:
        space_from_spec(spec)
    assert str(err.value).startswith(message)


def test_as_space_keeps_a_space_and_converts_the_rest():
    space = ParamRange(3)
    assert as_space(space) is space
    assert as_space(4) == ParamRange(0, 4, 1) and as_space(0) == ParamRange(0)
    assert as_space(range(2, 9, 3)) == ParamRange(2, 9, 3)
    assert as_space({"a": [1, 2]}) == Grid({"a": [1, 2]})
    assert as_space((5, 6)) == ParamList([5, 6])
    cases = [
        (True, "params must be a count, a range, a sequence or a space, not a bool"),
        (-1, "the parameter count must be >= 0, got -1"),
        ("ab", "cannot make a parameter space from str; pass an int, a range, a list, a dict "
         "of axes (grid) or a Space"),
        (b"ab", "cannot make a parameter space from bytes; pass an int"),
    ]  # fmt: skip
    for bad, message in cases:
        with pytest.raises(InvalidSpace) as err:
            as_space(bad)
        assert str(err.value).startswith(message)


def test_parser_messages():
    for text, message in [
        ("5", "a range must look like START:STOP or START:STOP:STEP, got '5'"),
        ("1: ", "a range must look like START:STOP or START:STOP:STEP, got '1: '"),
        ("a:b", "range bounds must be integers, got 'a:b'"),
        ("1:2:0", "range step must not be 0 in '1:2:0'"),
    ]:
        with pytest.raises(InvalidSpace) as err:
            parse_range(text)
        assert str(err.value) == message
    assert parse_range("1:2:0".replace("0", "1")) == range(1, 2, 1)
    assert parse_axis(" n = 0:4 ") == ("n", range(0, 4))
    assert parse_axis('s="a",null,true') == ("s", ("a", None, True))
    assert parse_axis("t=1:2,3") == ("t", ("1:2", 3))
    for text in ("x", "=1", "x= "):
        with pytest.raises(InvalidSpace) as err:
            parse_axis(text)
        assert str(err.value) == (
            f"a grid axis must look like NAME=1,2,3 or NAME=0:10, got {text!r}"
        )
    with pytest.raises(InvalidSpace) as err:
        parse_axis("e=5:5")
    assert str(err.value) == "grid axis 'e' is empty in 'e=5:5'"


def test_edges_of_windows_offsets_and_axes():
    from ttg_ray.core.params import _OffsetList

    with pytest.raises(IndexError) as err:
        ParamRange(3)[3]
    assert str(err.value) == "index 3 out of range for a space of 3 parameters"
    assert len(_OffsetList(["a"], 2, total=10)) == 10 and len(_OffsetList(["a"], 2)) == 3
    spec = window_spec(ParamList([1, 2, 3, 4]), 1, 3)
    assert spec == {"kind": "list", "values": [2, 3], "offset": 1}
    assert parse_axis("x=a=b") == ("x", ("a=b",))


def test_numpy_values_become_python_numbers_in_params_and_specs():
    space = ParamList(np.arange(3, dtype=np.int16))
    assert [type(p) for p in space.iter_slice(0, 3)] == [int] * 3
    assert json.dumps(space.to_spec()) == '{"kind": "list", "values": [0, 1, 2]}'
    assert json.dumps(space.window_spec(1, 3)) == (
        '{"kind": "list", "values": [1, 2], "offset": 1}'
    )
    grid = Grid({"a": np.array([0.5, 1.5]), "b": [np.int64(7)]})
    assert grid[1] == {"a": 1.5, "b": 7} and type(grid[1]["b"]) is int


def test_a_0d_array_is_not_a_parameter_list():
    with pytest.raises(InvalidSpace) as err:
        ParamList(np.array(3))
    assert str(err.value) == "a parameter list must have at least one dimension, not 0-d"


def test_as_space_reads_a_generator_once():
    space = as_space(x * x for x in range(4))
    assert space == ParamList([0, 1, 4, 9])


def test_space_from_spec_knows_the_newer_kinds():
    from ttg_ray.core.sampling import Linspace

    assert space_from_spec(Linspace(0, 1, 5).to_spec()) == Linspace(0, 1, 5)


def test_an_empty_space_is_refused_saying_what_was_given():
    space = ParamRange(3)
    assert require_params(space, lambda: "never called", "pass some") is space
    with pytest.raises(InvalidSpace) as err:
        require_params(ParamList([]), lambda: "--params []", "pass at least one value")
    assert str(err.value) == (
        "the parameter space is empty (--params []): nothing to run; pass at least one value"
    )
