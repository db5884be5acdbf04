"""Compare an index with the tree it came from: ``ingest --plan`` and ``verify``.

Both walk and hash the files exactly as ``ingest`` does (same walker, same text policy,
same chunk identity), open the index read-only, and never embed or write anything.

* :func:`plan` says, per file, what the next ``ingest`` would do: ``new``, ``changed``,
  ``unchanged``, ``deleted`` (in the index, gone from the tree), ``skipped`` or
  ``failed``, with its chunk count and how many of those chunks still need a vector.
* :func:`verify` reports every mismatch: the file's own consistency (integrity,
  vector dimensions, orphan chunks, chunks without vectors, incomplete documents) and,
  given paths, files missing from the index, stale ones, and documents whose file is
  gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chunking.chunks import iter_chunks
from .config import RunSettings
from .embedders.factory import planned_content_space, planned_space
from .errors import IndexMismatchError
from .index import SqliteIndex, open_index
from .policies.ledger import ResourceLedger
from .result import Err, ErrInfo, Ok, Result
from .sources import Document, display_path, is_skip, iter_documents, iter_paths


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """What ingest would do with one file."""

    path: str
    status: str  # new | changed | unchanged | deleted | skipped | failed
    chunks: int = 0
    to_embed: int = 0
    code: str = ""

    def to_jsonable(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path, "status": self.status}
        if self.status in ("new", "changed"):
            doc.update(chunks=self.chunks, to_embed=self.to_embed)
        if self.code:
            doc["code"] = self.code
        return doc


def _open_readonly(path: Path, ledger: ResourceLedger) -> SqliteIndex | None:
    if not path.exists():
        return None
    return open_index(path, None, ledger, readonly=True)


def _check_space(index: SqliteIndex | None, settings: RunSettings) -> None:
    if index is None:
        return
    name, model, dim = planned_space(settings)
    stored = index.space
    fingerprint = settings.chunker.fingerprint()
    same_dim = not dim or not stored.dim or dim == stored.dim
    if (stored.embedder, stored.model, stored.chunker) != (
        name,
        model,
        fingerprint,
    ) or not same_dim:
        raise IndexMismatchError(
            f"index {index.path} holds {stored.key} chunked {stored.chunker}; the settings "
            f"give {name}:{model}:{dim or '?'} chunked {fingerprint}"
        )


def _documents(
    roots: Iterable[str], settings: RunSettings, ledger: ResourceLedger
) -> Iterator[Result[Document, ErrInfo]]:
    docs = iter_documents(iter_paths(roots, settings.walk_options()), ledger)
    try:
        yield from docs
    finally:
        docs.close()


def _under(roots: Iterable[str]) -> tuple[str, ...]:
    return tuple(
        display_path(os.path.abspath(r)).rstrip("/") + "/" for r in roots if os.path.isdir(r)
    )


def plan(
    roots: tuple[str, ...], settings: RunSettings, *, ledger: ResourceLedger | None = None
) -> Iterator[PlanEntry]:
    """One entry per file under ``roots`` (and per deleted document), lazily."""
    ledger = ledger if ledger is not None else ResourceLedger()
    index = _open_readonly(Path(settings.index), ledger)
    try:
        _check_space(index, settings)
        space = planned_content_space(settings)
        stored = {d[0]: d for d in index.documents()} if index is not None else {}
        seen: set[str] = set()
        for r in _documents(roots, settings, ledger):
            if isinstance(r, Err):
                err = r.error
                doc_id = err.ctx.get("doc_id")
                if isinstance(doc_id, str):
                    seen.add(doc_id)
                status = "skipped" if is_skip(err) else "failed"
                yield PlanEntry(err.path or "?", status, code=err.code)
                continue
            doc = r.value
            src = doc.source
            seen.add(src.doc_id)
            old = stored.get(src.doc_id)
            if old is not None and old[4] and old[3] == doc.file_hash:
                yield PlanEntry(src.path, "unchanged")
                continue
            hashes: list[str] = []
            stage = iter_chunks(iter([Ok(doc)]), settings.chunker, space=space, ledger=ledger)
            try:
                for c in stage:
                    if isinstance(c, Ok):
                        hashes.append(c.value.content_hash)
            finally:
                stage.close()
            known = index.known_hashes(hashes) if index is not None else set()
            to_embed = len({h for h in hashes if h not in known})
            yield PlanEntry(src.path, "changed" if old else "new", len(hashes), to_embed)
        prefixes = _under(roots)
        for doc_id, path, abs_path, _, _ in stored.values():
            if doc_id not in seen and abs_path.startswith(prefixes):
                yield PlanEntry(path, "deleted")
    finally:
        if index is not None:
            index.close()


@dataclass(slots=True)
class VerifyReport:
    """Mismatches between an index and (optionally) its tree; empty means consistent."""

    index: str
    issues: list[tuple[str, str]] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    vectors: int = 0

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_jsonable(self) -> dict[str, Any]:
        by_code: dict[str, int] = {}
        for code, _ in self.issues:
            by_code[code] = by_code.get(code, 0) + 1
        return {
            "schema": "funcpipe.verify/1",
            "index": self.index,
            "ok": self.ok,
            "counts": {"documents": self.documents, "chunks": self.chunks, "vectors": self.vectors},
            "by_code": by_code,
            "issues": [{"code": c, "detail": d} for c, d in self.issues],
        }


def verify(
    index_path: Path,
    roots: tuple[str, ...] = (),
    settings: RunSettings | None = None,
    *,
    ledger: ResourceLedger | None = None,
) -> VerifyReport:
    """Check ``index_path`` on its own and, given ``roots``, against the files."""
    ledger = ledger if ledger is not None else ResourceLedger()
    settings = settings if settings is not None else RunSettings()
    report = VerifyReport(str(index_path))
    with open_index(index_path, None, ledger, readonly=True) as index:
        report.issues += index.consistency_issues()
        counts = index.counts()
        report.documents, report.chunks, report.vectors = (
            counts["documents"],
            counts["chunks"],
            counts["vectors"],
        )
        if not roots or any(c == "INDEX/INTEGRITY" for c, _ in report.issues):
            return report
        stored = {d[0]: d for d in index.documents()}
        seen: set[str] = set()
        for r in _documents(roots, settings, ledger):
            if isinstance(r, Err):
                doc_id = r.error.ctx.get("doc_id")
                if isinstance(doc_id, str):
                    seen.add(doc_id)
                continue  # skipped or unreadable files are not expected in the index
            src = r.value.source
            seen.add(src.doc_id)
            old = stored.get(src.doc_id)
            if old is None:
                report.issues.append(("TREE/MISSING", f"{src.path} is not in the index"))
            elif old[3] != r.value.file_hash:
                report.issues.append(("TREE/STALE", f"{src.path} changed since it was stored"))
        prefixes = _under(roots)
        for doc_id, path, abs_path, _, _ in stored.values():
            if doc_id not in seen and abs_path.startswith(prefixes):
                report.issues.append(
                    ("TREE/DELETED", f"{path} is in the index but gone from the tree")
                )
    return report
