"""The one value codec: what a result file, a queue message and --resume can hold, and
how each value is written as standard JSON and read back with the same value.

Kept: None, bool, str, int (any size), finite floats as JSON numbers; NaN and the
infinities, and numpy arrays of bool or numeric dtype (any shape, 0-d too, bit for bit
with dtype and shape) as tagged objects ``{"$ttg": ...}``; numpy bool/int/float scalars
as Python bools and numbers of the same value (a float32 is exact as a float); lists,
tuples (read back as lists) and dicts with str keys of all these. Anything else raises
Unencodable, naming its type and what to return instead. Never pickles, never repr.
A queue message carries a chunk's values that are all floats as one tagged block of
doubles (``encode_column``), read back as the same list of floats.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from array import array
from typing import Any

import numpy as np

from ttg_ray.errors import Unencodable

TAG = "$ttg"
_PLAIN = (str, int, bool, type(None))
_SCALARS = {*_PLAIN, float}  # decoded as they are
_ARRAY_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_FLOAT_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_HINTS = {
    "set": "a sorted list",
    "frozenset": "a sorted list",
    "bytes": "a str (base64) or np.frombuffer(data, np.uint8)",
    "bytearray": "a str (base64) or np.frombuffer(data, np.uint8)",
    "complex": "a 0-d numpy array (np.asarray(z)) or two floats",
    "complex64": "a 0-d numpy array (np.asarray(z))",
    "complex128": "a 0-d numpy array (np.asarray(z))",
    "DataFrame": "df.to_dict('list') or df.to_numpy()",
    "Series": "series.to_numpy() or series.to_dict()",
    "datetime": "value.isoformat() or a timestamp float",
    "date": "value.isoformat()",
    "Decimal": "str(value) or float(value)",
    "PosixPath": "str(path)",
    "WindowsPath": "str(path)",
}


def encode(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bool, None)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if value - value == 0 else _special_float(value)
    return _encode_other(value, "value")


def decode(data: Any) -> Any:
    """The value that ``encode`` made ``data`` from; Unencodable for a tag it does not
    know (it never guesses)."""
    kind = type(data)
    if kind is list:
        if set(map(type, data)) <= _SCALARS:  # a chunk's numbers: nothing to decode
            return data
        return [decode(v) for v in data]
    if kind is dict:
        if TAG in data:
            return _decode_tagged(data)
        return {k: decode(v) for k, v in data.items()}
    return data


def encode_column(values: list) -> Any:
    """A chunk's values for a queue message. All floats: one tagged block of IEEE-754
    doubles, little-endian (exact, NaN and the infinities too; JSON numbers cost about
    8x more to write and read); anything else as ``encode`` does."""
    if not values or set(map(type, values)) != {float}:
        return encode(values)
    doubles = array("d", values)
    if sys.byteorder == "big":
        doubles.byteswap()
    return {TAG: "floats", "data": base64.b64encode(doubles.tobytes()).decode("ascii")}


def normal(value: Any) -> Any:
    """What ``value`` reads back as after a trip through the codec."""
    kind = type(value)
    if kind in _PLAIN or (kind is float):
        return value
    return decode(encode(value))


def dumps(value: Any) -> str:
    """``value`` as one line of standard JSON (no NaN literals)."""
    return to_json(encode(value))


def to_json(data: Any) -> str:
    """Data that is JSON already (what ``encode`` returns, or a record read back) as one
    compact line of standard JSON (no NaN literals)."""
    return json.dumps(data, allow_nan=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    return decode(json.loads(text))


def _plain_numbers(items: list) -> bool:
    """True when every item is JSON already: str, int, bool, None, finite float."""
    kinds = set(map(type, items))
    if not kinds <= _SCALARS:
        return False
    if float not in kinds:
        return True
    floats = items if kinds == {float} else [v for v in items if type(v) is float]
    return math.isfinite(sum(floats))  # an inf or NaN (or an overflow: then the slow way)


def failure_message(err: Unencodable) -> str:
    """The message a parameter fails with when its value cannot be written."""
    return (
        f"{err}; a result file or queue message keeps JSON values, numpy numbers and "
        "numeric or bool numpy arrays (lists, tuples and str-keyed dicts of them)"
    )


def _encode_other(value: Any, path: str) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float or kind is np.float64:
        value = float(value)
        return value if value - value == 0 else _special_float(value)
    if kind is list and _plain_numbers(value):  # a chunk's values: kept as they are
        return value
    if kind is list or kind is tuple:
        return [_encode_other(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind is dict:
        return _encode_dict(value, path)
    if isinstance(value, np.ndarray):
        return _encode_array(value, path)
    if isinstance(value, (np.bool_, np.integer)):
        return value.item()
    if isinstance(value, np.floating):
        if value.dtype.itemsize > 8:
            raise Unencodable(
                f"{path} is a {value.dtype} scalar, which a float cannot hold exactly; "
                "return float(value) or a numpy array of that dtype"
            )
        return _encode_other(float(value), path)
    if isinstance(value, (bool, int, str)):  # subclasses (IntEnum, str enums): their value
        return _encode_other(_base_value(value), path)
    if isinstance(value, float):
        return _encode_other(float(value), path)
    if isinstance(value, dict):  # OrderedDict, defaultdict: read back as a dict
        return _encode_dict(value, path)
    if isinstance(value, (list, tuple)):  # namedtuples too: read back as a list
        return [_encode_other(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise Unencodable(_unknown(value, path))


def _encode_dict(value: dict, path: str) -> dict:
    out = {}
    for key, item in value.items():
        if type(key) is not str:
            raise Unencodable(
                f"{path} has a {type(key).__name__} key {key!r:.40}; dict keys must be str "
                "(JSON object keys): convert the keys with str()"
            )
        if key == TAG:
            raise Unencodable(f"{path} uses the key {TAG!r}, which the codec reserves")
        out[key] = _encode_other(item, f"{path}[{key!r}]")
    return out


def _encode_array(array: np.ndarray, path: str) -> dict:
    # Structured and object dtypes have kinds "V" and "O": refused here too.
    if array.dtype.kind not in _ARRAY_KINDS:
        raise Unencodable(
            f"{path} is a numpy array of dtype {array.dtype}; only bool and numeric dtypes "
            "are kept: convert it (for example array.tolist() for strings)"
        )
    data = np.ascontiguousarray(array).tobytes()
    return {
        TAG: "ndarray",
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(data).decode("ascii"),
    }


def _special_float(value: float) -> dict:
    name = "nan" if value != value else ("inf" if value > 0 else "-inf")
    return {TAG: "float", "value": name}


def _decode_tagged(data: dict) -> Any:
    tag = data[TAG]
    if tag == "float" and set(data) == {TAG, "value"} and data["value"] in _FLOAT_NAMES:
        return _FLOAT_NAMES[data["value"]]
    if tag == "ndarray" and set(data) == {TAG, "dtype", "shape", "data"}:
        return _decode_array(data)
    if tag == "floats" and set(data) == {TAG, "data"}:
        return _decode_floats(data["data"])
    raise Unencodable(f"unknown or malformed tagged value {json.dumps(data)[:80]}")


def _decode_array(data: dict) -> np.ndarray:
    try:
        dtype = np.dtype(data["dtype"])
        shape = tuple(int(n) for n in data["shape"])
        raw = base64.b64decode(data["data"], validate=True)
    except (TypeError, ValueError) as err:
        raise Unencodable(f"malformed array: {err}") from err
    if dtype.kind not in _ARRAY_KINDS:
        raise Unencodable(f"refusing an array of dtype {dtype}: only bool and numeric")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise Unencodable(f"array data of {len(raw)} bytes does not fit {shape} {dtype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _decode_floats(text: Any) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError) as err:
        raise Unencodable(f"malformed floats: {err}") from err
    if len(raw) % 8:
        raise Unencodable(f"floats data of {len(raw)} bytes is not a whole number of doubles")
    doubles = array("d")
    doubles.frombytes(raw)
    if sys.byteorder == "big":
        doubles.byteswap()
    return doubles.tolist()


def _base_value(value: Any) -> Any:
    for base in (bool, int, str):
        if isinstance(value, base):
            return base(value)
    return value


def _unknown(value: Any, path: str) -> str:
    name = type(value).__name__
    module = type(value).__module__
    qualified = name if module == "builtins" else f"{module}.{name}"
    hint = _HINTS.get(
        name,
        "JSON values, numpy numbers or a numeric numpy array (for an object, a dict of its fields)",
    )
    return f"{path} is a {qualified}, which cannot be written; return {hint} instead"
