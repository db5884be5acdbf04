"""Material for ``leak-check``'s parser scenarios: a tree with PDFs, and process trees.

The scenarios make parser workers hang (the test-only ``FUNCPIPE_TEST_PARSER_FAULT``
hook of :mod:`funcpipe_rag.readers.worker`) and then check from *outside* the run that
none of its worker processes is left: a process left behind after its parent exited
would be invisible to the run's own count of its children.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

WORKER_MODULE = "funcpipe_rag.readers.worker"


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica (offsets and xref computed here, so
    ``leak-check`` needs no PDF writer library)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % at for at in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def write_parser_tree(root: Path, pdfs: int = 3) -> Path:
    """A few PDFs (``stuck-*.pdf`` and ``fine-*.pdf``) beside some Markdown."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(pdfs):
        (root / f"stuck-{i}.pdf").write_bytes(minimal_pdf(f"A parser will hang on page {i}."))
        (root / f"fine-{i}.pdf").write_bytes(minimal_pdf(f"Plain text on a PDF page, {i}."))
        (root / f"note-{i}.md").write_text(f"# Note {i}\n\nSome text beside the PDFs.\n")
    return root


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``; empty elsewhere or once gone)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(x) for x in f.read().split()]
    return found


def is_worker(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) funcpipe parser worker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return WORKER_MODULE.encode() in cmdline and state != "Z"


def kill_leftovers(pids: list[int]) -> list[int]:
    """SIGKILL any of ``pids`` still a live worker (cleaning up after a leak); which."""
    left = [p for p in pids if is_worker(p)]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left


__all__ = ["children", "is_worker", "kill_leftovers", "minimal_pdf", "write_parser_tree"]
