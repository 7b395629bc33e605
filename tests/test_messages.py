"""Task and result messages: round trips, and strict rejection of everything else."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import (
    MAX_KWARGS_BYTES,
    decode_result,
    decode_task,
    encode_reply,
    encode_result,
    encode_task,
)
from ttg_ray.core.params import Grid, ParamList, ParamRange
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.errors import BadMessage, Unencodable

FN = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 0})


def good() -> dict:
    chunk = Chunk("run1", "c000001", 10, 20, attempt=2)
    return json.loads(encode_task(chunk, ParamRange(100), FN))


def test_task_round_trip_keeps_everything():
    chunk = Chunk("run1", "c000007", 3, 9, indices=(3, 5, 8), attempt=3)
    space = Grid({"x": range(5), "y": ["a", "b"]})
    message = decode_task(encode_task(chunk, space, FN))
    assert message.chunk == chunk
    assert message.space == space
    assert message.fn == FN


def test_a_setup_travels_by_name_with_its_kwargs_and_is_absent_without_one():
    chunk = Chunk("run1", "c000007", 3, 9)
    setup = FunctionRef.parse("mymod.models:load", {"path": "/m.bin", "size": 3})
    body = encode_task(chunk, ParamRange(10), FN, setup=setup)
    data = json.loads(body)
    assert data["setup"] == "mymod.models:load"
    assert data["setup_kwargs"] == {"path": "/m.bin", "size": 3}
    message = decode_task(body)
    assert message.setup == setup and message.fn == FN
    assert decode_task(message.encode()) == message
    bare = FunctionRef.parse("mymod.models:load")
    assert "setup_kwargs" not in json.loads(encode_task(chunk, ParamRange(10), FN, setup=bare))
    assert decode_task(encode_task(chunk, ParamRange(10), FN)).setup is None


def test_task_message_has_the_documented_fields():
    assert set(good()) == {
        "v",
        "run_id",
        "chunk_id",
        "lo",
        "hi",
        "attempt",
        "space",
        "fn",
        "kwargs",
    }
    assert good()["v"] == 1 and good()["fn"] == "ttg_ray.workloads:seed_placeholder"


def test_list_space_ships_only_the_chunks_window():
    space = ParamList([f"p{i}" for i in range(10_000)])
    body = encode_task(Chunk("r", "c", 500, 510), space, FN)
    assert len(body) < 500
    message = decode_task(body)
    assert [message.space[i] for i in range(500, 510)] == [f"p{i}" for i in range(500, 510)]


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda m: m.update(v=2), "version"),
        (lambda m: m.pop("fn"), "lacks fn"),
        (lambda m: m.update(extra=1), "unknown fields extra"),
        (lambda m: m.update(lo="10"), "lo must be an integer"),
        (lambda m: m.update(lo=30), "invalid range"),
        (lambda m: m.update(hi=101), "exceeds its space"),
        (lambda m: m.update(attempt=0), "attempt 0"),
        (lambda m: m.update(indices=[12, 11]), "increasing"),
        (lambda m: m.update(indices=[25]), "increasing"),
        (lambda m: m.update(kwargs=[]), "kwargs must be an object"),
        (lambda m: m.update(fn="os.system"), "module:attr"),
        (lambda m: m.update(space={"kind": "pickle"}), "unknown space kind"),
        (lambda m: m.update(run_id=""), "run_id must be a non-empty string"),
        (lambda m: m.update(setup="os.getcwd"), "module:attr"),
        (lambda m: m.update(setup=""), "setup must be a non-empty string"),
        (lambda m: m.update(setup=["ttg_ray.workloads:cpu_bound"]), "setup must be a non-empty"),
        (lambda m: m.update(setup_kwargs={"a": 1}), "setup_kwargs but no setup"),
        (lambda m: m.update(setup="m:f", setup_kwargs=[1]), "setup_kwargs must be an object"),
        (
            lambda m: m.update(setup="m:f", setup_kwargs={"b": "x" * (MAX_KWARGS_BYTES - 8)}),
            "kwargs are over",
        ),
    ],
)
def test_wrong_schema_is_a_bad_message_with_the_reason(mutate, reason):
    message = good()
    mutate(message)
    with pytest.raises(BadMessage, match=reason):
        decode_task(json.dumps(message).encode())


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b"null", b"\x80\x04pickle", b'"text"'])
def test_non_objects_are_bad_messages(body):
    with pytest.raises(BadMessage):
        decode_task(body)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_errors(body):
    try:
        outcome = type(decode_task(body)).__name__
    except BadMessage:
        outcome = "BadMessage"
    assert outcome in ("TaskMessage", "BadMessage")


def test_result_round_trip_with_failures_and_floats():
    failure = ParamFailure(index=4, param=4, type="ValueError", message="no", traceback="tb")
    result = ChunkResult(
        run_id="r",
        chunk_id="c1",
        lo=0,
        hi=5,
        indices=None,
        attempt=1,
        values=[0.1, 1e-300, math.inf, 2**70, None],
        failures=[failure],
        compute_s=0.5,
        node="n",
        worker="w",
        lost="",
    )
    back = decode_result(encode_result(result))
    assert back == result


def test_a_chunk_of_floats_travels_as_one_block_and_reads_back_bit_for_bit():
    values = [0.1, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308]
    body = encode_result(ChunkResult("r", "c", 0, 7, None, 1, values=values))
    assert json.loads(body)["result"]["values"]["$ttg"] == "floats"
    back = decode_result(body).values
    assert struct.pack("<7d", *back) == struct.pack("<7d", *values)


def test_a_value_that_is_not_json_is_refused_never_changed():
    # No repr fallback: the worker turns such a value into a failure of its parameter
    # (tests/test_queue_backend.py), so no backend hands back a different value.
    for odd in ({1, 2}, object()):
        with pytest.raises(Unencodable):
            encode_result(ChunkResult("r", "c", 0, 1, None, 1, values=[odd]))


def test_encode_reply_fails_an_unencodable_value_once_not_retryable():
    message = decode_task(encode_task(Chunk("r", "c", 0, 2), ParamRange(2), FN))
    result = ChunkResult("r", "c", 0, 2, None, 1, values=[{1}, np.float32(0.5)])
    back = decode_result(encode_reply(result, message))
    assert back.values == [None, 0.5]
    [failure] = back.failures
    assert (failure.index, failure.type, failure.retryable) == (0, "Unencodable", False)
    assert "set" in failure.message and "sorted list" in failure.message


def test_numpy_parameters_and_values_travel_exactly():
    values = [np.arange(3, dtype=np.uint8), {"x": np.float32(0.1)}, math.nan]
    space = ParamList([np.int64(5), np.array([1.5, 2.5])])
    message = decode_task(encode_task(Chunk("r", "c", 0, 2), space, FN))
    assert message.space[0] == 5 and message.space[1].dtype == np.float64
    result = decode_result(encode_result(ChunkResult("r", "c", 0, 3, None, 1, values=values)))
    assert result.values[0].dtype == np.uint8 and result.values[0].tolist() == [0, 1, 2]
    assert result.values[1] == {"x": float(np.float32(0.1))} and math.isnan(result.values[2])


def test_bad_result_message():
    with pytest.raises(BadMessage):
        decode_result(b'{"v": 1, "result": {"run_id": "r"}}')
