"""The plan's NDJSON line, written out by hand, is exactly ``json.dumps`` of its record."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.reconcile import PlanEntry

STATUSES = ("new", "changed", "unchanged", "deleted", "skipped", "failed")


@given(
    path=st.text(),
    status=st.sampled_from(STATUSES),
    chunks=st.integers(0, 10**9),
    to_embed=st.integers(0, 10**9),
    code=st.sampled_from(("", "SKIP/BINARY", "READ/DECODE", 'odd "code"\\\n')),
)
def test_the_json_line_is_json_dumps_of_the_record(
    path: str, status: str, chunks: int, to_embed: int, code: str
) -> None:
    entry = PlanEntry(path, status, chunks, to_embed, code)
    assert entry.to_json_line() == json.dumps(entry.to_jsonable(), ensure_ascii=False) + "\n"
