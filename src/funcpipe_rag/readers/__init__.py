"""Readers: from walked files to documents with text, one module per format.

Two stages, so the incremental index can skip an unchanged file between them (one
read, no parse):

* :func:`read_files` reads and hashes each file once and picks its reader by sniffing
  the head first, the name second (:data:`READERS`, in order); an empty file is
  ``SKIP/EMPTY``, a file no reader takes ``SKIP/BINARY``;
* :func:`extract_documents` has the chosen reader turn each raw file into a
  :class:`~.base.Document` and its text pieces.

Errors and skips pass through both stages unchanged.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import replace

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..signature import lineup, signature
from ..streams import Stage, close_quietly
from ..walk import SourceFile
from .base import Document, DocumentReader, Extraction, RawFile, TextPiece, reader_id
from .decoding import AUTO
from .docx import DocxReader
from .files import AfterRead, read_bytes, read_skip
from .html import HtmlReader
from .markdown import MarkdownReader
from .notebook import NotebookReader
from .pdf import PdfReader
from .pool import ParseLimits, ParserPool, open_parser_pool
from .pooled import extract_pooled
from .text import TextReader


def readers_for(*, encoding: str = AUTO) -> tuple[DocumentReader, ...]:
    """The readers of a run, in the order they are asked: binary formats sniffed by
    their magic bytes first (a PDF may well have no NUL byte in its head, which is all
    the text reader asks), then formats known by their content or extension, plain text
    last. ``encoding`` is the setting."""
    return (
        PdfReader(),
        DocxReader(),
        NotebookReader(),
        HtmlReader(encoding),
        MarkdownReader(encoding),
        TextReader(encoding),
    )


READERS: tuple[DocumentReader, ...] = readers_for()


def choose_reader(
    src: SourceFile, head: bytes, readers: Iterable[DocumentReader] = READERS
) -> DocumentReader | None:
    return next((r for r in readers if r.accepts(src, head)), None)


def reader_lineup(readers: Iterable[DocumentReader]) -> str:
    """The :func:`~funcpipe_rag.signature.lineup` of ``readers`` (their ids, in order)."""
    return lineup(reader_id(r) for r in readers)


def read_file(
    src: SourceFile,
    ledger: ResourceLedger,
    *,
    readers: Iterable[DocumentReader] = READERS,
    after_read: AfterRead | None = None,
    readers_lineup: str | None = None,
) -> Result[RawFile, ErrInfo]:
    """Read, hash and sniff one file (see :mod:`.files`). The raw file's ``source``
    carries the trusted stat signature of the read under ``readers``' line-up (or None:
    racy); ``readers_lineup`` is that line-up, when the caller has it already."""
    got = read_bytes(src, ledger, after_read=after_read)
    if isinstance(got, Err):
        return got
    fb = got.value
    if fb.size == 0:
        return read_skip("SKIP/EMPTY", "empty file", src)
    reader = choose_reader(src, fb.head, readers)
    if reader is None:
        return read_skip("SKIP/BINARY", "binary file (NUL byte in the first 8 KiB)", src)
    if fb.stat_key is not None:
        held = readers_lineup if readers_lineup is not None else reader_lineup(readers)
        src = replace(src, signature=signature(fb.stat_key, held))
    elif src.signature is not None:
        src = replace(src, signature=None)
    return Ok(RawFile(src, fb.file_hash, fb.size, fb.head, fb.data, reader))


def read_files(
    files: Iterable[Result[SourceFile, ErrInfo]],
    ledger: ResourceLedger,
    *,
    readers: Iterable[DocumentReader] = READERS,
    after_read: AfterRead | None = None,
) -> Stage[Result[RawFile, ErrInfo]]:
    """:func:`read_file` for each walked file; errors pass through."""
    chosen = tuple(readers)
    held = reader_lineup(chosen)

    def gen() -> Generator[Result[RawFile, ErrInfo], None, None]:
        try:
            for r in files:
                if isinstance(r, Ok):
                    yield read_file(
                        r.value, ledger, readers=chosen, after_read=after_read, readers_lineup=held
                    )
                else:
                    yield r
        finally:
            close_quietly(files)

    return Stage(gen(), (files,))


def extract_documents(
    raws: Iterable[Result[RawFile, ErrInfo]],
    ledger: ResourceLedger,
    parsers: ParserPool | None = None,
) -> Stage[Result[Extraction, ErrInfo]]:
    """Each raw file through its reader; errors pass through.

    With ``parsers``, the files of its formats (PDF, DOCX) are parsed in its worker
    processes, under its time and memory limits (:mod:`.pool`). Without, every reader
    runs in this process: only for files you trust.
    """
    if parsers is not None:
        return Stage(extract_pooled(raws, ledger, parsers), (raws,))

    def gen() -> Generator[Result[Extraction, ErrInfo], None, None]:
        try:
            for r in raws:
                yield r.value.reader.extract(r.value, ledger) if isinstance(r, Ok) else r
        finally:
            close_quietly(raws)

    return Stage(gen(), (raws,))


def iter_documents(
    files: Iterable[Result[SourceFile, ErrInfo]],
    ledger: ResourceLedger,
    *,
    readers: Iterable[DocumentReader] = READERS,
    parsers: ParserPool | None = None,
) -> Stage[Result[Extraction, ErrInfo]]:
    """Read and extract every file (no incremental skipping between the two)."""
    return extract_documents(read_files(files, ledger, readers=readers), ledger, parsers)


__all__ = [
    "READERS",
    "Document",
    "DocumentReader",
    "DocxReader",
    "Extraction",
    "ParseLimits",
    "ParserPool",
    "PdfReader",
    "RawFile",
    "TextPiece",
    "choose_reader",
    "extract_documents",
    "iter_documents",
    "open_parser_pool",
    "read_file",
    "read_files",
    "reader_id",
    "reader_lineup",
    "readers_for",
]
