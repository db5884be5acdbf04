"""Progress is drawn on a terminal only: a real pseudo-terminal as stderr shows it, a
pipe does not (and stdout stays data-only either way)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

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
    assert b" chunks" in terminal and b" files" in terminal  # the live status line

    piped = subprocess.run(args, capture_output=True, env=env, timeout=60, check=False)
    assert piped.returncode == 0
    assert piped.stderr == b"" and piped.stdout == b""


def _rendered_lines(raw: bytes) -> list[str]:
    """What a terminal shows, frame by frame: escape sequences gone, split at every
    carriage return and line feed."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace"))
    return [line for part in text.split("\n") for line in part.split("\r") if line.strip()]


@pytest.mark.parametrize("width", [60, 80, 160])
def test_progress_fits_any_width_without_cutting_a_number(tmp_path: Path, width: int) -> None:
    write_tree(
        tmp_path / "a-rather-long-folder-name" / "and-another-one-below-it",
        {f"file-number-{i:03}-with-a-long-name.md": prose(i, 40) for i in range(60)},
    )
    args = [*CLI, "ingest", str(tmp_path), "--index", str(tmp_path / "x.db"), "--report", "none"]
    env = cli_env()
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)  # the terminal's own size decides
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, width, 0, 0))
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=secondary, env=env)
        os.close(secondary)
        secondary = -1
        terminal = read_all(primary)
        proc.communicate(timeout=60)
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert proc.returncode == 0
    lines = _rendered_lines(terminal)
    counts = [line for line in lines if " files" in line]
    assert counts, lines
    assert max(len(line) for line in lines) <= width  # nothing wrapped or spilled over
    for line in counts:
        # "N/60 files": a whole count of a whole total, never cut
        assert re.search(r"(^|\s)\d+/60 files", line), line
    assert any(line.startswith("  ") and ".md" in line for line in lines)  # the current file
