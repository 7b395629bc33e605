"""Logging set-up for the command-line tools: text or JSON lines, with run, worker and
node context. Library code only logs; each CLI calls configure_logging() once."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from ttg_ray.config import WorkerContext

_CONTEXT_FIELDS = ("run_id", "backend", "worker_id", "hostname", "pod_name", "node_name")


class _ContextFilter(logging.Filter):
    """Stamps every record with the process's context (worker, host, pod, node)."""

    def __init__(self, context: dict[str, Any]):
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("event", *_CONTEXT_FIELDS):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines: time, level, event, message and context."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        event = getattr(record, "event", None)
        head = f"{stamp} {record.levelname:<7} " + (f"[{event.upper()}] " if event else "")
        run_id = getattr(record, "run_id", None)
        tail = f" (run={run_id})" if run_id else ""
        text = head + record.getMessage() + tail
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(
    fmt: str = "text", level: str = "INFO", context: WorkerContext | None = None, **extra: Any
) -> None:
    """Send ttg_ray's logs to stderr in ``fmt`` ('text' or 'json') at ``level``."""
    context = context or WorkerContext.from_env()
    fields = {
        "worker_id": context.worker_id,
        "hostname": context.hostname,
        "pod_name": context.pod_name,
        "node_name": context.node_name,
        **extra,
    }
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter({k: v for k, v in fields.items() if v is not None}))
    logger = logging.getLogger("ttg_ray")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    # pika logs a traceback for every dropped connection; the adapter already says what
    # happened (and reconnects), in one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
