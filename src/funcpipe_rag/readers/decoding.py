"""Bytes to text: which encoding a file is decoded with, decided once from its bytes.

``encoding = "auto"`` (the default) decides per file, in this order:

1. a byte-order mark: UTF-8 (the BOM is dropped), UTF-32 or UTF-16, little or big endian;
2. valid UTF-8 throughout: UTF-8;
3. a charset the document declares (HTML ``<meta charset>``), if it decodes the file;
4. Western 8-bit text — most bytes >= 0x80 stand alone between ASCII bytes, as the é of
   "café" does: cp1252, or Latin-1 when a byte cp1252 leaves undefined occurs;
5. otherwise (runs of high bytes, as CJK multi-byte encodings and 8-bit Cyrillic or
   Greek make): charset-normalizer's best guess from the first 1 MiB, if that codec
   decodes the whole file strictly; else as in 4.

Steps 4 and 5 never fail, so an ``auto`` file fails only when its BOM or its declared
charset lies (``READ/DECODE``). Why this rule and not one of its halves: on the real
corpus (README, "Encodings") cp1252 alone decodes every re-encoded Western file right and
no CJK one, charset-normalizer alone misreads half the Western ones ("François" as cp850
"Franþois"); the byte-run test in 4 tells the two kinds apart.

Any other value forces that Python codec for every file, strictly: the first bad byte is
one ``READ/DECODE`` naming its offset ("utf-8" is today's strict UTF-8, BOM dropped).

A file up to :data:`~.files.MEMORY_READ_LIMIT` is decided and decoded from the buffer
that was hashed. A larger one is decided in a streaming pass over the file (UTF-8
validity and the byte counts of step 4 cover every byte; step 5 sees the first 1 MiB
block), a second pass validates a codec that is not sure to fit (forced, BOM, declared,
guessed), and the decoding pass that feeds the chunker verifies the hash again.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from ..errors import ConfigError
from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result
from .base import RawFile
from .files import BLOCK_SIZE, SNIFF_SIZE, FileChangedError, VerifiedStream, read_fail

AUTO = "auto"

# Longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ASCII = bytes(range(0x80))
_HIGH_RUNS = re.compile(rb"[\x80-\xff]{2,}")
_CP1252_HOLES = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
# The share of high bytes that must stand alone for a file to count as Western 8-bit
# text. Measured on the corpus: re-encoded Western files sit near 0 % runs, CJK and
# 8-bit Cyrillic at 67-100 % (bench/bench_readers.py, "encodings").
_WESTERN_ISOLATED = 0.5
DETECT_SAMPLE = BLOCK_SIZE


def canonical(codec: str) -> str:
    """The codec's canonical name (``"latin-1"`` -> ``"iso8859-1"``)."""
    return codecs.lookup(codec).name


def check_encoding(value: str) -> None:
    """Raise ``ConfigError`` unless ``value`` is ``auto`` or a text codec Python knows."""
    if value == AUTO:
        return
    try:
        # LookupError for unknown names and for codecs that are not bytes-to-text (rot13,
        # base64); a real text codec may still find one byte invalid or cut short. (An
        # empty input is never looked up at all, hence the NUL.)
        b"\0".decode(value)
    except UnicodeDecodeError:
        pass
    except LookupError:
        raise ConfigError(
            f"encoding must be 'auto' or a text codec Python knows (utf-8, cp1252, "
            f"latin-1, shift_jis, ...), got {value!r}"
        ) from None


def bom_codec(head: bytes) -> str | None:
    """The Unicode encoding a byte-order mark at the start of ``head`` names, or None."""
    return next((name for bom, name in _BOMS if head.startswith(bom)), None)


def sniff_text(head: bytes) -> str:
    """The head as text for sniffing only: BOM-aware, never failing, maybe cut short."""
    name = bom_codec(head)
    if name is None:
        return head.decode("latin-1")
    return head[len(codecs.lookup(name).encode("\ufeff")[0]) :].decode(name, "replace")


def is_unicode_family(codec: str) -> bool:
    """UTF-16 and UTF-32 text holds NUL bytes: a forced one must not look binary."""
    return canonical(codec).startswith(("utf-16", "utf-32"))


@dataclass(slots=True)
class ByteStats:
    """What step 4 of the rule needs, counted block by block over every byte."""

    high: int = 0
    isolated: int = 0
    cp1252_holes: bool = False

    def add(self, block: bytes) -> None:
        high = len(block.translate(None, _ASCII))
        if not high:
            return
        self.high += high
        # The high bytes in runs are what removing the runs takes away (no match list).
        in_runs = len(block) - len(_HIGH_RUNS.sub(b"", block))
        self.isolated += high - in_runs
        self.cp1252_holes = self.cp1252_holes or _CP1252_HOLES.search(block) is not None

    @property
    def western(self) -> bool:
        return self.high == 0 or self.isolated / self.high >= _WESTERN_ISOLATED

    @property
    def western_codec(self) -> str:
        return "latin-1" if self.cp1252_holes else "cp1252"


def _blocks_of(data: bytes) -> Iterable[bytes]:
    return (data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE))


def guess_codec(sample: bytes) -> str | None:
    """charset-normalizer's best guess for ``sample`` (imported on first use: most
    files never need it)."""
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    return None if best is None else best.encoding


@dataclass(frozen=True, slots=True)
class DecodedText:
    """A file's text and the encoding it was decoded with (``encoding``, canonical).

    ``text`` holds it when the file was read into memory; else ``stream`` is read
    again and decoded with ``codec`` as :meth:`texts` is consumed.
    """

    encoding: str
    codec: str
    text: str | None
    stream: VerifiedStream | None
    head_bytes: bytes = b""

    def head(self) -> str:
        """The text of the file's first 8 KiB (its head, as sniffed), whole or streamed
        alike: for what a reader must know before it streams (a title, say)."""
        return codecs.getincrementaldecoder(self.codec)("replace").decode(self.head_bytes)

    def texts(self) -> Generator[str, None, None]:
        """The text, whole or block by block. A streamed file that changed since it was
        hashed raises :class:`~.files.FileChangedError` (or ``UnicodeDecodeError``) at
        the end; closing the generator closes the file."""
        if self.text is not None:
            yield self.text
            return
        assert self.stream is not None
        decoder = codecs.getincrementaldecoder(self.codec)("strict")
        blocks = self.stream.blocks()
        try:
            for block in blocks:
                yield decoder.decode(block)
            yield decoder.decode(b"", final=True)
        finally:
            blocks.close()


def _decode_error(raw: RawFile, codec: str, exc: UnicodeDecodeError, at: int) -> Err[ErrInfo]:
    name = "UTF-8" if canonical(codec) in ("utf-8", "utf-8-sig") else canonical(codec)
    cut = exc.reason in ("unexpected end of data", "truncated data")
    what = f"truncated {name}" if cut else f"not valid {name}"
    return read_fail("READ/DECODE", f"{what} at byte {at}", raw.source, exc)


def _forced_codec(setting: str) -> str:
    """The codec a forced setting decodes with: a UTF-8 BOM is dropped, as ever."""
    name = canonical(setting)
    return "utf-8-sig" if name == "utf-8" else name


def _bom_decoder(name: str) -> str:
    """The codec that reads a file starting with the BOM of ``name`` and drops the BOM."""
    return "utf-8-sig" if name == "utf-8" else name[:6]  # "utf-16", "utf-32"


# -- files in memory -----------------------------------------------------------------------


def _strict(raw: RawFile, data: bytes, codec: str) -> Result[str, ErrInfo]:
    try:
        # Plain "utf-8" for a forced UTF-8 so the error offset counts a BOM; dropped after.
        text = data.decode("utf-8" if codec == "utf-8-sig" else codec)
    except UnicodeDecodeError as exc:
        return _decode_error(raw, codec, exc, exc.start)
    return Ok(text[1:] if codec == "utf-8-sig" and text.startswith("\ufeff") else text)


def _in_memory(
    raw: RawFile, data: bytes, setting: str, declared: str | None
) -> Result[DecodedText, ErrInfo]:
    def done(name: str, codec: str, text: Result[str, ErrInfo]) -> Result[DecodedText, ErrInfo]:
        if isinstance(text, Err):
            return text
        return Ok(DecodedText(canonical(name), codec, text.value, None, data[:SNIFF_SIZE]))

    if setting != AUTO:
        return done(setting, _forced_codec(setting), _strict(raw, data, _forced_codec(setting)))
    bom = bom_codec(data)
    if bom is not None:
        return done(bom, _bom_decoder(bom), _strict(raw, data, _bom_decoder(bom)))
    try:
        return Ok(DecodedText("utf-8", "utf-8", data.decode("utf-8"), None, data[:SNIFF_SIZE]))
    except UnicodeDecodeError:
        pass
    stats = ByteStats()
    for block in _blocks_of(data):
        stats.add(block)
    for candidate in _candidates(data[:DETECT_SAMPLE], declared, stats):
        got = _strict(raw, data, candidate)
        if isinstance(got, Ok):
            return done(candidate, candidate, got)
    codec = stats.western_codec
    return done(codec, codec, Ok(data.decode(codec)))


def _known(codec: str | None) -> bool:
    if codec is None:
        return False
    try:
        check_encoding(codec)
    except ConfigError:
        return False
    return True


def _candidates(sample: bytes, declared: str | None, stats: ByteStats) -> list[str]:
    """Steps 3 and 5: codecs worth a strict try over the whole file, most trusted first."""
    out = [declared] if declared is not None and _known(declared) else []
    if not stats.western:
        guess = guess_codec(sample)
        if _known(guess):
            assert guess is not None
            out.append(guess)
    return out


# -- large files, streamed ------------------------------------------------------------------


def _validate(raw: RawFile, stream: VerifiedStream, codec: str) -> Err[ErrInfo] | None:
    """A pass over the whole file: None when ``codec`` decodes it, else its READ/DECODE.

    ``exc.start`` counts from the bytes the decoder held back from earlier blocks (a
    sequence split across blocks), so those are subtracted to name the file offset.
    """
    strict = "utf-8" if codec == "utf-8-sig" else codec
    decoder = codecs.getincrementaldecoder(strict)("strict")
    offset = 0
    blocks = stream.blocks()
    try:
        for block in blocks:
            held = _held(decoder)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return _decode_error(raw, codec, exc, offset - held + exc.start)
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return _decode_error(raw, codec, exc, offset - _held(decoder))
    finally:
        blocks.close()
    return None


def _held(decoder: codecs.IncrementalDecoder) -> int:
    state = decoder.getstate()[0]
    return len(state) if isinstance(state, bytes) else 0


@dataclass(slots=True)
class _FirstPass:
    utf8_ok: bool
    sample: bytes
    stats: ByteStats


def _first_pass(stream: VerifiedStream) -> _FirstPass:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    utf8_ok = True
    sample = b""
    stats = ByteStats()
    blocks = stream.blocks()
    try:
        for block in blocks:
            if not sample:
                sample = block[:DETECT_SAMPLE]
            stats.add(block)
            if utf8_ok:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8_ok = False
        if utf8_ok:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8_ok = False
    finally:
        blocks.close()
    return _FirstPass(utf8_ok, sample, stats)


def _streamed(
    raw: RawFile, stream: VerifiedStream, setting: str, declared: str | None
) -> Result[DecodedText, ErrInfo]:
    def checked(name: str, codec: str) -> Result[DecodedText, ErrInfo]:
        bad = _validate(raw, stream, codec)
        return (
            bad
            if bad is not None
            else Ok(DecodedText(canonical(name), codec, None, stream, raw.head))
        )

    if setting != AUTO:
        return checked(setting, _forced_codec(setting))
    bom = bom_codec(raw.head)
    if bom is not None:
        return checked(bom, _bom_decoder(bom))
    first = _first_pass(stream)
    if first.utf8_ok:
        return Ok(DecodedText("utf-8", "utf-8", None, stream, raw.head))
    for candidate in _candidates(first.sample, declared, first.stats):
        if _validate(raw, stream, candidate) is None:
            return Ok(DecodedText(canonical(candidate), candidate, None, stream, raw.head))
    codec = first.stats.western_codec
    return Ok(DecodedText(canonical(codec), codec, None, stream, raw.head))


def open_text(
    raw: RawFile, ledger: ResourceLedger, *, encoding: str = AUTO, declared: str | None = None
) -> Result[DecodedText, ErrInfo]:
    """Decide how ``raw`` decodes (the rule in the module docstring) and give its text.

    ``encoding`` is the setting (``auto`` or a codec); ``declared`` a charset the
    document names for itself. A file that cannot be decoded is one ``READ/DECODE``
    naming the byte offset; a streamed one that changed meanwhile ``READ/CHANGED``.
    """
    if raw.data is not None:
        return _in_memory(raw, raw.data, encoding, declared)
    stream = VerifiedStream(raw.source, raw.file_hash, ledger)
    try:
        return _streamed(raw, stream, encoding, declared)
    except FileChangedError as exc:
        return read_fail("READ/CHANGED", "file changed while it was read", raw.source, exc)
    except OSError as exc:
        return read_fail("READ/IO", "read failed", raw.source, exc)


__all__ = [
    "AUTO",
    "ByteStats",
    "DecodedText",
    "bom_codec",
    "canonical",
    "check_encoding",
    "guess_codec",
    "is_unicode_family",
    "open_text",
    "sniff_text",
]
