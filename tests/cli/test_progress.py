"""Progress is drawn on a terminal only: a real pseudo-terminal as stderr shows it, a
pipe does not (and stdout stays data-only either way)."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from tests.cli.helpers import CLI, cli_env, prose, write_tree


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_progress_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "docs", {f"f{i}.md": prose(i, 30) for i in range(40)})
    args = [*CLI, "ingest", str(tree), "--index", str(tmp_path / "x.db"), "--report", "none"]
    env = cli_env(COLUMNS="200")
    env.pop("NO_COLOR", None)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=secondary, env=env)
        os.close(secondary)
        secondary = -1
        terminal = read_all(primary)
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert proc.returncode == 0
    assert out == b""
    assert b"chunks" in terminal and b"embedded" in terminal  # the live status line

    piped = subprocess.run(args, capture_output=True, env=env, timeout=60, check=False)
    assert piped.returncode == 0
    assert piped.stderr == b"" and piped.stdout == b""
