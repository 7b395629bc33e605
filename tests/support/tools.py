"""Find a command-line tool the way the test run's own Python would: next to
sys.executable first (a venv's bin/ is not on PATH under `venv/bin/python -m pytest`),
then on PATH."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    """The path of ``name`` beside the running interpreter, else on PATH, else None."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)
