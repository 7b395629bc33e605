"""Versioned JSON task and result messages for the queue backends; never pickles.

A task is ``{"v": 1, "run_id", "chunk_id", "lo", "hi", "indices"?, "attempt", "space",
"fn", "kwargs", "setup"?, "setup_kwargs"?}`` (setup: a per-worker setup function, named
as fn is); a result is ``{"v": 1, "result": <ChunkResult.to_dict()>}``, its values a
tagged block of doubles when they are all floats (codec.encode_column).
Decoding is strict: anything else raises BadMessage with the reason, so a worker can
dead-letter it without running anything. Parameters, kwargs and values travel through
ttg_ray.core.codec, the same codec as the result file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ttg_ray.core import codec
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.execute import encodable_values, lost_chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.params import Space, space_from_spec, window_spec
from ttg_ray.core.results import ChunkResult
from ttg_ray.errors import BadMessage, InvalidFunction, InvalidSpace, Unencodable

VERSION = 1
# Below RabbitMQ 4's default max message size (16 MiB). A result over it comes back as
# a lost chunk and is split; a task over it is refused at the driver.
MAX_BODY_BYTES = 16 * 1024 * 1024
# What a worker accepts, so that no message can make it run (or hold) without bound:
# the largest chunk the driver ever sends, and generous sizes for the rest.
MAX_CHUNK_PARAMS = 100_000
MAX_KWARGS_BYTES = 1024 * 1024
MAX_ID_CHARS = 200
_REQUIRED = {"v", "run_id", "chunk_id", "lo", "hi", "attempt", "space", "fn", "kwargs"}
_OPTIONAL = {"indices", "timeout_s", "max_memory_mb", "setup", "setup_kwargs"}


@dataclass(frozen=True)
class TaskMessage:
    """One chunk to run: which indices, of which space, through which function, the
    run's limits (None: the worker's own) and its per-worker setup (None: none)."""

    chunk: Chunk
    space: Space
    fn: FunctionRef
    timeout_s: float | None = None
    max_memory_mb: float | None = None
    setup: FunctionRef | None = None

    def encode(self) -> bytes:
        return encode_task(
            self.chunk,
            self.space,
            self.fn,
            timeout_s=self.timeout_s,
            max_memory_mb=self.max_memory_mb,
            setup=self.setup,
        )


def encode_task(
    chunk: Chunk,
    space: Space,
    fn: FunctionRef,
    *,
    timeout_s: float | None = None,
    max_memory_mb: float | None = None,
    setup: FunctionRef | None = None,
) -> bytes:
    """The JSON body of a task message; a list space ships only the chunk's window."""
    body: dict[str, Any] = {
        "v": VERSION,
        "run_id": chunk.run_id,
        "chunk_id": chunk.chunk_id,
        "lo": chunk.lo,
        "hi": chunk.hi,
        "attempt": chunk.attempt,
        "space": window_spec(space, chunk.lo, chunk.hi),
        "fn": fn.name,
        "kwargs": fn.kwargs,
    }
    if chunk.indices is not None:
        body["indices"] = list(chunk.indices)
    if setup is not None:
        body["setup"] = setup.name
        if setup.kwargs:
            body["setup_kwargs"] = setup.kwargs
    for key, limit in (("timeout_s", timeout_s), ("max_memory_mb", max_memory_mb)):
        if limit is not None:
            body[key] = limit
    try:
        data = _dumps(body)
    except Unencodable as err:
        raise InvalidSpace(
            f"the parameters of chunk {chunk.chunk_id} cannot travel in a queue message: "
            f"{err}; use encodable parameters, or backend='ray'"
        ) from err
    if len(data) > MAX_BODY_BYTES:
        raise InvalidSpace(
            f"chunk {chunk.chunk_id} makes a message of {len(data):,} bytes, over the "
            f"{MAX_BODY_BYTES:,}-byte limit; use a smaller --chunk-size"
        )
    return data


def decode_task(body: bytes | str, *, max_chunk_params: int = MAX_CHUNK_PARAMS) -> TaskMessage:
    """Parse and validate a task message; BadMessage says exactly what is wrong. A chunk
    of more than ``max_chunk_params`` parameters, kwargs over MAX_KWARGS_BYTES or
    indices outside the space are refused before anything is built from them."""
    data = _loads(body)
    missing = _REQUIRED - data.keys()
    if missing:
        raise BadMessage(f"task message lacks {', '.join(sorted(missing))}")
    unknown = data.keys() - _REQUIRED - _OPTIONAL
    if unknown:
        raise BadMessage(f"task message has unknown fields {', '.join(sorted(unknown))}")
    _check_version(data)
    run_id = _text(data, "run_id")
    chunk_id = _text(data, "chunk_id")
    lo, hi, attempt = _int(data, "lo"), _int(data, "hi"), _int(data, "attempt")
    if lo < 0 or hi < lo:
        raise BadMessage(f"task message has an invalid range lo={lo} hi={hi}")
    if attempt < 1:
        raise BadMessage(f"task message has attempt {attempt}; it must be >= 1")
    if hi - lo > max_chunk_params:
        raise BadMessage(
            f"task message chunk {lo}..{hi} has {hi - lo:,} parameters, over this worker's "
            f"limit of {max_chunk_params:,} (--max-chunk-params)"
        )
    if len(run_id) > MAX_ID_CHARS or len(chunk_id) > MAX_ID_CHARS:
        raise BadMessage(f"task message run_id or chunk_id is over {MAX_ID_CHARS} characters")
    indices = _indices(data.get("indices"), lo, hi)
    _check_kwargs(data)
    timeout_s = _limit(data, "timeout_s")
    max_memory_mb = _limit(data, "max_memory_mb")
    try:
        fn = FunctionRef.parse(_text(data, "fn"), codec.decode(data["kwargs"]))
        setup = _setup(data)
        space = space_from_spec(codec.decode(data["space"]))
    except (InvalidFunction, InvalidSpace, Unencodable) as err:
        raise BadMessage(f"task message: {err}") from err
    try:
        size = len(space)
    except OverflowError:  # a range or grid too large for len(): not one the driver sends
        raise BadMessage("task message space is too large") from None
    if hi > size:
        raise BadMessage(f"task message range {lo}..{hi} exceeds its space of {size}")
    chunk = Chunk(run_id, chunk_id, lo, hi, indices, attempt)
    return TaskMessage(chunk, space, fn, timeout_s, max_memory_mb, setup)


def _check_kwargs(data: dict) -> None:
    """kwargs (and setup_kwargs, which need a setup) are objects, together within
    MAX_KWARGS_BYTES."""
    if "setup_kwargs" in data and "setup" not in data:
        raise BadMessage("task message has setup_kwargs but no setup")
    size = 0
    for key in ("kwargs", "setup_kwargs"):
        if key in data:
            if not isinstance(data[key], dict):
                raise BadMessage(f"task message field {key} must be an object")
            size += len(_dumps(data[key]))
    if size > MAX_KWARGS_BYTES:
        raise BadMessage(f"task message kwargs are over {MAX_KWARGS_BYTES:,} bytes")


def _setup(data: dict) -> FunctionRef | None:
    """The setup reference, checked as the function's is (InvalidFunction if malformed)."""
    if "setup" not in data:
        return None
    return FunctionRef.parse(_text(data, "setup"), codec.decode(data.get("setup_kwargs", {})))


def encode_result(result: ChunkResult) -> bytes:
    """The JSON body of a result; Unencodable if a value cannot be kept (encode_reply
    turns that into a failure of its parameter)."""
    data = result.to_dict()
    values = codec.encode_column(data.pop("values"))
    encoded = {**codec.encode(data), "values": values}
    return codec.to_json({"v": VERSION, "result": encoded}).encode()


def encode_reply(result: ChunkResult, message: TaskMessage) -> bytes:
    """The message a worker sends back for ``message``'s chunk. A value the codec cannot
    keep fails its parameter, not retryable (as on Ray with a result file); a result
    over the message limit goes back as lost, so the driver splits the chunk until each
    part fits."""
    try:
        body = encode_result(result)
    except Unencodable:
        values, failures = encodable_values(
            result.values, result.failures, message.chunk, message.space
        )
        body = encode_result(replace(result, values=values, failures=failures))
    if len(body) > MAX_BODY_BYTES:
        reason = (
            f"the result of chunk {result.chunk_id} is {len(body):,} bytes, over the "
            f"{MAX_BODY_BYTES:,}-byte message limit"
        )
        lost = lost_chunk(message.chunk, message.space, "ResultTooLarge", reason)
        body = encode_result(replace(lost, node=result.node, worker=result.worker))
    return body


def encode_beat(beat: dict[str, Any]) -> bytes:
    """A heartbeat of a running chunk, sent on the result channel: ``{"v": 1,
    "running": {"chunk_id", "worker", "index", "param", "chunk_s", "param_s"}}``."""
    return _dumps({"v": VERSION, "running": beat})


def decode_reply(body: bytes | str) -> ChunkResult | dict[str, Any]:
    """What a worker sent on the result channel: a result, or a heartbeat (a dict)."""
    data = _loads(body, limit=None)  # from our own workers, which cap what they send
    _check_version(data)
    if set(data) == {"v", "running"} and isinstance(data["running"], dict):
        return data["running"]
    return _result_of(data)


def decode_result(body: bytes | str) -> ChunkResult:
    data = _loads(body, limit=None)  # from our own workers, which cap what they send
    _check_version(data)
    return _result_of(data)


def _result_of(data: dict) -> ChunkResult:
    if set(data) != {"v", "result"} or not isinstance(data["result"], dict):
        raise BadMessage("result message must be {'v': 1, 'result': {...}}")
    try:
        return ChunkResult.from_dict(codec.decode(data["result"]))
    except (TypeError, KeyError, Unencodable) as err:
        raise BadMessage(f"result message has a malformed result: {err}") from err


def _dumps(data: dict) -> bytes:
    return codec.dumps(data).encode()


def _loads(body: bytes | str, limit: int | None = MAX_BODY_BYTES) -> dict:
    if limit is not None and len(body) > limit:
        raise BadMessage(f"message of {len(body)} bytes exceeds {limit}")
    try:
        data = json.loads(body)
    except (ValueError, TypeError) as err:
        raise BadMessage(f"message is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise BadMessage(f"message must be a JSON object, got {type(data).__name__}")
    return data


def _check_version(data: dict) -> None:
    if data.get("v") != VERSION:
        raise BadMessage(f"message version {data.get('v')!r} is not supported (want {VERSION})")


def _text(data: dict, key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise BadMessage(f"task message field {key} must be a non-empty string")
    return value


def _int(data: dict, key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadMessage(f"task message field {key} must be an integer, got {value!r:.40}")
    return value


def _limit(data: dict, key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BadMessage(f"task message field {key} must be a number > 0, got {value!r:.40}")
    return float(value)


def _indices(value: Any, lo: int, hi: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BadMessage("task message field indices must be a non-empty list")
    prev = lo - 1
    for i in value:
        if not isinstance(i, int) or isinstance(i, bool) or not prev < i < hi:
            raise BadMessage(f"task message indices must be increasing ints in [{lo}, {hi})")
        prev = i
    return tuple(value)
