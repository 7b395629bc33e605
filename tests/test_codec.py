"""The value codec: every value it accepts reads back with the same value, type and
bits (tuples as lists, numpy scalars as Python numbers); everything else is refused."""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ttg_ray.core import codec
from ttg_ray.errors import Unencodable

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    ">i4",
    ">f8",
]

arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
)
numpy_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.integers(-128, 127).map(np.int8),
    st.floats(width=32, allow_nan=True).map(np.float32),
    st.floats(width=16).map(np.float16),
    st.floats().map(np.float64),
    st.booleans().map(np.bool_),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    numpy_scalars,
    arrays,
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        # The reserved key is refused (tested below); Hypothesis finds it in the source.
        st.dictionaries(st.text(max_size=5).filter(lambda k: k != codec.TAG), inner, max_size=4),
    ),
    max_leaves=12,
)


def expected(value):
    """What the codec promises to give back for ``value``."""
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def same(a, b) -> bool:
    """Equal in type and bits (NaN equals NaN, -0.0 differs from 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    return a == b


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_value_reads_back_the_same(value):
    text = codec.dumps(value)
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not standard JSON"))
    assert same(codec.loads(text), expected(value))
    assert same(codec.normal(value), expected(value))


@pytest.mark.parametrize(
    "numbers",
    [
        [0.1 * i for i in range(1000)],  # a chunk's values, kept as they are
        [1e308, 1e308, -0.0],  # finite, though their sum overflows
        [1.5, math.inf, 2],
        [math.nan, 1, "a", None, True],
    ],
)
def test_lists_of_numbers_read_back_the_same(numbers):
    text = codec.dumps(numbers)
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not standard JSON"))
    assert same(codec.loads(text), numbers)


@given(st.lists(st.floats(), min_size=1))
def test_a_column_of_floats_travels_as_doubles_bit_for_bit(values):
    data = codec.encode_column(values)
    assert list(data) == ["$ttg", "data"] and data["$ttg"] == "floats"
    back = codec.decode(json.loads(json.dumps(data)))
    assert {type(v) for v in back} == {float}
    assert struct.pack(f"<{len(back)}d", *back) == struct.pack(f"<{len(values)}d", *values)


@pytest.mark.parametrize(
    "values", [[], [1.5, 2], [0.5, True], [1.0, None], [np.float64(0.5), 0.25], [1.5, [2.0]]]
)
def test_a_column_that_is_not_all_floats_is_encoded_value_by_value(values):
    data = codec.encode_column(values)
    assert data == codec.encode(values)
    assert same(codec.decode(data), expected(values))


def test_a_float32_comes_back_equal_to_itself():
    x = np.float32(0.1)
    back = codec.loads(codec.dumps(x))
    assert type(back) is float and np.float32(back) == x and back == x


def test_arrays_keep_dtype_shape_and_bits_including_0d_and_non_contiguous():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::2, 1:]
    for array in (a, np.array(3.5, np.float16), np.array([np.nan, -0.0]), np.zeros((0, 3))):
        back = codec.loads(codec.dumps(array))
        assert same(back, array.copy()) and back.flags.writeable


def test_a_large_array_is_kept_whole_not_elided():
    array = np.arange(5000)
    assert np.array_equal(codec.loads(codec.dumps(array)), array)


class Point(NamedTuple):
    x: Any
    y: Any


class Celsius(float):
    pass


UNKNOWN = "which cannot be written; return"
ONLY_NUMERIC = (
    "only bool and numeric dtypes are kept: convert it (for example array.tolist() for strings)"
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, f"value is a set, {UNKNOWN} a sorted list instead"),
        (
            b"raw",
            f"value is a bytes, {UNKNOWN} a str (base64) or np.frombuffer(data, np.uint8) instead",
        ),
        (
            Decimal("1.5"),
            f"value is a decimal.Decimal, {UNKNOWN} str(value) or float(value) instead",
        ),
        (
            object(),
            f"value is a object, {UNKNOWN} JSON values, numpy numbers or a numeric numpy array "
            "(for an object, a dict of its fields) instead",
        ),
        (
            1 + 2j,
            f"value is a complex, {UNKNOWN} a 0-d numpy array (np.asarray(z)) "
            "or two floats instead",
        ),
        (np.array(["a"]), f"value is a numpy array of dtype <U1; {ONLY_NUMERIC}"),
        (
            np.zeros(1, [("a", "<i4")]),
            f"value is a numpy array of dtype [('a', '<i4')]; {ONLY_NUMERIC}",
        ),
        (
            {"a": np.array([{}], dtype=object)},
            f"value['a'] is a numpy array of dtype object; {ONLY_NUMERIC}",
        ),
        (
            {1: "x"},
            "value has a int key 1; dict keys must be str (JSON object keys): "
            "convert the keys with str()",
        ),
        ({"$ttg": 1}, "value uses the key '$ttg', which the codec reserves"),
        ([1, {"deep": {3}}], f"value[1]['deep'] is a set, {UNKNOWN} a sorted list instead"),
        (OrderedDict(k={5}), f"value['k'] is a set, {UNKNOWN} a sorted list instead"),
        (Point(1, {6}), f"value[1] is a set, {UNKNOWN} a sorted list instead"),
    ],
)
def test_anything_else_is_refused_naming_its_type_and_what_to_return(value, message):
    with pytest.raises(Unencodable) as info:
        codec.dumps(value)
    assert str(info.value) == message


@pytest.mark.skipif(np.finfo(np.longdouble).bits <= 64, reason="long double is a float64 here")
def test_a_long_double_is_refused():
    with pytest.raises(Unencodable) as info:
        codec.dumps([np.longdouble(1) / 3])
    assert str(info.value) == (
        f"value[0] is a {np.dtype(np.longdouble)} scalar, which a float cannot hold exactly; "
        "return float(value) or a numpy array of that dtype"
    )


ARRAY = {"dtype": "<f8", "shape": [1], "data": "AAAAAAAAAAA="}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"$ttg": "pickle", "data": "gASV" * 30},
            'unknown or malformed tagged value {"$ttg": "pickle", "data": "gASVgASVgASVgASVgASV'
            "gASVgASVgASVgASVgASVgASVgASVgASV",
        ),
        (
            {"$ttg": "float", "value": "NaNa"},
            'unknown or malformed tagged value {"$ttg": "float", "value": "NaNa"}',
        ),
        (
            {"$ttg": "float", **ARRAY},
            'unknown or malformed tagged value {"$ttg": "float", "dtype": "<f8", "shape": [1], '
            '"data": "AAAAAAAAAAA="}',
        ),
        (
            {"$ttg": "ndarray", **ARRAY, "dtype": "|O"},
            "refusing an array of dtype object: only bool and numeric",
        ),
        (
            {"$ttg": "ndarray", **ARRAY, "dtype": "|S1"},
            "refusing an array of dtype |S1: only bool and numeric",
        ),
        (
            {"$ttg": "ndarray", **ARRAY, "shape": [2]},
            "array data of 8 bytes does not fit (2,) float64",
        ),
        (
            {"$ttg": "ndarray", **ARRAY, "data": "AAAA!AAAAAA="},
            "malformed array: Only base64 data is allowed",
        ),
        (
            {"$ttg": "ndarray", **ARRAY, "dtype": "xx"},
            "malformed array: data type 'xx' not understood",
        ),
        (
            {"$ttg": "floats", "data": "AAAA"},
            "floats data of 3 bytes is not a whole number of doubles",
        ),
        (
            {"$ttg": "floats", "data": "AAAA!AAAAAA="},
            "malformed floats: Only base64 data is allowed",
        ),
        (
            {"$ttg": "floats", "data": 5},
            "malformed floats: argument should be a bytes-like object or ASCII string, not 'int'",
        ),
        (
            {"$ttg": "floats", "data": "", "shape": [0]},
            'unknown or malformed tagged value {"$ttg": "floats", "data": "", "shape": [0]}',
        ),
    ],
)
def test_decode_refuses_what_it_does_not_know(data, message):
    with pytest.raises(Unencodable) as info:
        codec.decode(data)
    assert str(info.value) == message


def test_float_and_tuple_subclasses_read_back_as_plain_values():
    back = codec.loads(codec.dumps({"t": Celsius(21.5), "p": Point(2, Celsius("-inf"))}))
    assert back == {"t": 21.5, "p": [2, -math.inf]} and type(back["t"]) is float


def test_dict_subclasses_and_int_enums_keep_their_values_as_plain_types():
    import enum

    class Color(enum.IntEnum):
        RED = 1

    assert codec.loads(codec.dumps({"c": Color.RED})) == {"c": 1}
    back = codec.normal(OrderedDict(a=np.int16(1)))
    assert back == {"a": 1} and type(back) is dict and type(back["a"]) is int


def test_plain_values_are_written_as_plain_json():
    assert codec.dumps({"a": [1, 2.5, "x", None, True]}) == '{"a":[1,2.5,"x",null,true]}'
    assert json.loads(codec.dumps(math.inf)) == {"$ttg": "float", "value": "inf"}
