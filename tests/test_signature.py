"""The stat signature's parts: the racy-clean guard and the reader line-up."""

from __future__ import annotations

import os
import time
from pathlib import Path

from funcpipe_rag.readers import reader_lineup, readers_for
from funcpipe_rag.readers.text import TextReader
from funcpipe_rag.signature import RACY_MARGIN_NS, stat_key, trusted_key


def test_a_file_written_within_the_margin_before_the_read_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    st = os.stat(path)
    now = time.time_ns()
    assert trusted_key(st, now) is None
    assert trusted_key(st, max(st.st_mtime_ns, st.st_ctime_ns) + RACY_MARGIN_NS) == stat_key(st)
    parts = stat_key(st).split(":")
    assert parts == [str(st.st_ino), "1", str(st.st_mtime_ns), str(st.st_ctime_ns)]


def test_the_line_up_changes_with_a_reader_added_reordered_or_reconfigured() -> None:
    base = readers_for()
    assert reader_lineup(base) == reader_lineup(readers_for())
    assert reader_lineup(readers_for(encoding="cp1252")) != reader_lineup(base)
    assert reader_lineup((TextReader(), *base)) != reader_lineup(base)
    assert reader_lineup(tuple(reversed(base))) != reader_lineup(base)
