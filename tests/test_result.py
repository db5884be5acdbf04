from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.result import Err, ErrInfo, Nothing, Ok, Some, make_errinfo


@given(st.integers())
def test_ok_map_bind_laws(x: int) -> None:
    assert Ok(x).map(lambda v: v + 1) == Ok(x + 1)
    assert Ok(x).bind(lambda v: Ok(v * 2)) == Ok(x * 2)
    assert Ok(x).bind(lambda v: Err("no")) == Err("no")
    assert Ok(x).map_err(str) == Ok(x)
    assert Ok(x).unwrap_or(0) == x


@given(st.text())
def test_err_passes_through(e: str) -> None:
    err = Err(e)
    assert err.map(lambda v: v + 1) == err
    assert err.bind(lambda v: Ok(v)) == err
    assert err.map_err(len) == Err(len(e))
    assert err.unwrap_or(7) == 7
    with pytest.raises(ValueError, match="unwrap"):
        err.unwrap()


def test_option() -> None:
    assert Some(2).map(lambda v: v + 1) == Some(3)
    assert Nothing.map(lambda v: v + 1) is Nothing
    assert Nothing.unwrap_or(5) == 5
    assert repr(Nothing) == "Nothing"


def test_make_errinfo_renders_cause_and_path_as_text() -> None:
    info = make_errinfo("READ/IO", "cannot read", stage="read", path=1, exc=OSError("denied"), n=3)
    assert info == ErrInfo("READ/IO", "cannot read", "read", "1", "OSError: denied", {"n": 3})
    assert info.to_jsonable()["cause"] == "OSError: denied"
