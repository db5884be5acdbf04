"""The public surface of funcpipe_rag, named once.

Everything a caller should import is re-exported here; ``__all__`` is sorted and a
test checks that it agrees with the re-exports.
"""

from __future__ import annotations

from ..config import RunSettings as RunSettings
from ..config import resolve_settings as resolve_settings
from ..errors import CleanupError as CleanupError
from ..errors import ConfigError as ConfigError
from ..errors import FuncpipeError as FuncpipeError
from ..errors import IndexLockedError as IndexLockedError
from ..errors import IndexMismatchError as IndexMismatchError
from ..errors import ResourceClosedError as ResourceClosedError
from ..evaluation import evaluate as evaluate
from ..evaluation import load_queries as load_queries
from ..ingest import IngestRequest as IngestRequest
from ..ingest import ingest as ingest
from ..policies.breakers import BreakInfo as BreakInfo
from ..policies.breakers import circuit_breaker_count_emit as circuit_breaker_count_emit
from ..policies.breakers import circuit_breaker_count_truncate as circuit_breaker_count_truncate
from ..policies.breakers import circuit_breaker_pred_emit as circuit_breaker_pred_emit
from ..policies.breakers import circuit_breaker_pred_truncate as circuit_breaker_pred_truncate
from ..policies.breakers import circuit_breaker_rate_emit as circuit_breaker_rate_emit
from ..policies.breakers import circuit_breaker_rate_truncate as circuit_breaker_rate_truncate
from ..policies.breakers import is_break as is_break
from ..policies.breakers import short_circuit_on_err_emit as short_circuit_on_err_emit
from ..policies.breakers import short_circuit_on_err_truncate as short_circuit_on_err_truncate
from ..policies.ledger import LedgerSnapshot as LedgerSnapshot
from ..policies.ledger import OsSnapshot as OsSnapshot
from ..policies.ledger import ResourceLedger as ResourceLedger
from ..policies.ledger import current_ledger as current_ledger
from ..policies.ledger import os_snapshot as os_snapshot
from ..policies.ledger import use_ledger as use_ledger
from ..policies.reports import ErrReport as ErrReport
from ..policies.reports import ErrReportBuilder as ErrReportBuilder
from ..policies.reports import fold_error_report as fold_error_report
from ..policies.reports import report_to_jsonable as report_to_jsonable
from ..policies.resources import CleanupStack as CleanupStack
from ..policies.resources import auto_close as auto_close
from ..policies.resources import managed_stream as managed_stream
from ..policies.resources import nested_managed as nested_managed
from ..policies.resources import with_resource_stream as with_resource_stream
from ..policies.retries import Clock as Clock
from ..policies.retries import RetryPolicy as RetryPolicy
from ..policies.retries import SystemClock as SystemClock
from ..policies.retries import retry_map as retry_map
from ..policies.retries import retry_result as retry_result
from ..reconcile import plan as plan
from ..reconcile import verify as verify
from ..result import Err as Err
from ..result import ErrInfo as ErrInfo
from ..result import Nothing as Nothing
from ..result import Ok as Ok
from ..result import Option as Option
from ..result import Result as Result
from ..result import Some as Some
from ..result import make_errinfo as make_errinfo
from ..search import search_index as search_index
from ..streams import Stage as Stage
from ..streams import batched as batched
from ..streams import chain as chain
from ..streams import chain_from as chain_from
from ..streams import flat_map as flat_map
from ..streams import guard as guard
from ..streams import sfilter as sfilter
from ..streams import smap as smap
from ..streams import take as take
from ..streams import tap as tap
from ..summary import RunSummary as RunSummary

__all__ = [
    "BreakInfo",
    "CleanupError",
    "CleanupStack",
    "Clock",
    "ConfigError",
    "Err",
    "ErrInfo",
    "ErrReport",
    "ErrReportBuilder",
    "FuncpipeError",
    "IndexLockedError",
    "IndexMismatchError",
    "IngestRequest",
    "LedgerSnapshot",
    "Nothing",
    "Ok",
    "Option",
    "OsSnapshot",
    "ResourceClosedError",
    "ResourceLedger",
    "Result",
    "RetryPolicy",
    "RunSettings",
    "RunSummary",
    "Some",
    "Stage",
    "SystemClock",
    "auto_close",
    "batched",
    "chain",
    "chain_from",
    "circuit_breaker_count_emit",
    "circuit_breaker_count_truncate",
    "circuit_breaker_pred_emit",
    "circuit_breaker_pred_truncate",
    "circuit_breaker_rate_emit",
    "circuit_breaker_rate_truncate",
    "current_ledger",
    "evaluate",
    "flat_map",
    "fold_error_report",
    "guard",
    "ingest",
    "is_break",
    "load_queries",
    "make_errinfo",
    "managed_stream",
    "nested_managed",
    "os_snapshot",
    "plan",
    "report_to_jsonable",
    "resolve_settings",
    "retry_map",
    "retry_result",
    "search_index",
    "sfilter",
    "short_circuit_on_err_emit",
    "short_circuit_on_err_truncate",
    "smap",
    "take",
    "tap",
    "use_ledger",
    "verify",
    "with_resource_stream",
]
