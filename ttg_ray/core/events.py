"""The lifecycle events the predecessor logged (starting, initialized, running, progress,
completed, failed), as log records with structured fields."""

from __future__ import annotations

import logging
from typing import Any


def lifecycle(logger: logging.Logger, event: str, message: str, **fields: Any) -> None:
    """Log one of the lifecycle events with structured fields."""
    level = logging.ERROR if event == "failed" else logging.INFO
    run_id = fields.pop("run_id", None)
    extra: dict[str, Any] = {"event": event, "fields": fields}
    if run_id is not None:
        extra["run_id"] = run_id
    logger.log(level, message, extra=extra)
