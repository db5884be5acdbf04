"""The binary documents of ``sample_corpus/`` are exactly what their generator writes
(scripts/make_sample_docs.py, with the pinned writer libraries), and read as meant."""

from __future__ import annotations

from pathlib import Path

from scripts.make_sample_docs import FILES, ROOT, build, differences

from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import ParseLimits, iter_documents
from funcpipe_rag.readers.pool import ProcessParserPool
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import iter_paths


def test_the_committed_files_are_what_the_script_writes(tmp_path: Path) -> None:
    assert differences(ROOT) == []
    # ...and the script really writes them (into a fresh folder, byte for byte).
    written = build(tmp_path)
    assert set(written) == set(FILES)
    for rel, data in written.items():
        assert (ROOT / rel).read_bytes() == data, rel


def test_a_changed_sample_is_reported_stale(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "documents/field-guide.pdf").write_bytes(b"%PDF-1.4 edited by hand\n")
    assert differences(tmp_path) == ["documents/field-guide.pdf"]


def test_the_samples_read_as_meant() -> None:
    paths = [str(ROOT / rel) for rel in FILES if not rel.endswith(".ipynb")]
    ledger = ResourceLedger()
    with ProcessParserPool(ParseLimits(), ledger) as pool:
        stage = iter_documents(iter_paths(paths), ledger, parsers=pool)
        try:
            got = {}
            for r in stage:
                if isinstance(r, Ok):
                    doc = r.value.document
                    pieces = list(r.value.pieces)
                    got[Path(doc.source.path).name] = (doc.title, pieces)
                else:
                    got[Path(r.error.path or "").name] = r.error.code
        finally:
            stage.close()
    assert got["corrupt.pdf"] == "READ/CORRUPT"
    title, pieces = got["field-guide.pdf"]
    assert title == "A Field Guide to Resource-Safe Pipelines"
    assert {p.page for p in pieces} == {1, 2, 3}
    assert "Parsers behind a wall > Untrusted files" in {p.section for p in pieces}
    assert got["kitchen-handbook.docx"][0] == "Kitchen Handbook"
    assert got["oncall-notes.docx"][0] == "On-call Notes"
    assert not isinstance(got["release-checklist.pdf"], str)
