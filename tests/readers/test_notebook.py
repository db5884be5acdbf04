"""The notebook reader on notebooks written by nbformat (Jupyter's own library)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import iter_documents
from funcpipe_rag.result import Err, Ok
from funcpipe_rag.walk import iter_paths

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)


def write_notebook(path: Path, title: str | None = None) -> None:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Load the data\n\nWe read the CSV files."),
            new_code_cell(
                "# a comment, not a heading\nimport csv\nrows = list(csv.reader(open('a.csv')))",
                outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "<F>"})],
            ),
            new_raw_cell("raw cell text is not indexed"),
            new_markdown_cell(
                "## Clean\n\nDrop empty rows.", attachments={"x.png": {"image/png": PNG}}
            ),
            new_code_cell("rows = [r for r in rows if r]", execution_count=2,
                          outputs=[new_output("stream", name="stdout", text="OUTPUT TEXT\n")]),
            new_markdown_cell("# Results\n\nAll good."),
        ]
    )  # fmt: skip
    if title is not None:
        nb.metadata["title"] = title
    nbformat.validate(nb)
    nbformat.write(nb, str(path))


def read(path: Path) -> list[object]:
    ledger = ResourceLedger()
    stream = iter_documents(iter_paths([path]), ledger)
    try:
        out: list[object] = []
        for r in stream:
            if isinstance(r, Ok):
                out.append(
                    (r.value.document, [(p.text, p.section, p.boundary) for p in r.value.pieces])
                )
            else:
                out.append(r)
    finally:
        stream.close()
    assert ledger.snapshot().open_total == 0
    return out


def test_cells_in_order_with_heading_sections_and_no_outputs(tmp_path: Path) -> None:
    path = tmp_path / "analysis.ipynb"
    write_notebook(path)
    ((doc, pieces),) = read(path)  # type: ignore[misc]
    assert doc.reader == "notebook/1"
    assert doc.title == "Load the data"
    text = "".join(t for t, _, _ in pieces)
    assert text == (
        "# Load the data\n\nWe read the CSV files.\n\n"
        "# a comment, not a heading\nimport csv\nrows = list(csv.reader(open('a.csv')))\n\n"
        "## Clean\n\nDrop empty rows.\n\n"
        "rows = [r for r in rows if r]\n\n"
        "# Results\n\nAll good.\n\n"
    )
    for absent in ("OUTPUT TEXT", "iVBOR", "<F>", "raw cell"):
        assert absent not in text
    assert [(s, b) for _, s, b in pieces] == [
        ("Load the data", True),
        ("Load the data", False),  # a code cell: its comment is no heading
        ("Load the data > Clean", True),
        ("Load the data > Clean", False),
        ("Results", True),
    ]


def test_the_metadata_title_wins(tmp_path: Path) -> None:
    path = tmp_path / "t.ipynb"
    write_notebook(path, title="Quarterly numbers")
    ((doc, _),) = read(path)  # type: ignore[misc]
    assert doc.title == "Quarterly numbers"


def test_a_corrupt_notebook_is_read_corrupt(tmp_path: Path) -> None:
    good = tmp_path / "good.ipynb"
    write_notebook(good)
    (tmp_path / "cut.ipynb").write_bytes(good.read_bytes()[:200])  # truncated JSON
    (tmp_path / "list.ipynb").write_text("[1, 2, 3]\n")  # JSON, not a notebook
    (tmp_path / "cells.ipynb").write_text('{"cells": [{"cell_type": "code", "source": 7}]}')
    results = read(tmp_path)
    codes = {Path(r.error.path or "").name: r.error.code for r in results if isinstance(r, Err)}
    assert codes == {"cut.ipynb": "READ/CORRUPT", "list.ipynb": "READ/CORRUPT",
                     "cells.ipynb": "READ/CORRUPT"}  # fmt: skip
    assert sum(1 for r in results if not isinstance(r, Err)) == 1
