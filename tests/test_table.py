"""The Parquet store and read_results: typed columns, exact values, part files as a
checkpoint, and the same DataFrame from JSON Lines, Parquet and memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ttg_ray.core.identity import SweepIdentity
from ttg_ray.core.params import Grid, ParamRange
from ttg_ray.core.results import ParamFailure
from ttg_ray.engine.resume import open_output
from ttg_ray.engine.store import ResultStore
from ttg_ray.engine.table import ParquetStore, read_records, read_results, to_pandas
from ttg_ray.errors import OutputError


def value(i: int):
    return {"loss": i / 7, "n": i, "curve": np.arange(i % 3, dtype=np.float32), "tag": f"t{i}"}


def write(store, space, n, failed=()):
    ok = [i for i in range(n) if i not in failed]
    failures = [ParamFailure(i, space[i], "ValueError", f"bad {i}") for i in failed]
    store.write(ok, [space[i] for i in ok], [value(i) for i in ok], failures)
    store.close()


def test_parquet_and_jsonl_read_back_as_the_same_typed_frame(tmp_path):
    space = Grid({"x": range(4), "y": ["a", "b"]})
    header = SweepIdentity.of(value, space).to_header()
    write(ParquetStore(tmp_path / "r.parquet", header), space, 8, failed={5})
    write(ResultStore(tmp_path / "r.jsonl", header), space, 8, failed={5})
    table, lines = read_results(tmp_path / "r.parquet"), read_results(tmp_path / "r.jsonl")
    assert table.columns.tolist() == [
        "index", "x", "y", "loss", "n", "curve", "tag", "error_type", "error_message"
    ]  # fmt: skip
    assert table.dtypes.tolist() == lines.dtypes.tolist()
    assert table["index"].tolist() == list(range(8)) and table.loc[5, "error_message"] == "bad 5"
    assert table.loc[4, "curve"].dtype == np.float32 and table.loc[2, "loss"] == 2 / 7
    for column in table.columns:
        for a, b in zip(table[column], lines[column]):
            assert type(a) is type(b)
            assert (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or np.array_equal(
                a, b
            )


def test_mixed_and_nested_values_fall_back_to_exact_json_cells(tmp_path):
    space = ParamRange(4)
    header = SweepIdentity.of(value, space).to_header()
    cells = [1, 2.5, np.eye(2, dtype=np.int8), {"deep": [math.inf, None]}]
    store = ParquetStore(tmp_path / "r.parquet", header)
    store.write(range(len(cells)), range(len(cells)), cells, [])
    store.close()
    frame = read_results(tmp_path / "r.parquet")
    back = frame["value"].tolist()
    assert back[:2] == [1, 2.5] and type(back[0]) is int
    assert back[2].dtype == np.int8 and back[2].shape == (2, 2)
    assert back[3] == {"deep": [math.inf, None]}


def test_each_part_is_written_whole_and_resume_reads_them(tmp_path):
    space = ParamRange(10)
    header = SweepIdentity.of(value, space).to_header()
    store = ParquetStore(tmp_path / "r.parquet", header, rows_per_part=3)
    write(store, space, 10, failed={4})
    parts = sorted(p.name for p in (tmp_path / "r.parquet").iterdir())
    assert parts[0] == "_ttg_header.json" and len(parts) == 2  # one write, one part
    records = sorted(read_records(tmp_path / "r.parquet"), key=lambda r: r["index"])
    assert [r["index"] for r in records] == list(range(10)) and "error" in records[4]
    checkpoint = open_output(
        tmp_path / "r.parquet", SweepIdentity.of(value, space), space, retry_failed=True
    )
    assert checkpoint.done.gaps(10) == [(4, 5)]
    checkpoint.store.write([4], [4], [value(4)], [])
    checkpoint.store.close()
    frame = read_results(tmp_path / "r.parquet")
    assert frame["index"].tolist() == list(range(10)) and frame["error_type"].isna().all()


def test_a_directory_that_is_not_a_result_directory_is_refused(tmp_path):
    (tmp_path / "r.parquet").mkdir()
    (tmp_path / "r.parquet" / "data.parquet").write_text("theirs")
    with pytest.raises(OutputError, match="not a ttg_ray Parquet"):
        open_output(tmp_path / "r.parquet", SweepIdentity.of(value, ParamRange(2)), ParamRange(2))
    assert (tmp_path / "r.parquet" / "data.parquet").read_text() == "theirs"


def test_to_pandas_from_memory_matches_the_file(tmp_path):
    space = ParamRange(6)
    header = SweepIdentity.of(value, space).to_header()
    write(ParquetStore(tmp_path / "r.parquet", header), space, 6, failed={2})
    values = [None if i == 2 else value(i) for i in range(6)]
    memory = to_pandas(values, [ParamFailure(2, 2, "ValueError", "bad 2")], space)
    table = read_results(tmp_path / "r.parquet")
    assert memory.columns.tolist() == table.columns.tolist()
    assert memory["tag"].tolist()[3:] == table["tag"].tolist()[3:] == ["t3", "t4", "t5"]
