"""Compare an index with the tree it came from: ``ingest --plan`` and ``verify``.

Both walk and read the files exactly as ``ingest`` does (same walker, same text policy,
same chunk identity), open the index read-only, and never embed or write anything.

* :func:`plan` says, per file, what the next ``ingest`` would do: ``new``, ``changed``,
  ``unchanged``, ``deleted`` (in the index, gone from the tree), ``skipped`` or
  ``failed``, with its chunk count and how many of those chunks still need a vector.
  It decides "unchanged" as ingest does (:mod:`.changes`): by the stat signature
  unless ``change_check = "content"``.
* :func:`verify` reads and hashes every file whatever ``change_check`` says (it checks
  what a stat signature vouched for) and reports every mismatch: the file's own
  consistency (integrity, vector dimensions, orphan chunks, chunks without vectors,
  incomplete documents) and, given paths, files missing from the index, stale ones,
  and documents whose file is gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from .changes import ChangeCheck
from .chunking.chunks import iter_chunks
from .config import RunSettings
from .embedders.registry import content_space, planned_space
from .errors import IndexDamagedError, IndexMismatchError
from .index import (
    Finding,
    IndexOptions,
    IndexSpace,
    StoredDocument,
    VectorIndex,
    index_exists,
    index_name,
    open_index,
)
from .policies.ledger import ResourceLedger
from .readers import (
    DocumentReader,
    ParserPool,
    RawFile,
    extract_documents,
    open_parser_pool,
    read_file,
    read_files,
    reader_lineup,
    readers_for,
)
from .result import Err, ErrInfo, Ok, Result
from .walk import display_path, is_skip, iter_paths


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """What ingest would do with one file."""

    path: str
    status: str  # new | changed | unchanged | deleted | skipped | failed
    chunks: int = 0
    to_embed: int = 0
    code: str = ""

    def to_json_line(self) -> str:
        """``json.dumps(self.to_jsonable(), ensure_ascii=False)`` and a newline, written out
        (a plan prints one per file; this costs a fifth of ``dumps``)."""
        line = f'{{"path": {encode_basestring(self.path)}, "status": "{self.status}"'
        if self.status in ("new", "changed"):
            line += f', "chunks": {self.chunks}, "to_embed": {self.to_embed}'
        if self.code:
            line += f', "code": {encode_basestring(self.code)}'
        return line + "}\n"

    def to_jsonable(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path, "status": self.status}
        if self.status in ("new", "changed"):
            doc.update(chunks=self.chunks, to_embed=self.to_embed)
        if self.code:
            doc["code"] = self.code
        return doc


def _open_readonly(
    target: str, options: IndexOptions, ledger: ResourceLedger
) -> VectorIndex | None:
    if not index_exists(target, options):
        return None
    return open_index(target, None, ledger, readonly=True, options=options)


def _check_space(index: VectorIndex | None, settings: RunSettings) -> None:
    if index is None:
        return
    name, model, dim = planned_space(settings)
    conflict = index.space.conflict(IndexSpace(name, model, dim, settings.chunker.fingerprint()))
    if conflict is not None:
        raise IndexMismatchError(f"index {index.name}: {conflict}")


def _raw_files(
    roots: Iterable[str], settings: RunSettings, ledger: ResourceLedger
) -> Iterator[Result[RawFile, ErrInfo]]:
    readers = readers_for(encoding=settings.encoding)
    raws = read_files(iter_paths(roots, settings.walk_options()), ledger, readers=readers)
    try:
        yield from raws
    finally:
        raws.close()


def _to_read(
    roots: Iterable[str],
    settings: RunSettings,
    check: ChangeCheck,
    seen: set[str],
    ledger: ResourceLedger,
    readers: tuple[DocumentReader, ...],
) -> Iterator[Result[RawFile, ErrInfo] | PlanEntry]:
    """The walk, read: an ``unchanged`` entry for a file its stat signature vouches for
    (not opened), else the file read and hashed as ingest reads it."""
    held = reader_lineup(readers)
    walk = iter_paths(roots, settings.walk_options())
    try:
        for w in walk:
            if isinstance(w, Err):
                yield w
                continue
            src = w.value
            if check.unchanged_unread(src) is not None:
                seen.add(src.doc_id)
                yield PlanEntry(src.path, "unchanged")
                continue
            yield read_file(src, ledger, readers=readers, readers_lineup=held)
    finally:
        walk.close()


def _under(roots: Iterable[str]) -> tuple[str, ...]:
    return tuple(
        display_path(os.path.abspath(r)).rstrip("/") + "/" for r in roots if os.path.isdir(r)
    )


def _chunk_hashes(
    raw: RawFile, settings: RunSettings, space: str, ledger: ResourceLedger, parsers: ParserPool
) -> Result[list[str], ErrInfo]:
    """The content hashes of a file's chunks, exactly as ingest would cut them."""
    docs = extract_documents(iter([Ok(raw)]), ledger, parsers)
    stage = iter_chunks(docs, settings.chunker, space=space)
    hashes: list[str] = []
    try:
        for c in stage:
            if isinstance(c, Err):
                return c
            hashes.append(c.value.content_hash)
    finally:
        stage.close()
    return Ok(hashes)


def plan(
    roots: tuple[str, ...], settings: RunSettings, *, ledger: ResourceLedger | None = None
) -> Iterator[PlanEntry]:
    """One entry per file under ``roots`` (and per deleted document), lazily."""
    ledger = ledger if ledger is not None else ResourceLedger()
    index = _open_readonly(settings.index, settings.index_options(), ledger)
    parsers = open_parser_pool(settings.parse_limits(), ledger)  # started on the first PDF
    try:
        _check_space(index, settings)
        space = content_space(settings)
        stored = {d.doc_id: d for d in index.documents()} if index is not None else {}
        seen: set[str] = set()
        readers = readers_for(encoding=settings.encoding)
        check = ChangeCheck(
            index, readers, by_stat=settings.change_check == "stat", lookup=stored.get
        )
        for r in _to_read(roots, settings, check, seen, ledger, readers):
            if isinstance(r, PlanEntry):
                yield r
                continue
            if isinstance(r, Err):
                yield _failed_entry(r.error, seen)
                continue
            raw = r.value
            src = raw.source
            seen.add(src.doc_id)
            old = stored.get(src.doc_id)
            if check.unchanged_read(raw):
                yield PlanEntry(src.path, "unchanged")
                continue
            got = _chunk_hashes(raw, settings, space, ledger, parsers)
            if isinstance(got, Err):
                yield _failed_entry(got.error, seen)
                continue
            hashes = got.value
            known = index.known_hashes(hashes) if index is not None else set()
            to_embed = len({h for h in hashes if h not in known})
            yield PlanEntry(src.path, "changed" if old else "new", len(hashes), to_embed)
        prefixes = _under(roots)
        for doc in stored.values():
            if doc.doc_id not in seen and doc.abs_path.startswith(prefixes):
                yield PlanEntry(doc.path, "deleted")
    finally:
        try:
            parsers.close()
        finally:
            if index is not None:
                index.close()


def _failed_entry(err: ErrInfo, seen: set[str]) -> PlanEntry:
    doc_id = err.ctx.get("doc_id")
    if isinstance(doc_id, str) and not is_skip(err):
        seen.add(doc_id)
    status = "skipped" if is_skip(err) else "failed"
    return PlanEntry(err.path or "?", status, code=err.code)


@dataclass(slots=True)
class VerifyReport:
    """Mismatches between an index and (optionally) its tree; empty means consistent."""

    index: str
    issues: list[Finding] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    vectors: int = 0

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_jsonable(self) -> dict[str, Any]:
        by_code: dict[str, int] = {}
        for f in self.issues:
            by_code[f.code] = by_code.get(f.code, 0) + 1
        return {
            "schema": "funcpipe.verify/1",
            "index": self.index,
            "ok": self.ok,
            "counts": {"documents": self.documents, "chunks": self.chunks, "vectors": self.vectors},
            "by_code": by_code,
            "issues": [{"code": f.code, "detail": f.detail} for f in self.issues],
        }


def verify(
    index_target: str | Path,
    roots: tuple[str, ...] = (),
    settings: RunSettings | None = None,
    *,
    ledger: ResourceLedger | None = None,
) -> VerifyReport:
    """Check the index on its own and, given ``roots``, against the files."""
    ledger = ledger if ledger is not None else ResourceLedger()
    settings = settings if settings is not None else RunSettings()
    report = VerifyReport(index_name(index_target))
    try:
        index = open_index(
            index_target, None, ledger, readonly=True, options=settings.index_options()
        )
    except IndexDamagedError as exc:  # a finding of verify, not a usage error
        report.issues.append(Finding("INDEX/DAMAGED", str(exc)))
        return report
    try:
        report.issues += index.check()
        if any(f.code in ("INDEX/INTEGRITY", "INDEX/DAMAGED") for f in report.issues):
            return report  # a damaged file: counts and tree checks would only mislead
        counts = index.counts()
        report.documents, report.chunks, report.vectors = (
            counts.documents,
            counts.chunks,
            counts.vectors,
        )
        if roots:
            report.issues += _tree_findings(index, roots, settings, ledger)
    finally:
        index.close()
    return report


def _tree_findings(
    index: VectorIndex, roots: tuple[str, ...], settings: RunSettings, ledger: ResourceLedger
) -> list[Finding]:
    stored: dict[str, StoredDocument] = {d.doc_id: d for d in index.documents()}
    findings: list[Finding] = []
    seen: set[str] = set()
    for r in _raw_files(roots, settings, ledger):
        if isinstance(r, Err):
            doc_id = r.error.ctx.get("doc_id")
            if isinstance(doc_id, str):
                seen.add(doc_id)
            continue  # skipped or unreadable files are not expected in the index
        src = r.value.source
        seen.add(src.doc_id)
        old = stored.get(src.doc_id)
        if old is None:
            findings.append(Finding("TREE/MISSING", f"{src.path} is not in the index"))
        elif old.file_hash != r.value.file_hash:
            findings.append(Finding("TREE/STALE", f"{src.path} changed since it was stored"))
    prefixes = _under(roots)
    for doc in stored.values():
        if doc.doc_id not in seen and doc.abs_path.startswith(prefixes):
            findings.append(
                Finding("TREE/DELETED", f"{doc.path} is in the index but gone from the tree")
            )
    return findings
