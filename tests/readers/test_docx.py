"""The DOCX reader on real files written by python-docx: paragraphs in order, heading
styles as the section path, tables, the title; and the archives it must refuse."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import DocxReader, TextPiece, read_file
from funcpipe_rag.readers.docx import ZipBombError, check_part
from funcpipe_rag.result import Err, ErrInfo, Ok
from tests.readers.parsing import extract_with, source
from tests.readers.writers import write_docx, write_docx_bomb

HANDBOOK = [
    ("Title", "Kitchen Handbook"),
    ("Normal", "Read this before your first shift."),
    ("Heading 1", "Knives"),
    ("Normal", "Keep them sharp and dry."),
    ("Heading 2", "Honing"),
    ("Normal", "Hone before each use."),
    ("Heading 3", "Angle"),
    ("Normal", "Fifteen degrees for Japanese blades."),
    ("Heading 1", "Stocks"),
    ("Normal", "Start the bones in cold water."),
]


def extract(path: Path) -> tuple[str, list[TextPiece]] | ErrInfo:
    return extract_with("docx", path)


def section_of(pieces: list[TextPiece], text: str) -> str:
    (hit,) = [p for p in pieces if text in p.text]
    return hit.section


def test_paragraphs_in_order_with_heading_paths_and_title(tmp_path: Path) -> None:
    got = extract(write_docx(tmp_path / "h.docx", HANDBOOK, title="The Handbook"))
    assert not isinstance(got, ErrInfo), got
    title, pieces = got
    assert title == "The Handbook"  # the core properties win
    text = "".join(p.text for p in pieces)
    positions = [text.index(t) for _, t in HANDBOOK]
    assert positions == sorted(positions)  # document order
    assert section_of(pieces, "Read this before") == ""
    assert section_of(pieces, "Keep them sharp") == "Knives"
    assert section_of(pieces, "Hone before") == "Knives > Honing"
    assert section_of(pieces, "Fifteen degrees") == "Knives > Honing > Angle"
    assert section_of(pieces, "Start the bones") == "Stocks"  # a new H1 resets the path
    assert all(p.page is None for p in pieces)


def test_title_falls_back_to_the_title_paragraph_then_heading_1(tmp_path: Path) -> None:
    got = extract(write_docx(tmp_path / "a.docx", HANDBOOK, title=""))
    assert not isinstance(got, ErrInfo) and got[0] == "Kitchen Handbook"
    got = extract(write_docx(tmp_path / "b.docx", HANDBOOK[2:], title=""))
    assert not isinstance(got, ErrInfo) and got[0] == "Knives"


def test_tables_are_read_row_by_row(tmp_path: Path) -> None:
    table = [("Stock", "Simmer"), ("Chicken", "3 hours"), ("Beef", "6 hours")]
    got = extract(write_docx(tmp_path / "t.docx", HANDBOOK[:4], table=table))
    assert not isinstance(got, ErrInfo), got
    text = "".join(p.text for p in got[1])
    assert "Stock | Simmer\nChicken | 3 hours\nBeef | 6 hours" in text
    assert section_of(got[1], "Chicken | 3 hours") == "Knives"


def test_a_docx_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    path = write_docx_bomb(tmp_path / "bomb.docx", inflated_mib=64)
    assert path.stat().st_size < 1 << 20  # 64 MiB inflated from well under 1 MiB
    got = extract(path)
    assert isinstance(got, ErrInfo), got
    assert got.code == "READ/ZIP_BOMB"
    assert got.msg.startswith("word/document.xml would inflate") and "limit 100x" in got.msg


def test_a_part_over_the_size_cap_is_refused_whatever_its_ratio(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("word/document.xml", b"x" * 4096)
    (info,) = zipfile.ZipFile(path).infolist()
    check_part(info, max_bytes=4096)
    with pytest.raises(ZipBombError, match="limit 0 MiB"):
        check_part(info, max_bytes=4095)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_a_truncated_docx_is_corrupt(tmp_path: Path, keep: float) -> None:
    data = write_docx(tmp_path / "whole.docx", HANDBOOK).read_bytes()
    cut = tmp_path / "cut.docx"
    cut.write_bytes(data[: int(len(data) * keep)])
    got = extract(cut)
    assert isinstance(got, ErrInfo) and got.code == "READ/CORRUPT", got


def test_a_zip_that_is_not_a_word_document_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "sheet.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    got = extract(path)
    assert isinstance(got, ErrInfo) and got.code == "READ/CORRUPT"
    assert "no word/document.xml" in got.msg


def test_entities_are_not_expanded(tmp_path: Path) -> None:
    # A billion-laughs DTD in the main part: the parser resolves no entities.
    src = write_docx(tmp_path / "seed.docx", [("Normal", "seed")])
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY a "ha">'
        + b"".join(b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((i,) + (i - 1,) * 8)
                   for i in range(ord("b"), ord("k")))
        + b']><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>&j;</w:t></w:r></w:p><w:p><w:r><w:t>after</w:t></w:r></w:p>"
        b"</w:body></w:document>"
    )  # fmt: skip
    path = tmp_path / "laughs.docx"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info, laughs if info.filename == "word/document.xml" else a.read(info))
    got = extract(path)  # libxml2 refuses the amplification: one clear failure
    assert isinstance(got, ErrInfo) and got.code == "READ/CORRUPT", got
    assert "amplification" in got.msg


def test_without_lxml_a_docx_is_a_skip_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_docx(tmp_path / "d.docx", HANDBOOK)
    monkeypatch.setitem(sys.modules, "lxml", None)
    ledger = ResourceLedger()
    raw = read_file(source(path), ledger)
    assert isinstance(raw, Ok)
    got = DocxReader().extract(raw.value, ledger)
    assert isinstance(got, Err) and got.error.code == "SKIP/NEEDS_EXTRA"
    assert "pip install 'funcpipe[docs]'" in got.error.msg
