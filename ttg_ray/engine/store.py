"""The JSON Lines result store: a header line naming the sweep, then one line per
parameter, flushed per chunk, read back by ``--resume``. Values go through
ttg_ray.core.codec, so the file is standard JSON and reads back with the same values."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ttg_ray.core import codec
from ttg_ray.core.results import ParamFailure
from ttg_ray.errors import OutputError

HEADER_KEY = "ttg_ray"


def _lines(indices: Sequence[int], params: Sequence[Any], values: Sequence[Any]) -> list[str]:
    """One JSON line per success. When every parameter is an int and every value a
    finite int or float (a sweep of numbers), the lines are formatted directly, with no
    per-line check or json.dumps: about 4x faster, and the driver writes a million."""
    if _ints(params) and _finite_numbers(values):
        return [
            f'{{"index":{i},"param":{p},"value":{v!r}}}\n'
            for i, p, v in zip(indices, params, values)
        ]
    return [
        codec.dumps({"index": i, "param": p, "value": v}) + "\n"
        for i, p, v in zip(indices, params, values)
    ]


def _ints(items: Sequence[Any]) -> bool:
    return isinstance(items, range) or set(map(type, items)) <= {int}


def _finite_numbers(values: Sequence[Any]) -> bool:
    # An inf or NaN makes the sum inf or NaN (so does an overflow: then the slow path).
    return set(map(type, values)) <= {int, float} and math.isfinite(sum(values))


def _failure_line(failure: ParamFailure) -> str:
    record = {"index": failure.index, "param": failure.param, "error": failure.to_error()}
    return codec.dumps(record) + "\n"


class ResultStore:
    """Appends one JSON line per parameter, flushed per chunk, so the file is the
    checkpoint that ``--resume`` reads back. A new file starts with ``header`` (what
    sweep it belongs to); resuming appends to a file whose header was checked."""

    def __init__(
        self, path: str | os.PathLike, header: dict | None = None, *, resume: bool = False
    ):
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a directory; give a file path such as out.jsonl")
        existed = self.path.exists() and self.path.stat().st_size > 0
        if existed and not resume:
            raise OutputError(
                f"{self.path} already holds results; pass --resume to continue that sweep, "
                "or choose another --output path"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if existed:
                read_header(self.path)  # never cut or append to a file that is not ours
                _drop_torn_tail(self.path)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            if not existed:
                self._file.write(codec.dumps({HEADER_KEY: "", **(header or {})}) + "\n")
                self._file.flush()
        except OSError as err:
            raise OutputError(
                f"cannot write results to {self.path}: {err.strerror}; "
                "choose a writable --output path"
            ) from err
        self._created = not existed
        self._written = False

    def write(
        self,
        indices: Sequence[int],
        params: Sequence[Any],
        values: Sequence[Any],
        failures: list[ParamFailure],
    ) -> None:
        """Append the successes (three columns of one length) and the failures."""
        lines = _lines(indices, params, values)
        lines += [_failure_line(f) for f in failures]
        self._file.write("".join(lines))
        self._file.flush()
        self._written = self._written or bool(lines)

    def close(self) -> None:
        self._file.close()

    def discard_if_empty(self) -> None:
        """Remove a file this store created and never wrote a result to."""
        self.close()
        if self._created and not self._written and self.path.exists():
            self.path.unlink()


def read_header(path: str | os.PathLike) -> dict:
    """The header of a ttg_ray result file; OutputError if ``path`` is not one."""
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    try:
        header = json.loads(first) if first.endswith(b"\n") else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or HEADER_KEY not in header:
        raise OutputError(
            f"{path} is not a ttg_ray result file (its first line is not a ttg_ray header); "
            "it was left untouched: choose another --output path"
        )
    return header


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a killed writer left without its newline."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                f.truncate(pos - step + nl + 1)
                return
            pos -= step


def read_store(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a result file, as written (values still encoded: see
    codec.decode). A last line without its newline is torn (its writer was killed) and
    skipped, even if it parses: the store cuts it before appending. A corrupt line
    elsewhere is an OutputError naming its line; a file that is not a ttg_ray result
    file is an OutputError."""
    path = Path(path)
    if not path.exists():
        return
    read_header(path)
    with open(path, encoding="utf-8") as f:
        next(f)
        for number, line in enumerate(f, 2):
            if not line.endswith("\n"):
                return  # torn last line
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("index"), int):
                    raise ValueError("no index")
            except ValueError:
                raise OutputError(
                    f"{path}:{number} is not a result line ({line[:60]!r}); the file is "
                    "damaged: fix or remove that line, then rerun with --resume"
                ) from None
            yield record


def drop_failures(path: str | os.PathLike) -> None:
    """Rewrite the file without its failure records (atomically), so their indices run
    again and the file keeps one final record per index."""
    path = Path(path)
    header = read_header(path)
    tmp = path.with_name(path.name + ".retry-tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(codec.dumps(header) + "\n")
        for record in read_store(path):
            if "error" not in record:
                out.write(codec.to_json(record) + "\n")
    os.replace(tmp, path)
