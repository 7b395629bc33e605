"""tests/support/tools.py: a tool installed in the venv is found without the venv on PATH."""

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.tools import find_tool


def test_a_tool_beside_the_interpreter_is_found_without_path(tmp_path):
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    tool = bin_dir / "ttg-fake-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    probe = textwrap.dedent(
        f"""
        import sys
        sys.executable = {str(python)!r}
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from support.tools import find_tool
        print(find_tool("ttg-fake-tool"))
        """
    )
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(tool), out.stderr


def test_a_tool_on_path_is_found_and_a_missing_one_is_none():
    assert find_tool("sh") in ("/bin/sh", "/usr/bin/sh")
    assert find_tool("ttg-no-such-tool-anywhere") is None
