"""End to end through a real process: ``funcpipe ingest`` on a tree built to hurt."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import UNDECODABLE

DEPTH = 1000
DEEP_FILE = "/".join(["d"] * DEPTH + ["deep_bottom.txt"])
TEXT = "The quick brown fox jumps over the lazy dog. " * 20 + "\n"


def _funcpipe() -> list[str]:
    return [sys.executable, "-m", "funcpipe_rag.cli"]


def _clean_env() -> dict[str, str]:
    """The caller's environment without FUNCPIPE_* settings, which would change the run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FUNCPIPE_")}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _remove_chain(base: Path) -> None:
    """Remove ``base/d/d/...`` bottom-up without recursion: Python 3.11's ``rmtree``
    (pytest's tmp_path cleanup) recurses once per level and would overflow."""
    levels = [base]
    while (levels[-1] / "d").is_dir():
        levels.append(levels[-1] / "d")
    for directory in reversed(levels[1:]):
        for entry in os.listdir(directory):
            path = directory / entry
            if path.is_dir() and not path.is_symlink():
                os.rmdir(path)  # the level below, emptied on the previous pass
            else:
                os.remove(path)
    if len(levels) > 1:
        os.rmdir(levels[1])


@pytest.fixture
def hostile_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    tree = tmp_path / "tree"
    tree.mkdir()
    # Plain text files.
    _write(tree / "a.md", ("# Title\n\n" + TEXT).encode())
    _write(tree / "b.txt", TEXT.encode())
    _write(tree / "notes" / "c.txt", TEXT.encode())
    # A symlink loop, a FIFO and a socket file.
    (tree / "notes" / "loop").symlink_to("..")
    os.mkfifo(tree / "fifo")
    monkeypatch.chdir(tree)  # bind a short relative name: AF_UNIX paths max ~108 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("sock")
    monkeypatch.chdir(tmp_path)
    # Binary, undecodable (its UTF-16 BOM lies), empty.
    _write(tree / "image.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    _write(tree / "bad_utf16.txt", UNDECODABLE)
    _write(tree / "empty.txt", b"")
    # A 1,000-deep chain with text at the bottom, made level by level.
    current = tree
    for _ in range(DEPTH):
        current = current / "d"
        current.mkdir()
    _write(current / "deep_bottom.txt", ("deep " + TEXT).encode())
    # Awkward names, each with real text.
    _write(tree / "with space.txt", ("spaced " + TEXT).encode())
    _write(tree / "new\nline.txt", ("newline " + TEXT).encode())
    raw = os.path.join(os.fsencode(tree), b"caf\xe9.txt")
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, ("latin-1 name " + TEXT).encode())
    finally:
        os.close(fd)
    try:
        yield tree
    finally:
        _remove_chain(tree)


@pytest.mark.slow
def test_ingest_survives_a_hostile_tree(tmp_path: Path, hostile_tree: Path) -> None:
    index = tmp_path / "x.db"
    report_file = tmp_path / "r.json"
    proc = subprocess.run(
        [
            *_funcpipe(),
            "ingest",
            str(hostile_tree),
            "--index",
            str(index),
            "--report-file",
            str(report_file),
            "--report",
            "none",
        ],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=60,
        env=_clean_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, (proc.returncode, proc.stderr)

    report = json.loads(report_file.read_text())
    assert report["schema"] == "funcpipe.run/1"
    assert report["status"] == "partial"
    assert report["resources"]["open_total"] == 0
    assert report["resources"]["leak"] is False

    skipped = report["skipped"]["by_code"]
    assert skipped["SKIP/SPECIAL"] == 2  # the FIFO and the socket
    assert skipped["SKIP/BINARY"] == 1
    assert skipped["SKIP/EMPTY"] == 1
    assert skipped["SKIP/SYMLINK_LOOP"] == 1
    errors = report["errors"]["by_code"]
    assert errors["READ/DECODE"] == 1
    assert set(errors) == {"READ/DECODE"}
    # Every regular text file but the invalid one is ingested: 3 plain + deep + 3 names.
    assert report["files"]["failed"] == 1
    assert report["files"]["ingested"] == 7

    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        (stored_rows,) = db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        docs = dict(db.execute("SELECT path, complete FROM documents").fetchall())
    assert report["chunks"]["stored"] == stored_rows > 0

    def doc_matching(fragment: str) -> str:
        found = [p for p in docs if fragment in p]
        assert len(found) == 1, (fragment, sorted(docs))
        return found[0]

    for fragment in [DEEP_FILE, "with space.txt", "new\nline.txt", "caf\\xe9.txt"]:
        assert docs[doc_matching(fragment)] == 1  # stored completely
    assert not any("bad_utf8.txt" in p for p in docs)


# Regression: --version once exited 2 ("Missing command") because the option was not
# eager, so Click rejected the missing subcommand before the version could print.
def test_version_flag_prints_the_version() -> None:
    proc = subprocess.run(
        [*_funcpipe(), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("funcpipe ")
