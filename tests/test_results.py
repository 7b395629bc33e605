import json
import math

import numpy as np
import pytest

from ttg_ray.core import codec
from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.summary import Summary
from ttg_ray.engine.store import ResultStore, drop_failures, read_store
from ttg_ray.errors import OutputError

HEADER = '{"ttg_ray": "0.1.0"}\n'


def test_store_writes_the_documented_line_format(tmp_path):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    failure = ParamFailure(7, 7, "ValueError", "boom", "Traceback...", attempts=4)
    store.write([5, 6, 8], [5, {"a": 1}, 8], [62.07, [1, 2], math.inf], [failure])
    store.close()
    header, *lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert header == {"ttg_ray": ""}
    assert lines[0] == {"index": 5, "param": 5, "value": 62.07}
    assert lines[1] == {"index": 6, "param": {"a": 1}, "value": [1, 2]}
    assert lines[2]["value"] == {"$ttg": "float", "value": "inf"}  # standard JSON, no Infinity
    assert lines[3] == {
        "index": 7,
        "param": 7,
        "error": {
            "type": "ValueError",
            "message": "boom",
            "traceback": "Traceback...",
            "attempts": 4,
            "retryable": True,
        },
    }


@pytest.mark.parametrize(
    "values",
    [
        [1, 2.5, -0.1],  # the direct formatting: ints and finite floats
        [1.5, math.inf, 2],  # an inf among numbers
        [math.nan, 1.0, 2.0],
        [1e308, 1e308, 1.0],  # finite, but their sum overflows
        [True, 2, 3.0],  # a bool is not a number here: it stays a bool
        [1, None, 2.0],
    ],
)
def test_store_writes_standard_json_that_reads_back_the_same_values(tmp_path, values):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    store.write(range(10, 13), range(10, 13), values, [])
    store.close()
    lines = path.read_text().splitlines()[1:]
    for line in lines:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON: {c}"))
    back = [codec.decode(r["value"]) for r in read_store(path)]
    assert [(type(v), repr(v)) for v in back] == [(type(v), repr(v)) for v in values]
    assert [r["index"] for r in read_store(path)] == [r["param"] for r in read_store(path)]


def test_store_refuses_to_overwrite_without_resume(tmp_path):
    path = tmp_path / "out.jsonl"
    for content in ('{"index": 0, "param": 0, "value": 1}\n', "x"):
        path.write_text(content)
        with pytest.raises(OutputError) as err:
            ResultStore(path)
        assert str(err.value) == (
            f"{path} already holds results; pass --resume to continue that sweep, "
            "or choose another --output path"
        )
        assert path.read_text() == content


def test_an_empty_file_is_a_new_output(tmp_path):
    path = tmp_path / "out.jsonl"
    path.touch()
    ResultStore(path, {"space": 1}).close()
    assert path.read_text() == '{"ttg_ray":"","space":1}\n'


def test_resume_ignores_and_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(HEADER + '{"index": 0, "param": 0, "value": 1}\n{"index": 1, "par')
    assert [r["index"] for r in read_store(path)] == [0]
    store = ResultStore(path, resume=True)
    store.write([1], [1], [2], [])
    store.close()
    assert [r["index"] for r in read_store(path)] == [0, 1]
    assert path.read_text().count("\n") == 3


def test_a_corrupt_line_in_the_middle_is_an_error_with_its_line(tmp_path):
    path = tmp_path / "out.jsonl"
    long = '{"index": "not an int", "param": "' + "p" * 80 + '"}'
    for bad, shown in [
        ("not json", "'not json\\n'"),
        ('{"param": 1}', "'{\"param\": 1}\\n'"),
        (long, repr(long[:60])),
    ]:
        path.write_text(
            HEADER + '{"index": 0, "param": 0, "value": 1}\n' + bad + '\n{"index": 2}\n'
        )
        with pytest.raises(OutputError) as err:
            list(read_store(path))
        assert str(err.value) == (
            f"{path}:3 is not a result line ({shown}); the file is damaged: "
            "fix or remove that line, then rerun with --resume"
        )


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as err:
        ResultStore(blocker / "out.jsonl")
    assert str(err.value) == (
        f"cannot write results to {blocker / 'out.jsonl'}: File exists; "
        "choose a writable --output path"
    )


def test_missing_folders_are_made(tmp_path):
    ResultStore(tmp_path / "a" / "b" / "out.jsonl").close()
    assert (tmp_path / "a" / "b" / "out.jsonl").is_file()


def test_a_store_written_to_is_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    store.write([0], [0], [1], [])
    store.write([], [], [], [])
    store.discard_if_empty()
    assert [r["index"] for r in read_store(path)] == [0]


@pytest.mark.parametrize(
    ("lines", "torn"), [(1, 65535), (3000, 150_000)]
)  # the newline starts the last block; 100 KB of lines and a tail over many blocks
def test_a_long_torn_line_is_cut_at_its_start(tmp_path, lines, torn):
    path = tmp_path / "out.jsonl"
    whole = HEADER + "".join(f'{{"index": {i}, "param": {i}, "value": 1}}\n' for i in range(lines))
    path.write_text(whole + "x" * torn)
    ResultStore(path, resume=True).close()
    assert path.read_text() == whole


def test_empty_store_leaves_no_file(tmp_path):
    store = ResultStore(tmp_path / "sub" / "out.jsonl")
    store.discard_if_empty()
    assert not (tmp_path / "sub" / "out.jsonl").exists()


def test_chunk_result_round_trips_through_json():
    result = ChunkResult(
        "r", "c1", 0, 3, (0, 2), 1, [1.5, None], [ParamFailure(2, 2, "E", "m")], 0.1, "n", "w"
    )
    assert ChunkResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    # a result without failures may leave the key out
    assert ChunkResult.from_dict({"run_id": "r", "chunk_id": "c1", "lo": 0, "hi": 1}) == (
        ChunkResult("r", "c1", 0, 1)
    )


def test_summary_statistics_and_table():
    summary = Summary(backend="ray", run_id="r1", total=4)
    summary.add_values([1.0, 3.0, "text", None])
    summary.add_values([2])
    summary.processed = summary.succeeded = 4
    summary.duration_s = 2.0
    summary.chunks_per_node.update({"node-a": 2, "node-b": 1})
    data = summary.to_dict()
    assert (data["sum"], data["avg"], data["min"], data["max"]) == (6.0, 2.0, 1.0, 3.0)
    assert data["params_per_second"] == 2.0
    table = summary.format_table()
    assert "node-a" in table and "params/s" in table


def test_a_parseable_last_line_without_newline_is_still_torn(tmp_path):
    # A writer killed just before the newline: the line parses, but the store cuts it,
    # so it must not count as done.
    path = tmp_path / "out.jsonl"
    path.write_text(
        HEADER + '{"index": 0, "param": 0, "value": 1}\n{"index": 1, "param": 1, "value": 2}'
    )
    assert [r["index"] for r in read_store(path)] == [0]


def test_a_directory_is_not_an_output_file(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        ResultStore(tmp_path)


def test_a_file_that_is_not_a_result_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    message = (
        f"{path} is not a ttg_ray result file (its first line is not a ttg_ray header); "
        "it was left untouched: choose another --output path"
    )
    huge_header = '{"ttg_ray": "", "pad": "' + "x" * (1 << 20) + '"}\n'  # read at most 1 MiB
    for content in ["my notes, no newline at the end", HEADER.strip(), huge_header]:
        path.write_text(content)
        with pytest.raises(OutputError) as err:
            ResultStore(path, resume=True)
        assert str(err.value) == message
        with pytest.raises(OutputError):
            list(read_store(path))
        assert path.read_text() == content


def test_drop_failures_keeps_the_header_and_the_successes(tmp_path):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path, {"space": {"kind": "range"}})
    store.write([0], [0], [1.5], [ParamFailure(1, 1, "ValueError", "boom")])
    store.close()
    drop_failures(path)
    assert path.read_text() == (
        '{"ttg_ray":"","space":{"kind":"range"}}\n{"index":0,"param":0,"value":1.5}\n'
    )
    assert not (tmp_path / "out.jsonl.retry-tmp").exists()


def test_summary_leaves_numpy_arrays_out_and_stays_json():
    summary = Summary(backend="ray", run_id="r1", total=5)
    summary.add_values([np.array(1.5), np.array(2.5)])
    summary.add_values([np.arange(3), np.arange(3)])
    summary.add_values([1, 2.5])
    data = json.loads(summary.to_json())
    assert (data["sum"], data["min"], data["max"]) == (3.5, 1, 2.5)
