"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from funcpipe_rag.result import Err, ErrInfo, Ok

err_infos = st.builds(
    ErrInfo,
    code=st.sampled_from(["READ/IO", "EMBED/HTTP_500", "CHUNK/EMPTY"]),
    msg=st.just("boom"),
    stage=st.sampled_from(["read", "chunk", "embed"]),
    path=st.none() | st.sampled_from(["a.txt", "b/c.md"]),
)

results = st.one_of(st.integers().map(Ok), err_infos.map(Err))

# Error-heavy and error-light streams both, so breakers trip in some examples and not others.
result_lists = st.lists(st.booleans(), max_size=300).map(
    lambda flags: [Err(ErrInfo("E", "x")) if f else Ok(i) for i, f in enumerate(flags)]
)
