"""The JSON Lines result store: one line per parameter, flushed per chunk, read back by
``--resume``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ttg_ray.core.results import ParamFailure
from ttg_ray.errors import OutputError


def _line(index: int, param: Any, value: Any) -> str:
    # The common case (int parameter, finite number) skips json.dumps: 5x faster.
    if type(param) is int and (type(value) is int or (type(value) is float and value - value == 0)):
        return f'{{"index": {index}, "param": {param}, "value": {value!r}}}\n'
    return json.dumps({"index": index, "param": param, "value": value}, default=repr) + "\n"


def _failure_line(failure: ParamFailure) -> str:
    record = {"index": failure.index, "param": failure.param, "error": failure.to_error()}
    return json.dumps(record, default=repr) + "\n"


class ResultStore:
    """Appends one JSON line per parameter, flushed per chunk, so the file is the
    checkpoint that ``--resume`` reads back."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = False):
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
                _drop_torn_tail(self.path)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as err:
            raise OutputError(
                f"cannot write results to {self.path}: {err.strerror}; "
                "choose a writable --output path"
            ) from err
        self._created = not existed

    def write(self, successes: list[tuple[int, Any, Any]], failures: list[ParamFailure]) -> None:
        lines = [_line(i, p, v) for i, p, v in successes]
        lines += [_failure_line(f) for f in failures]
        self._file.write("".join(lines))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def discard_if_empty(self) -> None:
        """Remove a file this store created and never wrote to (leave no mess behind)."""
        self.close()
        if self._created and self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink()


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
        f.truncate(0)


def read_store(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a result file. A last line without its newline is torn (its writer
    was killed) and skipped, even if it parses: the store cuts it before appending. A
    corrupt line elsewhere is an OutputError naming its line."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
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
