"""Progress bars: drawn on a terminal, never into a pipe or a file, and not with quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

SCRIPT = """
import time
from hotpose_client.progress import StageBars, bar
with bar(5, "working", unit="step", quiet={quiet}) as b:
    for _ in range(5):
        b.update(1)
stages = StageBars(quiet={quiet})
for f in (0.0, 0.5, 1.0):
    stages("upload", f)
print("done")
"""


def run_in_terminal(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300.0) -> str:
    """stdout and stderr of a command run with a pseudo-terminal as both (what a user's shell gives)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows, 120 columns
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                raise TimeoutError(f"{argv} wrote nothing for {timeout} s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            out += chunk
    finally:
        proc.wait(timeout=timeout)
        os.close(leader)
    return out.decode(errors="replace")


def run_piped(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def test_a_bar_on_a_terminal_none_in_a_pipe_none_when_quiet() -> None:
    shown = run_in_terminal([sys.executable, "-c", SCRIPT.format(quiet=False)])
    assert "working" in shown and "5/5" in shown and "upload" in shown and "100.0%" in shown
    piped = run_piped([sys.executable, "-c", SCRIPT.format(quiet=False)])
    assert piped.stdout == "done\n" and piped.stderr == ""
    quiet = run_in_terminal([sys.executable, "-c", SCRIPT.format(quiet=True)])
    assert "working" not in quiet and "upload" not in quiet and "done" in quiet


def test_a_long_command_shows_its_bar_on_a_terminal_and_keeps_its_output_clean(tmp_path: Path) -> None:
    hotpose = Path(sys.executable).with_name("hotpose")
    if not hotpose.is_file():
        pytest.skip("the hotpose command is not installed next to this interpreter")
    argv = [str(hotpose), "bench", "lifter", "--names", "mlp", "--rounds", "2", "--threads", "1"]
    shown = run_in_terminal(argv)
    assert "bench lifter" in shown and "2/2" in shown and "| mlp |" in shown
    piped = run_piped(argv)
    assert piped.returncode == 0 and "| mlp |" in piped.stdout and "bench lifter" not in piped.stderr
    quiet = run_in_terminal([*argv, "--quiet"])
    assert "2/2" not in quiet and "| mlp |" in quiet
