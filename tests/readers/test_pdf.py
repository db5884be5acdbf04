"""The PDF reader on real PDFs written by fpdf2 (and encrypted by pypdf): text per page
with page numbers, the outline as sections, the title from the metadata, and one clear
outcome for each file it cannot read.

These call the reader in this process, as a parser worker does; the limits around it
are tested in ``test_pool.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import PdfReader, TextPiece, read_file
from funcpipe_rag.readers.files import MEMORY_READ_LIMIT
from funcpipe_rag.result import Err, ErrInfo, Ok
from tests.readers.parsing import extract_with, source
from tests.readers.writers import add_ballast, encrypt_pdf, write_image_pdf, write_pages, write_pdf

GUIDE = [
    ("Getting started", [("Install", "Install the package with pip."),
                         ("First run", "Run the ingest command on a folder of notes.")]),
    ("Operations", [("Backups", "Copy the index file while no run holds its lock.")]),
    ("Appendix", [("Glossary", "A chunk is a span of a document's extracted text.")]),
]  # fmt: skip


def extract(path: Path) -> tuple[str, list[TextPiece]] | ErrInfo:
    return extract_with("pdf", path)


def test_text_page_numbers_sections_and_title(tmp_path: Path) -> None:
    got = extract(write_pdf(tmp_path / "guide.pdf", GUIDE, title="Operator Guide"))
    assert not isinstance(got, ErrInfo), got
    title, pieces = got
    assert title == "Operator Guide"
    text = "".join(p.text for p in pieces)
    for _, sections in GUIDE:
        for heading, body in sections:
            assert heading in text and body in text
    assert {p.page for p in pieces} == {1, 2, 3}
    # Each piece sits under the heading path of the outline entry it follows.
    where = {p.text.split("\n", 1)[0]: (p.section, p.page) for p in pieces}
    assert where["Install"] == ("Getting started > Install", 1)
    assert where["First run"] == ("Getting started > First run", 1)
    assert where["Backups"] == ("Operations > Backups", 2)
    assert where["Glossary"] == ("Appendix > Glossary", 3)
    # Pages end with a blank line, so chunks prefer to break between pages.
    last_of_page = {p.page: p for p in pieces}
    assert all(p.text.endswith("\n\n") for p in last_of_page.values())


def test_a_pdf_without_outline_has_pages_but_no_sections(tmp_path: Path) -> None:
    got = extract(write_pages(tmp_path / "p.pdf", ["First page text.", "Second page text."]))
    assert not isinstance(got, ErrInfo), got
    title, pieces = got
    assert title == ""
    assert [(p.page, p.section) for p in pieces] == [(1, ""), (2, "")]
    assert "First page text." in pieces[0].text and "Second page text." in pieces[1].text


def test_a_large_pdf_is_read_again_and_checked_against_its_hash(tmp_path: Path) -> None:
    # Past the in-memory limit the reader reads the file itself; the bytes it parses
    # must hash as the run hashed them.
    path = write_pages(tmp_path / "big.pdf", ["Large, because of an attachment."])
    add_ballast(path, (MEMORY_READ_LIMIT >> 20) + 1)
    ledger = ResourceLedger()
    raw = read_file(source(path), ledger)
    assert isinstance(raw, Ok) and raw.value.data is None
    got = raw.value.reader.extract(raw.value, ledger)
    assert isinstance(got, Ok), got
    assert "Large, because of an attachment." in next(got.value.pieces).text
    with path.open("ab") as f:
        f.write(b"\n% appended after the run hashed the file\n")
    got = raw.value.reader.extract(raw.value, ledger)
    assert isinstance(got, Err) and got.error.code == "READ/CHANGED"
    assert ledger.snapshot().open_total == 0


def test_a_pdf_that_needs_a_password_is_read_encrypted(tmp_path: Path) -> None:
    plain = write_pages(tmp_path / "plain.pdf", ["Secret plans."])
    got = extract(encrypt_pdf(plain, tmp_path / "locked.pdf", user_password="s3cret"))
    assert isinstance(got, ErrInfo)
    assert got.code == "READ/ENCRYPTED" and "password" in got.msg
    assert got.ctx.get("doc_id")  # a failure: the index keeps the file's old chunks


def test_a_pdf_with_only_an_owner_password_opens_and_is_read(tmp_path: Path) -> None:
    plain = write_pages(tmp_path / "plain.pdf", ["Printable but not editable."])
    got = extract(encrypt_pdf(plain, tmp_path / "owner.pdf", user_password=""))
    assert not isinstance(got, ErrInfo), got
    assert "Printable but not editable." in got[1][0].text


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6])
def test_a_truncated_pdf_is_corrupt(tmp_path: Path, keep: float) -> None:
    data = write_pdf(tmp_path / "whole.pdf", GUIDE).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: int(len(data) * keep)])
    got = extract(cut)
    assert isinstance(got, ErrInfo), got
    assert got.code == "READ/CORRUPT"
    assert "PDF" in got.msg


def test_garbage_named_pdf_is_corrupt_not_indexed_as_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.pdf"
    path.write_text("this is not a pdf at all, just words\n")
    got = extract(path)
    assert isinstance(got, ErrInfo) and got.code == "READ/CORRUPT"


def test_an_image_only_pdf_is_no_text_with_a_hint(tmp_path: Path) -> None:
    got = extract(write_image_pdf(tmp_path / "scan.pdf"))
    assert isinstance(got, ErrInfo)
    assert got.code == "SKIP/NO_TEXT" and "OCR" in got.msg


def test_a_pdf_is_sniffed_by_its_header_whatever_its_name(tmp_path: Path) -> None:
    path = write_pages(tmp_path / "report.bin", ["Sniffed, not named."])
    got = extract(path)
    assert not isinstance(got, ErrInfo) and "Sniffed, not named." in got[1][0].text


def test_without_pypdfium2_a_pdf_is_a_skip_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pages(tmp_path / "p.pdf", ["Text."])
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # `import pypdfium2` now fails
    ledger = ResourceLedger()
    raw = read_file(source(path), ledger)
    assert isinstance(raw, Ok)
    got = PdfReader().extract(raw.value, ledger)
    assert isinstance(got, Err)
    assert got.error.code == "SKIP/NEEDS_EXTRA"
    assert "pip install 'funcpipe[pdf]'" in got.error.msg
    assert "doc_id" not in got.error.ctx  # the index keeps what it has of the file
