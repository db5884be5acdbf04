"""Real PDF and DOCX files for the reader tests, written by real libraries.

fpdf2 writes PDFs (with an outline when asked), pypdf encrypts them and swaps a page's
content stream for a compression bomb, python-docx writes DOCX files, zipfile rebuilds
one around a document part that inflates a hundredfold. Nothing here is a hand-built
byte string standing in for a file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

Chapter = tuple[str, Sequence[tuple[str, str]]]  # (chapter, [(section, text), ...])


def write_pdf(
    path: Path,
    chapters: Sequence[Chapter],
    *,
    title: str = "",
    outline: bool = True,
) -> Path:
    """One page per chapter; chapter and section headings, bookmarks when ``outline``."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for chapter, sections in chapters:
        pdf.add_page()
        if outline:
            pdf.start_section(chapter, level=0)
        pdf.set_font("helvetica", "B", 16)
        pdf.cell(0, 10, chapter, new_x="LMARGIN", new_y="NEXT")
        for heading, body in sections:
            if outline:
                pdf.start_section(heading, level=1)
            pdf.set_font("helvetica", "B", 12)
            pdf.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("helvetica", size=11)
            pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_pages(path: Path, pages: Sequence[str], *, title: str = "") -> Path:
    """One page per string, no headings."""
    return write_pdf(path, [(p, []) for p in pages], title=title, outline=False)


def add_ballast(path: Path, mib: int) -> Path:
    """Attach ``mib`` MiB of random bytes (pypdf), making a large but ordinary PDF."""
    import os

    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(path))
    writer.add_attachment("ballast.bin", os.urandom(mib << 20))
    writer.write(path)
    return path


def write_image_pdf(path: Path) -> Path:
    """A scan: one page holding only a picture (Pillow draws it), no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(image).rectangle((40, 40, 360, 160), outline="black", width=6)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(image, x=20, y=20, w=160)
    pdf.output(str(path))
    return path


def encrypt_pdf(src: Path, dst: Path, *, user_password: str, owner_password: str = "o") -> Path:
    """``src`` encrypted by pypdf (RC4-128); an empty user password opens without one."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(src))
    writer.encrypt(user_password=user_password, owner_password=owner_password,
                   algorithm="RC4-128")  # fmt: skip
    writer.write(dst)
    return dst


def _bomb_stream(inflated_mib: int) -> bytes:
    """A zlib stream of ``inflated_mib`` MiB of spaces, ~1 KiB per MiB.

    zlib compresses one MiB; after a full flush its state is reset, so every further
    MiB compresses to the same bytes, which are repeated instead of recompressed.
    """
    import zlib

    block = b" " * (1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()
    adler = 1
    for _ in range(inflated_mib):
        adler = zlib.adler32(block, adler)
    return b"\x78\xda" + first + again * (inflated_mib - 1) + end + adler.to_bytes(4, "big")


def write_bomb_pdf(path: Path, inflated_mib: int) -> Path:
    """A real PDF (fpdf2) whose first page's content stream inflates to ``inflated_mib``."""
    import pypdf
    from pypdf.generic import EncodedStreamObject, NameObject

    plain = write_pages(path.with_suffix(".plain.pdf"), ["A page.", "Another page."])
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(plain))
    stream = EncodedStreamObject()
    stream._data = _bomb_stream(inflated_mib)  # already compressed: set_data would re-encode
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    writer.write(path)
    plain.unlink()
    return path


Block = tuple[str, str]  # (style, text): "Title", "Heading 1", "Normal", ...


def write_docx(
    path: Path,
    blocks: Sequence[Block],
    *,
    title: str | None = None,
    table: Sequence[Sequence[str]] = (),
) -> Path:
    """Paragraphs in the given styles, then an optional table; ``title`` in the core
    properties (``None`` leaves python-docx's default, ``""`` clears it)."""
    import docx

    doc = docx.Document()
    if title is not None:
        doc.core_properties.title = title
    for style, text in blocks:
        if style.startswith("Heading "):
            doc.add_heading(text, level=int(style.split()[1]))
        else:
            doc.add_paragraph(text, style=style)
    if table:
        grid = doc.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    return path


def write_docx_bomb(path: Path, inflated_mib: int) -> Path:
    """A python-docx file whose main part is replaced by valid WordprocessingML that
    inflates to ``inflated_mib`` MiB at a ratio of several hundred."""
    seed = write_docx(path.with_suffix(".seed.docx"), [("Normal", "seed")])
    paragraph = b"<w:p><w:r><w:t>boom</w:t></w:r></w:p>"
    repeats = (inflated_mib << 20) // len(paragraph)
    out = io.BytesIO()
    with zipfile.ZipFile(seed) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                dst.writestr(info, src.read(info))
                continue
            head, _, tail = src.read(info).partition(b"<w:body>")
            with dst.open(info.filename, "w", force_zip64=True) as part:
                part.write(head + b"<w:body>")
                chunk = paragraph * 4096
                for _ in range(repeats // 4096):
                    part.write(chunk)
                part.write(b"</w:body>" + tail.partition(b"</w:body>")[2])
    path.write_bytes(out.getvalue())
    seed.unlink()
    return path
