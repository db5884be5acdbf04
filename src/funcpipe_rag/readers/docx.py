"""DOCX: paragraphs and tables in document order, headings as the section path.

Read with the standard library's :mod:`zipfile` and lxml (the ``docs`` extra), not
python-docx: python-docx loads every part of the package into memory (images and
embedded files included) and builds an object per element, while a reader only needs
three small XML parts and one large one. Here the main part is *streamed* with
``iterparse`` and each paragraph is dropped once its text is taken, so memory follows
the largest paragraph or table, not the document; images are never inflated.

Untrusted archives: before anything is inflated, the central directory is checked
(:func:`check_part`): a part that would inflate past :data:`MAX_PART_BYTES`, or a large
one that inflates more than :data:`MAX_RATIO` times (a zip bomb's signature; Word's
own XML compresses 5-40x) is ``READ/ZIP_BOMB``. :mod:`zipfile` never inflates more
than a part's declared size (a part that lies fails its CRC: ``READ/CORRUPT``). The XML
parser resolves no entities, loads no DTD and touches no network. And the reader runs
in a parser worker with a time and memory limit (see :mod:`.pool`).

Structure: a paragraph styled ``Heading N`` (or with an outline level) is a heading,
``Title`` is the title; ``section`` is the heading path (``Knives > Honing``). The
document title is the core properties' ``dc:title``, else the first Title paragraph,
else the first Heading 1. Table rows become lines of ``cell | cell``.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from ..walk import SourceFile
from .base import Document, Extraction, RawFile, TextPiece, reader_id
from .binary import needs_extra, whole_bytes
from .files import read_fail

ZIP_MAGIC = b"PK\x03\x04"
MAX_PART_BYTES = 256 << 20
MAX_RATIO = 100
# Below this size a high ratio is harmless (a small, very regular part).
RATIO_FLOOR_BYTES = 8 << 20
MAX_SMALL_PART_BYTES = 16 << 20  # rels, styles, core properties

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_P, _TBL, _TR, _TC = _W + "p", _W + "tbl", _W + "tr", _W + "tc"
_T, _TAB, _BR, _CR = _W + "t", _W + "tab", _W + "br", _W + "cr"
_NO_BREAK_HYPHEN = _W + "noBreakHyphen"
# Text that is not the document's: tracked deletions, field codes, properties, and the
# fallback copy of content that markup-compatibility blocks hold twice.
_SKIP = {_W + "delText", _W + "instrText", _W + "pPr", _W + "rPr", _MC_FALLBACK}
_RELS_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_HEADING_NAME = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)
_TITLE_LEVEL = 0


class ZipBombError(Exception):
    """A part of the archive would inflate past the limits."""


class DocxReader:
    """A zip whose head names ``word/`` parts, or any zip named ``*.docx``."""

    name = "docx"
    version = 1

    def accepts(self, src: SourceFile, head: bytes) -> bool:
        if not head.startswith(ZIP_MAGIC):
            return False
        return b"word/" in head or src.path.lower().endswith(".docx")

    def extract(self, raw: RawFile, ledger: ResourceLedger) -> Result[Extraction, ErrInfo]:
        try:
            from lxml import etree  # type: ignore[import-untyped]
        except ImportError as exc:
            return needs_extra("docs", "a DOCX file", raw, exc)
        got = whole_bytes(raw, ledger)
        if isinstance(got, Err):
            return got
        try:
            with zipfile.ZipFile(io.BytesIO(got.value)) as archive:
                parsed = _parse(archive, etree)
        except ZipBombError as exc:
            return read_fail("READ/ZIP_BOMB", str(exc), raw.source)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, etree.XMLSyntaxError, KeyError) as exc:
            return read_fail("READ/CORRUPT", f"not a readable DOCX ({exc})", raw.source)
        except (EOFError, ValueError, NotImplementedError) as exc:
            # zlib stream errors, unsupported compression methods
            return read_fail("READ/CORRUPT", f"damaged DOCX ({exc})", raw.source)
        document = Document(raw.source, raw.file_hash, reader_id(self), title=parsed.title)
        return Ok(Extraction(document, iter(parsed.pieces)))


def check_part(
    info: zipfile.ZipInfo,
    *,
    max_bytes: int = MAX_PART_BYTES,
    max_ratio: int = MAX_RATIO,
    ratio_floor: int = RATIO_FLOOR_BYTES,
) -> None:
    """Raise :class:`ZipBombError` if ``info`` would inflate past the limits."""
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > max_bytes:
        raise ZipBombError(
            f"{info.filename} would inflate to {size >> 20} MiB (limit {max_bytes >> 20} MiB)"
        )
    if size > ratio_floor and size / packed > max_ratio:
        raise ZipBombError(
            f"{info.filename} would inflate {size // packed}x to {size >> 20} MiB "
            f"(a zip bomb's ratio; limit {max_ratio}x)"
        )


@dataclass(frozen=True, slots=True)
class _Parsed:
    title: str
    pieces: list[TextPiece]


def _open_part(archive: zipfile.ZipFile, name: str, max_bytes: int) -> IO[bytes] | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    check_part(info, max_bytes=max_bytes)
    return archive.open(info)


def _small_xml(archive: zipfile.ZipFile, name: str, etree: Any) -> Any | None:
    stream = _open_part(archive, name, MAX_SMALL_PART_BYTES)
    if stream is None:
        return None
    with stream:
        return etree.fromstring(stream.read(), _parser(etree))


def _parser(etree: Any) -> Any:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )


def _package_parts(archive: zipfile.ZipFile, etree: Any) -> tuple[str, str]:
    """The main document part and the core properties part, from ``_rels/.rels``."""
    main, core = "word/document.xml", "docProps/core.xml"
    rels = _small_xml(archive, "_rels/.rels", etree)
    if rels is not None:
        for rel in rels.iter(_RELS_NS + "Relationship"):
            kind, target = rel.get("Type", ""), rel.get("Target", "").lstrip("/")
            if kind.endswith("/officeDocument") and target:
                main = posixpath.normpath(target)
            elif kind.endswith("/core-properties") and target:
                core = posixpath.normpath(target)
    return main, core


@dataclass(frozen=True, slots=True)
class _Style:
    name: str
    outline: int | None
    based_on: str


def _styles(archive: zipfile.ZipFile, main: str, etree: Any) -> dict[str, _Style]:
    root = _small_xml(archive, posixpath.join(posixpath.dirname(main), "styles.xml"), etree)
    styles: dict[str, _Style] = {}
    if root is None:
        return styles
    for style in root.iter(_W + "style"):
        style_id = style.get(_W + "styleId")
        if not style_id:
            continue
        name = style.find(_W + "name")
        based = style.find(_W + "basedOn")
        styles[style_id] = _Style(
            name=name.get(_W + "val", "") if name is not None else "",
            outline=_outline_level(style.find(_W + "pPr")),
            based_on=based.get(_W + "val", "") if based is not None else "",
        )
    return styles


def _outline_level(ppr: Any) -> int | None:
    """A heading level (1-9) from ``w:outlineLvl`` (0-8; 9 is body text)."""
    if ppr is None:
        return None
    lvl = ppr.find(_W + "outlineLvl")
    if lvl is None:
        return None
    try:
        value = int(lvl.get(_W + "val", "9"))
    except ValueError:
        return None
    return value + 1 if 0 <= value < 9 else None


def _style_level(style_id: str, styles: dict[str, _Style]) -> int | None:
    """Title -> 0, Heading N -> N, else the outline level, following ``basedOn``."""
    for _ in range(20):  # a basedOn cycle in a hostile file must not loop forever
        style = styles.get(style_id)
        if style is None:
            break
        name = style.name.strip().lower()
        if name == "title":
            return _TITLE_LEVEL
        heading = _HEADING_NAME.match(name)
        if heading is not None:
            return int(heading.group(1))
        if style.outline is not None:
            return style.outline
        style_id = style.based_on
    # Styles named by id alone (no styles part): Heading1 .. Heading9, Title.
    heading = _HEADING_NAME.match(style_id)
    return int(heading.group(1)) if heading is not None else None


def _level(p: Any, styles: dict[str, _Style]) -> int | None:
    ppr = p.find(_W + "pPr")
    direct = _outline_level(ppr)
    if direct is not None:
        return direct
    style = ppr.find(_W + "pStyle") if ppr is not None else None
    if style is None:
        return None
    style_id = style.get(_W + "val", "")
    return _TITLE_LEVEL if style_id.lower() == "title" else _style_level(style_id, styles)


def _text(elem: Any, out: list[str]) -> None:
    """The visible text under ``elem``, in order (nested paragraphs on their own lines)."""
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIP:
            continue
        if tag == _T:
            out.append(child.text or "")
        elif tag == _TAB:
            out.append("\t")
        elif tag in (_BR, _CR):
            out.append("\n")
        elif tag == _NO_BREAK_HYPHEN:
            out.append("-")
        elif tag == _P:
            out.append("\n")
            _text(child, out)
        elif tag == _TBL:
            out.append("\n" + _table(child))
        else:
            _text(child, out)


def _paragraph(p: Any) -> str:
    out: list[str] = []
    _text(p, out)
    return "".join(out).strip()


def _table(tbl: Any) -> str:
    """One line per row, cells separated by `` | `` (nested tables inline)."""
    lines = []
    for tr in tbl.iter(_TR):
        if tr.getparent() is not tbl:
            continue  # a nested table's rows are rendered inside their cell
        cells = []
        for tc in tr.iterchildren(_TC):
            parts = []
            for child in tc:
                if child.tag == _P:
                    parts.append(_paragraph(child))
                elif child.tag == _TBL:
                    parts.append(_table(child).replace("\n", " / "))
            cells.append(" ".join(x for x in parts if x))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


class _Sections:
    """Paragraphs grouped into pieces, one per stretch under the same heading path."""

    def __init__(self) -> None:
        self.pieces: list[TextPiece] = []
        self._path: list[tuple[int, str]] = []
        self._buffer: list[str] = []
        self.first_title = ""
        self.first_h1 = ""

    def _section(self) -> str:
        return " > ".join(text for _, text in self._path)

    def flush(self) -> None:
        if self._buffer:
            self.pieces.append(TextPiece("".join(self._buffer), self._section()))
            self._buffer = []

    def block(self, text: str, level: int | None) -> None:
        if not text:
            return
        if level == _TITLE_LEVEL:
            self.first_title = self.first_title or text
        elif level is not None:
            self.flush()
            self._path = [(lvl, t) for lvl, t in self._path if lvl < level] + [(level, text)]
            if level == 1:
                self.first_h1 = self.first_h1 or " ".join(text.split())
        self._buffer.append(text + "\n\n")


def _parse(archive: zipfile.ZipFile, etree: Any) -> _Parsed:
    main, core_name = _package_parts(archive, etree)
    stream = _open_part(archive, main, MAX_PART_BYTES)
    if stream is None:
        raise KeyError(f"not a Word document: no {main}")
    styles = _styles(archive, main, etree)
    sections = _Sections()
    with stream:
        _walk_body(stream, etree, styles, sections)
    sections.flush()
    core = _small_xml(archive, core_name, etree)
    title = ""
    if core is not None:
        found = core.find(_DC_TITLE)
        title = " ".join((found.text or "").split()) if found is not None else ""
    title = title or " ".join(sections.first_title.split()) or sections.first_h1
    return _Parsed(title, sections.pieces)


def _walk_body(stream: IO[bytes], etree: Any, styles: dict[str, _Style], out: _Sections) -> None:
    """Stream the main part: each top-level paragraph or table is read, then dropped."""
    events: Iterator[tuple[str, Any]] = etree.iterparse(
        stream,
        events=("start", "end"),
        tag=(_P, _TBL),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
        huge_tree=False,
    )
    p_depth = tbl_depth = 0
    for event, elem in events:
        is_p = elem.tag == _P
        if event == "start":
            p_depth += is_p
            tbl_depth += not is_p
            continue
        p_depth -= is_p
        tbl_depth -= not is_p
        if p_depth or tbl_depth:
            continue  # inside a table or a text box: read with its container
        if is_p:
            out.block(_paragraph(elem), _level(elem, styles))
        else:
            out.block(_table(elem), None)
        elem.clear()
        parent = elem.getparent()
        while parent is not None and elem.getprevious() is not None:
            del parent[0]


__all__ = ["MAX_PART_BYTES", "MAX_RATIO", "DocxReader", "ZipBombError", "check_part"]
