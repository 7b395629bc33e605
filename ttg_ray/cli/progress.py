"""A one-line terminal progress bar with rate and ETA (shown only on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with (done, total); redraws at most ten times a second."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self._start = time.monotonic()
        self._first_done: int | None = None
        self._last_draw = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._first_done is None:
            self._first_done = done  # resumed work does not count towards the rate
        if now - self._last_draw < 0.1 and done < total:
            return
        self._last_draw = now
        elapsed = max(now - self._start, 1e-9)
        rate = (done - self._first_done) / elapsed
        eta = (total - done) / rate if rate > 0 else float("inf")
        frac = done / total if total else 1.0
        filled = int(self.width * frac)
        bar = "#" * filled + "-" * (self.width - filled)
        eta_text = "--:--" if eta == float("inf") else _clock(eta)
        self.stream.write(
            f"\r[{bar}] {frac:6.1%} {done:,}/{total:,}  {rate:,.0f} params/s  ETA {eta_text} "
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
