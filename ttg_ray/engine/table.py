"""Results as a table: the Parquet store (a directory of part files, each written
whole, so the directory is a checkpoint like the JSON Lines file), and read_results /
to_pandas, which give the same DataFrame from either format or from memory.

Columns: ``index``; the grid axes by name, else ``param``; the value (a dict value
spread into one column per key, else ``value``); ``error_type`` and ``error_message``.
A column whose cells are all bools, ints, floats or strs is typed; one of 1-D numeric
arrays of one dtype is a list column; anything else holds the codec's JSON text and
is decoded on reading. pyarrow and pandas are imported only here, and only when used.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttg_ray.core import codec
from ttg_ray.core.params import Space
from ttg_ray.core.results import ParamFailure
from ttg_ray.engine import store as jsonl
from ttg_ray.errors import OutputError, UsageError

HEADER_FILE = "_ttg_header.json"  # a leading _ : Parquet readers skip it
META_KEY = b"ttg_ray"
RESERVED = ("index", "param", "value", "error_type", "error_message")


def _pa() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet
    except ImportError as err:
        raise UsageError(
            "Parquet output and read_results need pyarrow and pandas: pip install 'ttg-ray[table]'"
        ) from err
    return pa


def grid_axes(header: dict) -> tuple[str, ...] | None:
    """The axis names of a grid sweep (their own columns), from a result header."""
    space = header.get("space") or {}
    if space.get("kind") != "grid":
        return None
    return tuple(axis["name"] for axis in space["axes"])


def build_table(
    rows: list[tuple[int, Any, Any]], failures: list[ParamFailure], axes: tuple[str, ...] | None
) -> Any:
    """One table of successes and failures (values as the codec reads them back)."""
    pa = _pa()
    indices = [r[0] for r in rows] + [f.index for f in failures]
    params = [r[1] for r in rows] + [f.param for f in failures]
    values = [r[2] for r in rows]
    nulls = [None] * len(failures)
    columns: dict[str, list[Any]] = {"index": indices}
    if axes is None:
        columns["param"] = params
    else:
        columns.update({name: [p[name] for p in params] for name in axes})
    spread = _spread_keys(values)
    value_columns: dict[str, str] = {}
    if spread is None:
        columns["value"] = values + nulls
    else:
        taken = set(RESERVED) | set(axes or ())
        for key in spread:
            name = f"value.{key}" if key in taken else key
            value_columns[name] = key
            columns[name] = [v.get(key) for v in values] + nulls
    columns["error_type"] = [None] * len(rows) + [f.type for f in failures]
    columns["error_message"] = [None] * len(rows) + [f.message for f in failures]
    arrays, json_columns = {}, []
    for name, cells in columns.items():
        array = _typed(pa, cells)
        if array is None:
            array = pa.array([None if c is None else codec.dumps(c) for c in cells], pa.string())
            json_columns.append(name)
        arrays[name] = array
    meta = {"axes": axes, "value_columns": value_columns if spread is not None else None}
    meta["json_columns"] = json_columns
    return pa.table(arrays).replace_schema_metadata({META_KEY: json.dumps(meta)})


def _spread_keys(values: list[Any]) -> list[str] | None:
    """The keys to spread dict values over, if every value is a dict."""
    if not values or not all(type(v) is dict for v in values):
        return None
    keys: dict[str, None] = {}
    for v in values:
        keys.update(dict.fromkeys(v))
    return list(keys)


def _typed(pa: Any, cells: list[Any]) -> Any:
    """A typed arrow array that reads back exactly these cells, or None (use JSON)."""
    kinds = set(map(type, cells)) - {type(None)}
    if not kinds:
        return pa.nulls(len(cells))
    if len(kinds) > 1:
        return None
    kind = kinds.pop()
    if kind is int:
        try:
            return pa.array(cells, pa.int64())
        except OverflowError:  # an int beyond int64: JSON keeps it exactly
            return None
    if kind in (bool, float, str):
        return pa.array(cells, {bool: pa.bool_(), float: pa.float64(), str: pa.string()}[kind])
    if kind is np.ndarray:
        dtypes = {(c.dtype, c.ndim) for c in cells if c is not None}
        if len(dtypes) == 1:
            dtype, ndim = dtypes.pop()
            if ndim == 1 and dtype.kind in "biuf" and dtype.isnative:
                return pa.array(cells, pa.list_(pa.from_numpy_dtype(dtype)))
    return None


class ParquetStore:
    """Writes results as Parquet part files in a directory, each after ``rows_per_part``
    rows or ``flush_s`` seconds, written to a hidden name and renamed, so a killed run
    leaves only whole parts (the rows it had not written yet run again on --resume)."""

    def __init__(
        self,
        path: str | os.PathLike,
        header: dict,
        *,
        resume: bool = False,
        rows_per_part: int = 262_144,
        flush_s: float = 10.0,
    ):
        _pa()
        self.path = Path(path)
        existed = self.path.exists()
        if existed and _parts(self.path) and not resume:
            raise OutputError(
                f"{self.path} already holds results; pass --resume to continue that sweep, "
                "or choose another --output path"
            )
        if existed:
            self.header = read_header(self.path)  # never write into a directory not ours
        else:
            self._create(header)
            self.header = header
        self._created = not existed
        self._axes = grid_axes(self.header)
        self._rows: list[tuple[int, Any, Any]] = []
        self._failures: list[ParamFailure] = []
        self._part = max((int(p.stem.split("-")[1]) for p in _parts(self.path)), default=-1) + 1
        self._written = 0
        self._rows_per_part, self._flush_s = rows_per_part, flush_s
        self._last_flush = time.monotonic()

    def _create(self, header: dict) -> None:
        try:
            self.path.mkdir(parents=True)
            (self.path / HEADER_FILE).write_text(json.dumps(header) + "\n")
        except OSError as err:
            raise OutputError(
                f"cannot write results to {self.path}: {err.strerror}; "
                "choose a writable --output path"
            ) from err

    def write(
        self,
        indices: Sequence[int],
        params: Sequence[Any],
        values: Sequence[Any],
        failures: list[ParamFailure],
    ) -> None:
        self._rows.extend(zip(indices, params, values))
        self._failures.extend(failures)
        pending = len(self._rows) + len(self._failures)
        late = time.monotonic() - self._last_flush >= self._flush_s
        if pending >= self._rows_per_part or (pending and late):
            self.flush()

    def flush(self) -> None:
        if not self._rows and not self._failures:
            return
        table = build_table(self._rows, self._failures, self._axes)
        name = f"part-{self._part:06d}.parquet"
        tmp = self.path / f".{name}.tmp"  # a leading . : Parquet readers skip it
        _pa().parquet.write_table(table, tmp)
        os.replace(tmp, self.path / name)
        self._part += 1
        self._written += table.num_rows
        self._rows, self._failures = [], []
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def discard_if_empty(self) -> None:
        self.close()
        if self._created and not self._written:
            shutil.rmtree(self.path, ignore_errors=True)


def _parts(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.parquet")) if path.is_dir() else []


def read_header(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        header = json.loads((path / HEADER_FILE).read_text())
    except (OSError, ValueError):
        header = None
    if not isinstance(header, dict) or jsonl.HEADER_KEY not in header:
        raise OutputError(
            f"{path} is not a ttg_ray Parquet result directory (no {HEADER_FILE}); it was "
            "left untouched: choose another --output path"
        )
    return header


def read_records(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of every part as result records (param and value encoded, as in a
    JSON Lines file), for --resume."""
    for part in _parts(Path(path)):
        table = _pa().parquet.read_table(part)
        meta = json.loads(table.schema.metadata[META_KEY])
        columns = {name: _cells(table, name, meta) for name in table.column_names}
        for k, index in enumerate(columns["index"]):
            yield _record(columns, meta, k, index)


def _cells(table: Any, name: str, meta: dict) -> list[Any]:
    column = table.column(name)
    if name in meta["json_columns"]:
        return [None if c is None else codec.loads(c) for c in column.to_pylist()]
    pa = _pa()
    if pa.types.is_list(column.type):
        dtype = column.type.value_type.to_pandas_dtype()
        return [None if c is None else np.asarray(c, dtype) for c in column.to_pylist()]
    return column.to_pylist()


def _record(columns: dict, meta: dict, k: int, index: int) -> dict:
    if meta["axes"] is None:
        param = columns["param"][k]
    else:
        param = {name: columns[name][k] for name in meta["axes"]}
    record: dict[str, Any] = {"index": index, "param": codec.encode(param)}
    if columns["error_type"][k] is not None:
        record["error"] = {"type": columns["error_type"][k], "message": columns["error_message"][k]}
    elif meta["value_columns"] is None:
        record["value"] = codec.encode(columns["value"][k])
    else:
        value = {key: columns[name][k] for name, key in meta["value_columns"].items()}
        record["value"] = codec.encode(value)
    return record


def drop_failures(path: str | os.PathLike) -> None:
    """Rewrite each part that holds failures without them (atomically, part by part)."""
    pa = _pa()
    for part in _parts(Path(path)):
        table = pa.parquet.read_table(part)
        errors = table.column("error_type")
        if errors.null_count == table.num_rows:
            continue
        kept = table.filter(errors.is_null())
        if kept.num_rows == 0:
            part.unlink()
            continue
        tmp = part.with_name(f".{part.name}.tmp")
        pa.parquet.write_table(kept.replace_schema_metadata(table.schema.metadata), tmp)
        os.replace(tmp, part)


class _Parquet:
    """The Parquet format, as ttg_ray.engine.resume uses it."""

    @staticmethod
    def exists(path: Any) -> bool:
        return Path(path).exists()

    read_header = staticmethod(read_header)
    read_records = staticmethod(read_records)
    drop_failures = staticmethod(drop_failures)

    @staticmethod
    def open_store(path: Any, header: dict, *, resume: bool) -> ParquetStore:
        return ParquetStore(path, header, resume=resume)


PARQUET = _Parquet


def read_results(path: str | os.PathLike) -> Any:
    """A result file (.jsonl) or directory (.parquet) as a pandas DataFrame, one row per
    parameter in index order, with the columns described in this module."""
    path = Path(path)
    if path.is_dir():
        read_header(path)
        frames = [_frame(_pa().parquet.read_table(p)) for p in _parts(path)]
    else:
        axes = grid_axes(jsonl.read_header(path))
        frames = [_frame(build_table(rows, fails, axes)) for rows, fails in _jsonl_batches(path)]
    return _concat(frames)


def to_pandas(values: list[Any], failures: list[ParamFailure], space: Space) -> Any:
    """The table of an in-memory sweep, as read_results gives it from a file."""
    axes = tuple(space.names) if hasattr(space, "names") else None
    failed = {f.index for f in failures}
    frames = []
    for lo in range(0, len(values), 262_144):
        hi = min(len(values), lo + 262_144)
        rows = [(i, space[i], codec.normal(values[i])) for i in range(lo, hi) if i not in failed]
        fails = [f for f in failures if lo <= f.index < hi]
        frames.append(_frame(build_table(rows, fails, axes)))
    return _concat(frames)


def _jsonl_batches(path: Path, size: int = 262_144) -> Iterable[tuple[list, list]]:
    from ttg_ray.engine.resume import failure_from_record

    rows: list[tuple[int, Any, Any]] = []
    failures: list[ParamFailure] = []
    for record in jsonl.read_store(path):
        if "error" in record:
            failures.append(failure_from_record(record))
        else:
            rows.append(
                (record["index"], codec.decode(record["param"]), codec.decode(record["value"]))
            )
        if len(rows) + len(failures) >= size:
            yield rows, failures
            rows, failures = [], []
    if rows or failures:
        yield rows, failures


def _frame(table: Any) -> Any:
    meta = json.loads(table.schema.metadata[META_KEY])
    import pandas as pd

    frame = table.to_pandas(integer_object_nulls=True)
    for name in meta["json_columns"]:
        cells = [None if c is None else codec.loads(c) for c in table.column(name).to_pylist()]
        frame[name] = pd.Series(cells, index=frame.index, dtype=object)
    return frame


def _concat(frames: list[Any]) -> Any:
    import pandas as pd

    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({name: [] for name in ("index", "param", "value")})
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame.sort_values("index", kind="stable").reset_index(drop=True)
