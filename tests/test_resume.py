"""Opening a sweep's output: a sweep always accepts its own file, refuses another
sweep's or a file that is not a result file (untouched), and --retry-failed reruns
exactly the recorded failures."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from ttg_ray import workloads
from ttg_ray.core.identity import SweepIdentity
from ttg_ray.core.params import Grid, ParamList, ParamRange, as_space
from ttg_ray.core.results import ParamFailure
from ttg_ray.engine.resume import failure_from_record, is_table, open_output
from ttg_ray.engine.store import read_store
from ttg_ray.errors import OutputError, Unencodable


def sim(p, scale=1):
    return {"v": np.float32(p) * scale, "a": np.arange(3, dtype=np.int16)}


def other_sim(p):
    return p


def write_sweep(path, fn, space, failed=()):
    """A finished (or half-finished) run of ``fn`` over ``space``, as the runner writes."""
    checkpoint = open_output(path, SweepIdentity.of(fn, space), space)
    ok = [i for i in range(len(space)) if i not in failed]
    failures = [ParamFailure(i, space[i], "ValueError", "boom") for i in failed]
    checkpoint.store.write(ok, [space[i] for i in ok], [sim(i) for i in ok], failures)
    checkpoint.store.close()


def reopen(path, fn, space, **flags):
    resumed = {}
    checkpoint = open_output(
        path, SweepIdentity.of(fn, space), space, on_resumed=resumed.__setitem__, **flags
    )
    checkpoint.store.close()
    return checkpoint, resumed


@pytest.mark.parametrize(
    "params",
    [
        list(np.arange(40)),
        np.arange(40),
        np.linspace(0, 1, 7, dtype=np.float32),
        {"x": np.arange(3), "y": [np.float64(0.5), "s"]},
        [(1, 2), {"k": np.int8(3)}, np.eye(2), None, float("nan")],
    ],
    ids=["list-of-np-int64", "ndarray", "float32-array", "grid-of-numpy", "mixed"],
)
def test_a_sweep_always_accepts_its_own_file(tmp_path, params):
    path = tmp_path / "r.jsonl"
    space = as_space(params)
    write_sweep(path, sim, space, failed={1})
    checkpoint, resumed = reopen(path, sim, as_space(params), resume=True)
    assert len(checkpoint.done) == len(space)
    assert [f.index for f in checkpoint.failures] == [1]
    assert resumed[0]["a"].dtype == np.int16 and resumed[2]["v"] == np.float32(2)


@pytest.mark.parametrize(
    ("fn", "space", "what"),
    [
        (other_sim, ParamRange(20), "its function is"),
        (functools.partial(sim, scale=2), ParamRange(20), "its kwargs are"),
        (sim, ParamRange(30), "its space is"),
        (sim, Grid({"x": range(20)}), "its space is"),
    ],
)
def test_a_file_of_another_sweep_is_refused_in_one_line_and_untouched(tmp_path, fn, space, what):
    path = tmp_path / "r.jsonl"
    write_sweep(path, sim, ParamRange(20), failed={3})
    before = path.read_bytes()
    with pytest.raises(OutputError, match=what) as info:
        reopen(path, fn, space, resume=True)
    message = str(info.value)
    assert "\n" not in message and "start afresh" in message and "different sweep" in message
    with pytest.raises(OutputError, match=what):
        reopen(path, fn, space, retry_failed=True)
    assert path.read_bytes() == before


def test_a_lambda_is_told_apart_by_its_code(tmp_path):
    path = tmp_path / "r.jsonl"
    space = ParamRange(3)
    write_sweep(path, lambda p: p + 1, space)
    reopen(path, lambda p: p + 1, space, resume=True)  # the same code: accepted
    with pytest.raises(OutputError, match="its function is"):
        reopen(path, lambda p: p * 2, space, resume=True)


def test_a_file_that_is_not_a_result_file_is_never_written(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("one line without a newline")
    for flags in ({"resume": True}, {"retry_failed": True}, {}):
        with pytest.raises(OutputError):
            reopen(notes, sim, ParamRange(5), **flags)
    assert notes.read_text() == "one line without a newline"


def test_retry_failed_reruns_only_the_failures_and_keeps_one_record_per_index(tmp_path):
    path = tmp_path / "r.jsonl"
    space = ParamRange(10)
    write_sweep(path, sim, space, failed={2, 7})
    checkpoint, resumed = reopen(path, sim, space, retry_failed=True)
    assert checkpoint.done.gaps(10) == [(2, 3), (7, 8)] and not checkpoint.failures
    assert sorted(resumed) == [0, 1, 3, 4, 5, 6, 8, 9]
    assert sorted(r["index"] for r in read_store(path)) == sorted(resumed)


def test_retry_failed_needs_a_file(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        reopen(tmp_path / "none.jsonl", sim, ParamRange(3), retry_failed=True)


def test_an_unencodable_parameter_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(Unencodable, match="parameter"):
        reopen(tmp_path / "r.jsonl", sim, ParamList([Path("a"), Path("b")]))
    assert not (tmp_path / "r.jsonl").exists()


def test_the_header_records_the_function_reference_and_kwargs():
    fn = functools.partial(workloads.seed_placeholder, work_ms=0)
    identity = SweepIdentity.of(fn, ParamRange(5), "0.1.0")
    header = identity.to_header()
    assert header["function"] == "ttg_ray.workloads:seed_placeholder"
    assert header["kwargs"] == {"work_ms": 0} and header["ttg_ray"] == "0.1.0"
    assert header["space"] == {"kind": "range", "start": 0, "stop": 5, "step": 1}


def load_model(size=1):
    return size


def other_model():
    return 2


def test_the_header_records_the_setup_and_a_file_without_one_has_none():
    setup = functools.partial(load_model, size=3)
    header = SweepIdentity.of(sim, ParamRange(5), setup=setup).to_header()
    assert header["setup"] == {"function": f"{__name__}:load_model", "kwargs": {"size": 3}}
    assert "setup" not in SweepIdentity.of(sim, ParamRange(5)).to_header()
    assert SweepIdentity.from_header(header) == SweepIdentity.of(sim, ParamRange(5), setup=setup)


@pytest.mark.parametrize(
    "first, then, says",
    [
        (load_model, other_model, "its setup is {"),
        (load_model, functools.partial(load_model, size=2), '"kwargs": {"size": 2}'),
        (None, load_model, "its setup is none, this sweep's {"),
        (load_model, None, "this sweep's none"),
    ],
)
def test_a_file_of_the_same_function_with_another_setup_is_refused(tmp_path, first, then, says):
    path, space = tmp_path / "r.jsonl", ParamRange(4)
    checkpoint = open_output(path, SweepIdentity.of(sim, space, setup=first), space)
    checkpoint.store.write([0], [0], [0], [])
    checkpoint.store.close()
    before = path.read_bytes()
    with pytest.raises(OutputError, match="belongs to a different sweep") as err:
        open_output(path, SweepIdentity.of(sim, space, setup=then), space, resume=True)
    assert says in str(err.value)
    assert path.read_bytes() == before
    again = open_output(path, SweepIdentity.of(sim, space, setup=first), space, resume=True)
    again.store.close()
    assert len(again.done) == 1


def append_lines(path, *lines):
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def test_an_existing_file_needs_resume(tmp_path):
    path = tmp_path / "r.jsonl"
    write_sweep(path, sim, ParamRange(3))
    with pytest.raises(OutputError) as err:
        reopen(path, sim, ParamRange(3))
    assert str(err.value) == (
        f"{path} already holds results; pass --resume to continue that sweep, "
        "or choose another --output path"
    )


def test_an_empty_file_starts_afresh(tmp_path):
    path = tmp_path / "r.jsonl"
    path.touch()
    checkpoint, resumed = reopen(path, sim, ParamRange(3), resume=True)
    assert len(checkpoint.done) == 0 and resumed == {}
    assert path.read_text().startswith('{"ttg_ray":""')


@pytest.mark.parametrize(
    "header", ['{"ttg_ray":"0.0.1","space":{}}', '{"ttg_ray":"0.0.1","format":1,"space":{}}']
)
def test_a_file_of_another_version_is_refused_by_path_and_version(tmp_path, header):
    path = tmp_path / "r.jsonl"
    append_lines(path, header)
    with pytest.raises(OutputError) as err:
        reopen(path, sim, ParamRange(3), resume=True)
    assert str(err.value) == (
        f"{path} was written by another version of ttg_ray ('0.0.1'); "
        "to start afresh, remove it or choose another --output path"
    )


def test_a_one_byte_file_is_not_a_result_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("x")
    with pytest.raises(OutputError, match="is not a ttg_ray result file"):
        reopen(path, sim, ParamRange(3), resume=True)
    assert path.read_text() == "x"


def test_a_different_sweep_is_named_with_the_path(tmp_path):
    path = tmp_path / "r.jsonl"
    write_sweep(path, sim, ParamRange(3))
    with pytest.raises(OutputError) as err:
        reopen(path, other_sim, ParamRange(3), resume=True)
    message = str(err.value)
    assert message.startswith(f"{path} belongs to a different sweep: its function is ")
    assert message.endswith("; to start afresh, remove it or choose another --output path")


LONG = "x" * 70


@pytest.mark.parametrize(
    ("space", "record", "message"),
    [
        (
            ParamRange(3),
            '{"index":3,"param":3,"value":1}',
            "has index 3, outside this sweep's 3 parameters; it belongs to a different sweep: "
            "choose another --output or rerun that sweep",
        ),
        (
            ParamRange(3),
            '{"index":-1,"param":2,"value":1}',
            "has index -1, outside this sweep's 3 parameters; it belongs to a different "
            "sweep: choose another --output or rerun that sweep",
        ),
        (
            ParamRange(3),
            '{"index":1,"param":99,"value":1}',
            "has parameter 99 at index 1, but this sweep's parameter there is 1; it belongs "
            "to a different sweep: choose another --output path",
        ),
        (
            ParamList([LONG, LONG + "y"]),
            f'{{"index":1,"param":"{LONG}z","value":1}}',
            f"has parameter \"{LONG[:59]} at index 1, but this sweep's parameter there is "
            f'"{LONG[:59]}; it belongs to a different sweep: choose another --output path',
        ),
    ],
)
def test_a_record_that_does_not_fit_the_sweep_is_refused(tmp_path, space, record, message):
    path = tmp_path / "r.jsonl"
    write_sweep(path, other_sim, space)
    append_lines(path, record)
    with pytest.raises(OutputError) as err:
        reopen(path, other_sim, space, resume=True)
    assert str(err.value) == f"{path} {message}"


def test_the_first_record_of_an_index_wins_and_the_rest_are_read(tmp_path):
    path = tmp_path / "r.jsonl"
    checkpoint = open_output(path, SweepIdentity.of(other_sim, ParamRange(4)), ParamRange(4))
    checkpoint.store.write([0, 1], [0, 1], ["first", "b"], [])
    checkpoint.store.write([0, 2], [0, 2], ["second", "c"], [])
    checkpoint.store.close()
    checkpoint, resumed = reopen(path, other_sim, ParamRange(4), resume=True)
    assert resumed == {0: "first", 1: "b", 2: "c"} and checkpoint.done.gaps(4) == [(3, 4)]


def test_a_failure_record_reads_back_whole_or_with_defaults():
    error = {"type": "KeyError", "message": "k", "traceback": "tb", "attempts": 3}
    record = {"index": 4, "param": {"$ttg": "float", "value": "nan"}, "error": error}
    failure = failure_from_record({**record, "error": {**error, "retryable": False}})
    assert (failure.index, failure.type, failure.message, failure.traceback) == (
        4, "KeyError", "k", "tb"
    )  # fmt: skip
    assert (failure.attempts, failure.retryable) == (3, False) and np.isnan(failure.param)
    for odd in ({}, "boom"):
        assert failure_from_record({"index": 2, "param": 2, "error": odd}) == ParamFailure(
            2, 2, "Error", "", traceback="", attempts=1, retryable=True
        )


def test_a_path_ending_in_parquet_is_a_table():
    assert is_table("out.parquet") and is_table("/data/out.parquet/")
    assert not is_table("out.jsonl") and not is_table("out.parquet.jsonl")
    assert not is_table("/out.PARQUET") and not is_table("out.parquetX")


def test_a_table_output_gets_a_table_store(tmp_path):
    path = tmp_path / "r.parquet"
    checkpoint = open_output(path, SweepIdentity.of(other_sim, ParamRange(2)), ParamRange(2))
    checkpoint.store.close()
    assert type(checkpoint.store).__module__ == "ttg_ray.engine.table"
