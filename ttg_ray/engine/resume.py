"""Opening a sweep's output: a new file, or an earlier file of the same sweep to resume
(--resume) or to rerun its failures in (--retry-failed). A file of another sweep, or
one that is not a ttg_ray result file at all, is refused and left untouched."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ttg_ray.core import codec
from ttg_ray.core.identity import FORMAT, SweepIdentity
from ttg_ray.core.ledger import IndexLedger
from ttg_ray.core.params import Space
from ttg_ray.core.results import ParamFailure
from ttg_ray.engine import store as jsonl
from ttg_ray.errors import OutputError


class Store(Protocol):
    def write(
        self,
        indices: Sequence[int],
        params: Sequence[Any],
        values: Sequence[Any],
        failures: list[ParamFailure],
    ) -> None: ...

    def close(self) -> None: ...

    def discard_if_empty(self) -> None: ...


@dataclass
class Checkpoint:
    """The store to write, and what an earlier run of this sweep already finished."""

    store: Store
    done: IndexLedger = field(default_factory=IndexLedger)
    failures: list[ParamFailure] = field(default_factory=list)


def is_table(path: str | os.PathLike) -> bool:
    return str(path).rstrip("/").endswith(".parquet")


def open_output(
    path: str | os.PathLike,
    identity: SweepIdentity,
    space: Space,
    *,
    resume: bool = False,
    retry_failed: bool = False,
    on_resumed: Callable[[int, Any], None] | None = None,
) -> Checkpoint:
    """The checkpoint of ``path`` for this sweep. With ``retry_failed`` the file's
    failure records are dropped first, so exactly those parameters run again."""
    fmt = _format(path)
    earlier = resume or retry_failed
    if retry_failed and not fmt.exists(path):
        raise OutputError(f"--retry-failed: {path} does not exist, so nothing failed there")
    if earlier and fmt.exists(path):
        check_identity(path, fmt.read_header(path), identity)
        if retry_failed:
            fmt.drop_failures(path)
        done, failures = _read_done(fmt.read_records(path), space, path, on_resumed)
        return Checkpoint(fmt.open_store(path, identity.to_header(), resume=True), done, failures)
    return Checkpoint(fmt.open_store(path, identity.to_header(), resume=False))


def check_identity(path: Any, header: dict, identity: SweepIdentity) -> None:
    """Refuse, in one line, a file written by a different sweep."""
    if header.get("format") != FORMAT or not {"space", "function", "kwargs"} <= header.keys():
        raise OutputError(
            f"{path} was written by another version of ttg_ray ({header.get('ttg_ray')!r}); "
            "to start afresh, remove it or choose another --output path"
        )
    difference = SweepIdentity.from_header(header).difference(identity)
    if difference is not None:
        raise OutputError(
            f"{path} belongs to a different sweep: {difference}; to start afresh, remove "
            "it or choose another --output path"
        )


def _read_done(
    records: Iterator[dict],
    space: Space,
    path: Any,
    on_resumed: Callable[[int, Any], None] | None,
) -> tuple[IndexLedger, list[ParamFailure]]:
    """The indices an earlier run finished (first record wins), and the failures."""
    done, failures = IndexLedger(), []
    for record in records:
        index = _check_record(record, space, path)
        if index in done:
            continue
        done.add_range(index, index + 1)
        if "error" in record:
            failures.append(failure_from_record(record))
        elif on_resumed is not None:
            on_resumed(index, codec.decode(record.get("value")))
    return done, failures


def failure_from_record(record: dict) -> ParamFailure:
    error = record["error"] if isinstance(record["error"], dict) else {}
    return ParamFailure(
        index=record["index"],
        param=codec.decode(record.get("param")),
        type=str(error.get("type", "Error")),
        message=str(error.get("message", "")),
        traceback=str(error.get("traceback", "")),
        attempts=int(error.get("attempts", 1)),
        retryable=bool(error.get("retryable", True)),
    )


def _check_record(record: dict, space: Space, path: Any) -> int:
    """A record must fit this space: its parameter, encoded, is the space's, encoded."""
    index = record.get("index")
    if not isinstance(index, int) or not 0 <= index < len(space):
        raise OutputError(
            f"{path} has index {index!r}, outside this sweep's {len(space):,} parameters; "
            "it belongs to a different sweep: choose another --output or rerun that sweep"
        )
    param, mine = record.get("param"), space[index]
    if not (type(param) is int and type(mine) is int and param == mine):  # the fast path
        expected = codec.encode(mine)
        if param != expected:
            raise OutputError(
                f"{path} has parameter {codec.dumps(param)[:60]} at index {index}, but this "
                f"sweep's parameter there is {codec.dumps(expected)[:60]}; it belongs to a "
                "different sweep: choose another --output path"
            )
    return index


class _Jsonl:
    """The JSON Lines format, as open_output uses it."""

    @staticmethod
    def exists(path: Any) -> bool:
        p = Path(path)
        return p.is_file() and p.stat().st_size > 0

    read_header = staticmethod(jsonl.read_header)
    read_records = staticmethod(jsonl.read_store)
    drop_failures = staticmethod(jsonl.drop_failures)

    @staticmethod
    def open_store(path: Any, header: dict, *, resume: bool) -> Store:
        return jsonl.ResultStore(path, header, resume=resume)


def _format(path: Any) -> Any:
    if is_table(path):
        from ttg_ray.engine import table  # pyarrow only when a table is asked for

        return table.PARQUET
    return _Jsonl
