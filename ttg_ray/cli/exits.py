"""The one path from an error to what the user sees and the exit code, for every
command-line tool: 0 ok, 1 some parameters failed, 2 bad usage or input, 3 backend
unreachable, 130 interrupted (see ttg_ray.errors)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ttg_ray.errors import TtgError


def run_main(body: Callable[[], int], on_error: Callable[[TtgError], None] | None = None) -> int:
    """``body()``'s exit code; a TtgError becomes one ``error: ...`` line on stderr and
    the exit code of its type. ``on_error`` sees the error first (a JSON log event)."""
    try:
        return body()
    except TtgError as err:
        if on_error is not None:
            on_error(err)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
