"""The readers whose parsing is isolated in parser workers, by name.

Binary formats whose parsers a hostile file can make hang, balloon or crash. The run
sends each of their files to :mod:`.pool` with the reader's name, and the worker
(:mod:`.worker`) runs that reader's own ``extract``.
"""

from __future__ import annotations

from .base import DocumentReader
from .docx import DocxReader
from .pdf import PdfReader

PARSERS: dict[str, DocumentReader] = {r.name: r for r in (PdfReader(), DocxReader())}

# Tests and leak-check only: makes a worker hang, balloon or crash on matching files
# (see :mod:`.worker`). Passed to the workers; nothing else reads it.
FAULT_ENV = "FUNCPIPE_TEST_PARSER_FAULT"

__all__ = ["FAULT_ENV", "PARSERS"]
