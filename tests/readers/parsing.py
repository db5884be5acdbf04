"""Reading a file as a run does, for the reader tests: walked, read (sniffing picks the
reader), then parsed in this process."""

from __future__ import annotations

from pathlib import Path

from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import TextPiece, read_file
from funcpipe_rag.result import Err, ErrInfo, Ok
from funcpipe_rag.walk import SourceFile, iter_paths


def source(path: Path) -> SourceFile:
    (r,) = list(iter_paths([path]))
    assert isinstance(r, Ok)
    return r.value


def extract_with(reader: str, path: Path) -> tuple[str, list[TextPiece]] | ErrInfo:
    """(title, pieces) of ``path``, which ``reader`` must be the one to take, or the
    error it gave; nothing may stay open either way."""
    ledger = ResourceLedger()
    raw = read_file(source(path), ledger)
    assert isinstance(raw, Ok), raw
    assert raw.value.reader.name == reader
    got = raw.value.reader.extract(raw.value, ledger)
    assert ledger.snapshot().open_total == 0
    if isinstance(got, Err):
        return got.error
    return got.value.document.title, list(got.value.pieces)


def document_pieces(
    path: Path, encoding: str = "auto"
) -> tuple[object, list[tuple[str, str, bool]]]:
    """The document of ``path`` as a run streams it (the text formats, in process) and
    its pieces as (text, section, boundary); nothing may stay open."""
    from funcpipe_rag.readers import iter_documents, readers_for

    ledger = ResourceLedger()
    stream = iter_documents(iter_paths([path]), ledger, readers=readers_for(encoding=encoding))
    try:
        (r,) = list(stream)
        assert isinstance(r, Ok), r
        pieces = [(p.text, p.section, p.boundary) for p in r.value.pieces]
        doc = r.value.document
    finally:
        stream.close()
    assert ledger.snapshot().open_total == 0
    return doc, pieces
