"""The reader seam: how a file's bytes become text with structure.

A run reads each file in two steps, so an unchanged file costs one read and no parse:

1. :mod:`.files` reads the bytes once (small files into memory, large ones streamed),
   hashes exactly those bytes, sniffs the head and picks a :class:`DocumentReader`
   -> a :class:`RawFile`;
2. the reader turns the raw file into a :class:`Document` and its text, as
   :class:`TextPiece` values -> an :class:`Extraction`.

Whatever is stored comes from the bytes that were hashed: a reader of an in-memory
file parses that very buffer, and a reader that streams a large file again must check
that the bytes it read hash the same (:class:`~.files.VerifiedStream`), else the file
changed under the read (``READ/CHANGED``).

Offsets of chunks are character offsets into the *extracted* text: the concatenation
of the pieces' ``text``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ..policies.ledger import ResourceLedger
from ..result import ErrInfo, Result
from ..walk import SourceFile


@dataclass(frozen=True, slots=True)
class TextPiece:
    """A run of extracted text and where in the document's structure it sits.

    ``section`` is the heading path (``"Install > From source"``), ``page`` the
    1-based page of a paged format. ``boundary`` marks a hard boundary before this
    piece (a heading, a new page): the chunker cuts the text there, so no chunk
    straddles it; pieces without it continue the text before them.
    """

    text: str
    section: str = ""
    page: int | None = None
    boundary: bool = False


@dataclass(frozen=True, slots=True)
class RawFile:
    """A file read once: the hash of its bytes, its head, and the reader chosen for it.

    ``data`` holds every byte when the file is small enough to read into memory; for a
    large file it is ``None`` and the reader streams the file again, verifying
    ``file_hash`` as it goes.
    """

    source: SourceFile
    file_hash: str
    size: int
    head: bytes
    data: bytes | None
    reader: DocumentReader

    @property
    def reader_id(self) -> str:
        return reader_id(self.reader)


@dataclass(frozen=True, slots=True)
class Document:
    """A document as stored: which bytes (``file_hash``), read how, and its title.

    ``reader`` is ``name/version``: a reader upgrade re-reads only its own files.
    ``encoding`` is what text was decoded with ("" for formats that carry their own).
    """

    source: SourceFile
    file_hash: str
    reader: str
    encoding: str = ""
    title: str = ""


@dataclass(slots=True)
class Extraction:
    """A document and its text. ``pieces`` may be lazy (a large file streamed); whoever
    takes it must close it (:func:`~funcpipe_rag.streams.close_quietly`)."""

    document: Document
    pieces: Iterator[TextPiece]


class DocumentReader(Protocol):
    """One format. ``accepts`` decides from the head and the name (sniffing first,
    extension second); ``extract`` never raises for a bad file: a per-file failure is
    an ``Err`` (``READ/DECODE``, ``READ/CORRUPT``, ...) or a skip (``SKIP/...``)."""

    name: str
    version: int

    def accepts(self, src: SourceFile, head: bytes) -> bool: ...

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]: ...


class ReadError(Exception):
    """A per-file failure found while a reader's pieces are consumed (a parser that
    gives up half-way): the chunker turns it into ``Err`` with ``code``, and the file is
    never stored as complete."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def reader_id(reader: DocumentReader) -> str:
    """``name/version``, plus the reader's ``options`` when it has any that change what
    it extracts (``text/1;encoding=cp1252``): chunk identity and the unchanged-file check
    use it, so a reader upgrade or a new option re-reads exactly the files it concerns."""
    options = getattr(reader, "options", "")
    return f"{reader.name}/{reader.version}" + (f";{options}" if options else "")


__all__ = [
    "Document",
    "DocumentReader",
    "Extraction",
    "RawFile",
    "ReadError",
    "TextPiece",
    "reader_id",
]
