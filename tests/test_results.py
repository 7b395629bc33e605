import json
import math

import pytest

from ttg_ray.core.results import ChunkResult, ParamFailure
from ttg_ray.core.summary import Summary
from ttg_ray.engine.store import ResultStore, read_store
from ttg_ray.errors import OutputError


def test_store_writes_the_documented_line_format(tmp_path):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    failure = ParamFailure(7, 7, "ValueError", "boom", "Traceback...", attempts=4)
    store.write([(5, 5, 62.07), (6, {"a": 1}, [1, 2]), (8, 8, math.inf)], [failure])
    store.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"index": 5, "param": 5, "value": 62.07}
    assert lines[1] == {"index": 6, "param": {"a": 1}, "value": [1, 2]}
    assert lines[2]["value"] == math.inf
    assert lines[3] == {
        "index": 7,
        "param": 7,
        "error": {
            "type": "ValueError",
            "message": "boom",
            "traceback": "Traceback...",
            "attempts": 4,
        },
    }


def test_store_refuses_to_overwrite_without_resume(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"index": 0, "param": 0, "value": 1}\n')
    with pytest.raises(OutputError, match="--resume"):
        ResultStore(path)


def test_resume_ignores_and_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"index": 0, "param": 0, "value": 1}\n{"index": 1, "par')
    assert [r["index"] for r in read_store(path)] == [0]
    store = ResultStore(path, resume=True)
    store.write([(1, 1, 2)], [])
    store.close()
    assert [r["index"] for r in read_store(path)] == [0, 1]
    assert path.read_text().count("\n") == 2


def test_a_corrupt_line_in_the_middle_is_an_error_with_its_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"index": 0, "param": 0, "value": 1}\nnot json\n{"index": 2}\n')
    with pytest.raises(OutputError, match=r"out.jsonl:2"):
        list(read_store(path))


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write results"):
        ResultStore(blocker / "out.jsonl")


def test_empty_store_leaves_no_file(tmp_path):
    store = ResultStore(tmp_path / "sub" / "out.jsonl")
    store.discard_if_empty()
    assert not (tmp_path / "sub" / "out.jsonl").exists()


def test_chunk_result_round_trips_through_json():
    result = ChunkResult(
        "r", "c1", 0, 3, (0, 2), 1, [1.5, None], [ParamFailure(2, 2, "E", "m")], 0.1, "n", "w"
    )
    assert ChunkResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


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
    path.write_text('{"index": 0, "param": 0, "value": 1}\n{"index": 1, "param": 1, "value": 2}')
    assert [r["index"] for r in read_store(path)] == [0]


def test_a_directory_is_not_an_output_file(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        ResultStore(tmp_path)


@pytest.mark.parametrize(
    "param, value",
    [
        (1, 2), (1, -2.5), (1, 1e300), (1, float("nan")), (1, float("inf")), (1, -math.inf),
        (1, True), (True, 1), ("a", 1), (1, None), (1, "x"), (1.0, 1), (1, {3}),
        ({"g": 1}, 0.25),
    ],
)  # fmt: skip
def test_every_line_is_what_json_dumps_writes(tmp_path, param, value):
    # The fast path for int parameters and finite numbers must write the same bytes.
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    store.write([(4, param, value)], [ParamFailure(5, {7}, "E", "m")])
    store.close()
    expected = json.dumps({"index": 4, "param": param, "value": value}, default=repr)
    lines = path.read_text().split("\n")
    assert lines[0] == expected and lines[2] == ""
    assert json.loads(lines[1])["param"] == "{7}"  # what JSON cannot hold is its repr


def test_an_empty_existing_file_is_not_a_previous_sweep(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("")
    store = ResultStore(path)  # no --resume needed
    store.discard_if_empty()
    assert not path.exists()


def test_a_resumed_or_written_file_is_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    store = ResultStore(path)
    store.write([(0, 0, 1)], [])
    store.discard_if_empty()
    assert path.read_text() == '{"index": 0, "param": 0, "value": 1}\n'
    ResultStore(path, resume=True).discard_if_empty()
    assert path.exists()


def test_store_error_messages_say_what_to_do(tmp_path):
    with pytest.raises(OutputError) as err:
        ResultStore(tmp_path)
    assert str(err.value) == f"{tmp_path} is a directory; give a file path such as out.jsonl"
    path = tmp_path / "out.jsonl"
    path.write_text("{}\n")
    with pytest.raises(OutputError) as err:
        ResultStore(path)
    assert str(err.value) == (
        f"{path} already holds results; pass --resume to continue that sweep, "
        "or choose another --output path"
    )
    blocked = tmp_path / "file" / "out.jsonl"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as err:
        ResultStore(blocked)
    assert str(err.value).startswith(f"cannot write results to {blocked}: ")
    assert str(err.value).endswith("; choose a writable --output path")
    assert isinstance(err.value.__cause__, OSError)


def test_a_torn_tail_longer_than_a_block_is_cut_at_the_last_newline(tmp_path):
    path = tmp_path / "out.jsonl"
    head = '{"index": 0, "param": 0, "value": 1}\n'
    path.write_text(head + "x" * 150_000)
    ResultStore(path, resume=True).close()
    assert path.read_text() == head
    path.write_text("y" * 70_000)  # no newline at all: nothing is kept
    ResultStore(path, resume=True).close()
    assert path.read_text() == ""
    path.write_text(head + head)  # nothing torn: nothing cut
    ResultStore(path, resume=True).close()
    assert path.read_text() == head + head


def test_read_store_wants_objects_with_an_integer_index(tmp_path):
    path = tmp_path / "out.jsonl"
    assert list(read_store(path)) == []  # no file yet: nothing done
    good = '{"index": 0, "param": 0, "value": 1}\n'
    for bad in ("[1, 2]\n", '{"index": "1"}\n', '{"param": 1}\n', "nonsense " * 10 + "\n"):
        path.write_text(good + bad + good)
        with pytest.raises(OutputError) as err:
            list(read_store(path))
        assert str(err.value) == (
            f"{path}:2 is not a result line ({bad[:60]!r}); the file is damaged: fix or "
            "remove that line, then rerun with --resume"
        )
    path.write_text(good + good.replace("0", "1"))
    assert list(read_store(path)) == [
        {"index": 0, "param": 0, "value": 1},
        {"index": 1, "param": 1, "value": 1},
    ]


def test_chunk_results_and_failures_to_and_from_dicts():
    failure = ParamFailure(2, "p", "E", "m", "tb", 3)
    assert failure.to_error() == {"type": "E", "message": "m", "traceback": "tb", "attempts": 3}
    assert ParamFailure(1, 1, "E", "m").to_error() == {
        "type": "E", "message": "m", "traceback": "", "attempts": 1,
    }  # fmt: skip
    result = ChunkResult("r", "c", 4, 7, None, 2, [1, 2, 3], [failure], 0.5, "n", "w", "gone")
    data = result.to_dict()
    assert data["indices"] is None and data["failures"][0]["attempts"] == 3
    assert data["lost"] == "gone" and data["compute_s"] == 0.5
    assert ChunkResult.from_dict(data) == result
    assert list(result.iter_indices()) == [4, 5, 6] and result.size == 3
    sparse = ChunkResult("r", "c", 4, 9, (4, 8), 1, [1, 2])
    assert sparse.to_dict()["indices"] == [4, 8] and list(sparse.iter_indices()) == [4, 8]
    minimal = {"run_id": "r", "chunk_id": "c", "lo": 0, "hi": 1, "attempt": 1, "values": [1]}
    rebuilt = ChunkResult.from_dict({**minimal, "indices": None})
    assert rebuilt.failures == [] and rebuilt.indices is None
    assert ChunkResult.from_dict(minimal).indices is None


def test_a_one_byte_file_is_a_previous_sweep_and_deep_paths_are_made(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("\n")
    with pytest.raises(OutputError, match="already holds results"):
        ResultStore(path)
    deep = tmp_path / "a" / "b" / "out.jsonl"
    store = ResultStore(deep)
    store.write([(0, "é", "ü")], [])
    store.close()
    assert deep.read_bytes() == b'{"index": 0, "param": "\\u00e9", "value": "\\u00fc"}\n'


def test_a_newline_on_a_block_boundary_is_found(tmp_path):
    # The tail is searched backwards in 64 KiB blocks: the last newline may be the
    # first byte of a block, or alone in the final one.
    path = tmp_path / "out.jsonl"
    head = '{"index": 0, "param": 0, "value": 1}\n'
    path.write_text(head + "x" * 65535)
    ResultStore(path, resume=True).close()
    assert path.read_text() == head
    path.write_text("\n" + "x" * 65536)
    ResultStore(path, resume=True).close()
    assert path.read_text() == "\n"
