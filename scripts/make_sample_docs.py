"""Write the binary documents of ``sample_corpus/`` with real writer libraries.

    .venv/bin/python scripts/make_sample_docs.py            # (re)write them in place
    .venv/bin/python scripts/make_sample_docs.py --check    # exit 1 if they differ

PDFs come from fpdf2, DOCX files from python-docx, the notebook from nbformat (all in
the ``dev`` extra, pinned: the committed files are their output byte for byte). Every
source of variation is fixed, so the output is reproducible: the PDFs' creation date,
the zip entries' timestamps of the DOCX files (python-docx stamps them with the time of
writing; they are rewritten at 1980-01-01), the notebook's cell ids.

One file is broken on purpose: ``awkward/corrupt.pdf`` is a real PDF cut short, so the
demo shows the clear per-file failure it gets (``READ/CORRUPT``).
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1] / "sample_corpus"
FIXED_DATE = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

Writer = Callable[[], bytes]

# -- PDF ---------------------------------------------------------------------------------

FIELD_GUIDE: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Streams that close themselves",
        [
            (
                "Why closing matters",
                (
                    "A generator that holds a file or a socket keeps it until it is closed. "
                    "Closing the last stage of a pipeline must close every stage above it, "
                    "synchronously, without waiting for the garbage collector. A stage that "
                    "forgets to close its upstream leaks whatever that upstream holds."
                ),
            ),
            (
                "The stage discipline",
                (
                    "Every stage that consumes an iterator closes it in a finally block. A "
                    "stage that never started still closes its upstream, which is the case "
                    "a plain generator gets wrong. The result is a pipeline that releases its "
                    "resources in reverse order on every exit path."
                ),
            ),
        ],
    ),
    (
        "Parsers behind a wall",
        [
            (
                "Untrusted files",
                (
                    "A PDF from the internet can make a parser loop for ever or inflate a "
                    "compressed stream to gigabytes. The ingestion run therefore parses PDF "
                    "and DOCX files in worker processes, each with a time limit and a memory "
                    "limit. A parser that overruns either is stopped, the file fails alone, "
                    "and the run goes on with a fresh worker."
                ),
            ),
            (
                "What the run keeps",
                (
                    "The bytes that are parsed are the bytes that were hashed. A file that "
                    "changes while it is read is read again next time. Nothing half-parsed "
                    "is ever stored: a document is complete or it is not in the index."
                ),
            ),
        ],
    ),
    (
        "Checking for leaks",
        [
            (
                "Two witnesses",
                (
                    "The resource ledger counts every file, socket, thread and parser "
                    "process a run acquires and releases. The operating system is the second "
                    "witness: descriptors, threads and child processes are counted before "
                    "and after the run, and any difference is reported as a leak."
                ),
            ),
            (
                "Faults on purpose",
                (
                    "The leak check runs the real pipeline under injected faults: a consumer "
                    "that raises, a server that stalls, a parser that hangs, a Ctrl-C while "
                    "parsers are busy. A scenario whose fault did not fire is reported as not "
                    "exercised, never as clean."
                ),
            ),
        ],
    ),
]

CHECKLIST = [
    ("Before the release", "Run the whole test suite, the leak check and the benchmarks."),
    ("Tag and build", "Tag the release, build the wheel and install it in a fresh venv."),
    ("After the release", "Ingest the sample corpus with the installed wheel and search it."),
]


def _pdf() -> Any:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_author("funcpipe sample corpus")
    pdf.set_auto_page_break(auto=True, margin=15)
    return pdf


def field_guide_pdf() -> bytes:
    """Several pages, a chapter per page, sections in the outline (bookmarks)."""
    pdf = _pdf()
    pdf.set_title("A Field Guide to Resource-Safe Pipelines")
    for chapter, sections in FIELD_GUIDE:
        pdf.add_page()
        pdf.start_section(chapter, level=0)
        pdf.set_font("helvetica", "B", 18)
        pdf.cell(0, 12, chapter, new_x="LMARGIN", new_y="NEXT")
        for heading, body in sections:
            pdf.start_section(heading, level=1)
            pdf.set_font("helvetica", "B", 13)
            pdf.cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("helvetica", size=11)
            for _ in range(3):  # enough text to fill the page
                pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
    return bytes(pdf.output())


def checklist_pdf() -> bytes:
    """One page, no outline."""
    pdf = _pdf()
    pdf.set_title("Release Checklist")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 12, "Release Checklist", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=11)
    for step, text in CHECKLIST:
        pdf.multi_cell(0, 7, f"{step}: {text}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def corrupt_pdf() -> bytes:
    """A real PDF cut after its first 300 bytes: no page tree, no cross-reference table."""
    return checklist_pdf()[:300]


# -- DOCX --------------------------------------------------------------------------------


def _docx_bytes(doc: Any) -> bytes:
    """Save, then rewrite the zip with fixed timestamps so the bytes are reproducible."""
    buf = io.BytesIO()
    doc.save(buf)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info))
    return out.getvalue()


def kitchen_handbook_docx() -> bytes:
    """Title in the core properties, two heading levels, a table."""
    import docx

    doc = docx.Document()
    doc.core_properties.title = "Kitchen Handbook"
    doc.core_properties.author = "funcpipe sample corpus"
    doc.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    doc.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    doc.add_paragraph("Kitchen Handbook", style="Title")
    doc.add_heading("Knives", level=1)
    doc.add_paragraph(
        "A sharp knife is a safe knife: it goes where it is pointed and needs no force. "
        "Wash knives by hand, dry them at once and store them on a magnetic strip."
    )
    doc.add_heading("Honing and sharpening", level=2)
    doc.add_paragraph(
        "Honing straightens the edge and takes a few strokes before each use. Sharpening "
        "grinds a new edge on a whetstone, once or twice a year for a home cook."
    )
    doc.add_heading("Stocks", level=1)
    doc.add_paragraph(
        "Roast the bones for a brown stock, start them in cold water, never let the pot "
        "boil hard, and skim the foam in the first half hour."
    )
    table = doc.add_table(rows=4, cols=3)
    rows = [
        ("Stock", "Simmer", "Keeps"),
        ("Chicken", "3 hours", "4 days chilled"),
        ("Beef", "6 hours", "5 days chilled"),
        ("Vegetable", "45 minutes", "3 days chilled"),
    ]
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    return _docx_bytes(doc)


def oncall_notes_docx() -> bytes:
    """No title in the core properties: the reader takes the first Heading 1."""
    import docx

    doc = docx.Document()
    doc.core_properties.title = ""
    doc.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    doc.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    doc.add_heading("On-call Notes", level=1)
    doc.add_paragraph(
        "When the embedding server stalls, the run ends within its retry budget with one "
        "clear line on stderr. Check the server's /stats route before restarting it."
    )
    doc.add_heading("Parser timeouts", level=2)
    doc.add_paragraph(
        "A READ/TIMEOUT names the file whose parser overran parse_timeout. The file is "
        "skipped this run and tried again on the next; raise the limit for huge scans."
    )
    doc.add_heading("Handover", level=1)
    doc.add_paragraph("Write down what is still open, who is on it, and what was tried.")
    return _docx_bytes(doc)


# -- notebook ----------------------------------------------------------------------------


def chunk_sizes_notebook() -> bytes:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = [
        v4.new_markdown_cell(
            "# Exploring chunk sizes\n\nHow many chunks does a document give at each "
            "chunk size, and how much text do neighbouring chunks share?",
            id="intro",
        ),
        v4.new_code_cell(
            "from funcpipe_rag.chunking.splitter import ChunkerSettings, iter_spans\n"
            "text = open('sample_corpus/faq.md').read()\n"
            "for size in (400, 800, 1600):\n"
            "    spans = list(iter_spans(iter([text]), ChunkerSettings(chunk_size=size, "
            "overlap=size // 8)))\n"
            "    print(size, len(spans))",
            id="count",
            execution_count=1,
            outputs=[v4.new_output("stream", name="stdout", text="400 21\n800 11\n1600 6\n")],
        ),
        v4.new_markdown_cell(
            "## What to take away\n\nHalving the chunk size roughly doubles the chunks to "
            "embed; the overlap adds its share on top.",
            id="takeaway",
        ),
    ]
    return nbformat.writes(nb).encode("utf-8")


FILES: dict[str, Writer] = {
    "documents/field-guide.pdf": field_guide_pdf,
    "documents/release-checklist.pdf": checklist_pdf,
    "documents/kitchen-handbook.docx": kitchen_handbook_docx,
    "documents/oncall-notes.docx": oncall_notes_docx,
    "notebooks/exploring-chunk-sizes.ipynb": chunk_sizes_notebook,
    "awkward/corrupt.pdf": corrupt_pdf,
}


def build(root: Path) -> dict[str, bytes]:
    """Write every file under ``root``; return what was written, by relative path."""
    written: dict[str, bytes] = {}
    for rel, writer in FILES.items():
        data = writer()
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[rel] = data
    return written


def differences(root: Path) -> list[str]:
    """The files under ``root`` that are missing or not what the writers make now."""
    stale = []
    for rel, writer in FILES.items():
        path = root / rel
        if not path.exists() or path.read_bytes() != writer():
            stale.append(rel)
    return stale


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if args.check:
        stale = differences(args.root)
        for rel in stale:
            print(f"stale: {rel} (run scripts/make_sample_docs.py)", file=sys.stderr)
        return 1 if stale else 0
    for rel in build(args.root):
        print(args.root / rel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
