from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.policies.breakers import circuit_breaker_rate_emit
from funcpipe_rag.policies.reports import fold_error_report, report_to_jsonable
from funcpipe_rag.result import Err, ErrInfo, Ok
from tests.fakes import Probe, tracked
from tests.strategies import results


def test_report_groups_errors_and_includes_breakinfo() -> None:
    items = [
        Ok(1),
        Err(ErrInfo("READ/IO", "x", "read", "a.txt")),
        Err(ErrInfo("READ/IO", "x", "read", "b.txt")),
        Err(ErrInfo("EMBED/HTTP_500", "x", "embed", "a.txt")),
    ]
    report = fold_error_report(circuit_breaker_rate_emit(iter(items), max_rate=0.5, min_samples=4))
    assert (report.n_ok, report.n_err) == (1, 3)
    assert report.by_code == {"READ/IO": 2, "EMBED/HTTP_500": 1}
    assert report.by_stage == {"read": 2, "embed": 1}
    assert report.by_path == {"a.txt": 2, "b.txt": 1}
    assert report.breaker is not None and report.breaker.code == "BREAK/ERR_RATE"
    doc = json.loads(json.dumps(report_to_jsonable(report)))
    assert doc["breaker"]["n_err"] == 3
    assert doc["samples"][0]["code"] == "READ/IO"


@given(st.lists(results))
def test_counts_add_up_and_serialise(items: list[object]) -> None:
    report = fold_error_report(iter(items))
    assert report.n_ok + report.n_err == len(items)
    assert sum(report.by_code.values()) == report.n_err
    json.dumps(report_to_jsonable(report))


def test_fold_closes_its_stream() -> None:
    probe = Probe()
    fold_error_report(tracked([Ok(1)], probe))
    assert probe.closed
