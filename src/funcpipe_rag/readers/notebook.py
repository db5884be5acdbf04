"""Jupyter notebooks (``.ipynb``): the markdown and code cells, in order, no outputs.

* **Text**: each markdown and code cell's source, cells separated by a blank line; raw
  cells, outputs and attachments (embedded images) are left out.
* **Sections**: the heading path of the markdown headings seen so far (as in Markdown
  files); a markdown cell with a heading starts a new section (a hard ``boundary``).
* **Title**: the notebook's ``metadata.title``, else its first level-1 heading.
* nbformat 4 (``cells``) and 3 (``worksheets``); anything else, or JSON that does not
  parse, is ``READ/CORRUPT``.

A notebook is JSON (UTF-8 by its specification, whatever ``encoding`` says), parsed
whole: outputs with images make notebooks large, so one over :data:`MAX_NOTEBOOK_BYTES`
is ``SKIP/TOO_LARGE`` rather than a parse that needs several times its size in memory.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ..policies.interrupts import deferred_interrupts
from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, TextPiece, reader_id
from .files import MEMORY_READ_LIMIT, OpenFile, read_fail, read_skip
from .markdown import first_h1, sections

MAX_NOTEBOOK_BYTES = 64 << 20
_SNIFF = re.compile(rb'\s*\{\s*"(?:cells|metadata|nbformat|worksheets)"\s*:')


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", cell.get("input", ""))
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    if not isinstance(src, str):
        raise ValueError("a cell's source is neither text nor a list of text")
    return src


def _cells(nb: Any) -> list[dict[str, Any]]:
    if not isinstance(nb, dict):
        raise ValueError("not a JSON object")
    cells: list[Any]
    if isinstance(nb.get("cells"), list):
        cells = nb["cells"]
    elif isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in ws.get("cells", [])]
    else:
        raise ValueError("no cells (not a Jupyter notebook)")
    if not all(isinstance(c, dict) for c in cells):
        raise ValueError("a cell is not a JSON object")
    return cells


def notebook_pieces(nb: Any) -> tuple[list[TextPiece], str]:
    """(pieces, title) of a parsed notebook; ``ValueError`` when it is not one."""
    pieces: list[TextPiece] = []
    path: list[tuple[int, str]] = []  # the heading path, carried from cell to cell
    title = ""
    meta = nb.get("metadata") if isinstance(nb, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("title"), str):
        title = " ".join(meta["title"].split())
    for cell in _cells(nb):
        kind = cell.get("cell_type")
        src = _source(cell)
        if not src.strip() or kind not in ("markdown", "code", "heading"):
            continue
        if kind == "heading":  # nbformat 3 kept headings in cells of their own
            level = cell.get("level", 1)
            level = level if isinstance(level, int) and 1 <= level <= 6 else 1
            src, kind = "#" * level + " " + src, "markdown"
        text = src + ("\n" if src.endswith("\n") else "\n\n")  # a blank line between cells
        if kind == "code":
            section = " > ".join(t for _, t in path)
            pieces.append(TextPiece(text, section))
            continue
        title = title or first_h1(src + "\n")
        pieces.extend(sections(iter([text]), path=path))
    return pieces, title


class NotebookReader:
    """``.ipynb`` files, and JSON that starts like a notebook."""

    name = "notebook"
    version = 1
    options = ""

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        if os.path.splitext(src.path)[1].lower() == ".ipynb":
            return True
        return _SNIFF.match(head) is not None and b'"cell_type"' in head

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        if raw.size > MAX_NOTEBOOK_BYTES:
            return read_skip(
                "SKIP/TOO_LARGE", f"notebook larger than {MAX_NOTEBOOK_BYTES >> 20} MiB", raw.source
            )
        data = raw.data
        if data is None:
            got = _read_verified(raw, ledger)
            if isinstance(got, Err):
                return got
            data = got.value
        try:
            nb = json.loads(data.decode("utf-8-sig"))
            pieces, title = notebook_pieces(nb)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return read_fail("READ/CORRUPT", f"not a readable notebook: {exc}", raw.source, exc)
        doc = Document(raw.source, raw.file_hash, reader_id(self), encoding="utf-8", title=title)
        return Ok(Extraction(doc, iter(pieces)))


def _read_verified(raw: RawFile, ledger: ResourceLedger) -> Result[bytes, ErrInfo]:
    """The bytes of a notebook too large to have been kept in memory, checked against
    the hash of the first read."""
    from .files import new_hasher

    assert raw.size > MEMORY_READ_LIMIT
    opened: OpenFile | None = None
    try:
        with deferred_interrupts():  # until `opened` holds the file, which finally closes
            opened = OpenFile(raw.source, ledger)
        data = opened.file.read()
    except OSError as exc:
        if opened is None:
            return read_fail("READ/OPEN", "cannot open", raw.source, exc)
        return read_fail("READ/IO", "read failed", raw.source, exc)
    finally:
        if opened is not None:
            opened.close()
    digest = new_hasher()
    digest.update(data)
    if digest.hexdigest() != raw.file_hash:
        return read_fail("READ/CHANGED", "file changed while it was read", raw.source)
    return Ok(data)


__all__ = ["MAX_NOTEBOOK_BYTES", "NotebookReader", "notebook_pieces"]
