"""Encodings: UTF-8 first, a recorded fallback, BOMs, forced codecs — on real files.

The files are written by Python's own codecs (the encoders every other tool uses), in
memory-sized and streamed (larger than the in-memory limit) variants, and read through
the real walk + read + extract stages.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from funcpipe_rag.errors import ConfigError
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import iter_documents, readers_for
from funcpipe_rag.readers.decoding import check_encoding
from funcpipe_rag.readers.files import MEMORY_READ_LIMIT
from funcpipe_rag.result import Err
from funcpipe_rag.walk import iter_paths

FRENCH = (
    "Le cœur de François bat à l'unisson: «déjà vu», naïve façade, où est la clé?\n"
    "Ça coûte 20 € — pas cher.\n"
)
GERMAN = "Grüße aus Köln: Straße, Mädchen, Übermut.\n"
# From CPython's Lib/test/cjkencodings samples (the full-width comma is the text's own).
CHINESE = (
    "如何在 Python 中使用既有的 C library? 在資訊科技快速發展的今天"
    "\uff0c開發及測試軟體的速度是不容忽視的課題。\n"
)
JAPANESE = (
    "Python の開発は、1990 年ごろから開始されています。"
    "開発者の Guido van Rossum は教育用のプログラミング言語の開発に参加していました。\n"
)
STREAMED = MEMORY_READ_LIMIT + 1


def read_one(path: Path, encoding: str = "auto") -> tuple[str, str] | Err[object]:
    """(text, recorded encoding) of one file, or its Err; the ledger must end empty."""
    ledger = ResourceLedger()
    stream = iter_documents(iter_paths([path]), ledger, readers=readers_for(encoding=encoding))
    try:
        (r,) = list(stream)
        if isinstance(r, Err):
            return r
        pieces = r.value.pieces
        try:
            text = "".join(p.text for p in pieces)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        result = (text, r.value.document.encoding)
    finally:
        stream.close()
    assert ledger.snapshot().open_total == 0
    return result


def padded(text: str, size: int) -> str:
    """``text`` followed by ASCII filler up to about ``size`` characters."""
    filler = "plain ascii filler line\n"
    return text + filler * max(0, (size - len(text)) // len(filler) + 1) if size else text


@pytest.mark.parametrize("size", [0, STREAMED], ids=["in-memory", "streamed"])
@pytest.mark.parametrize(
    ("text", "codec", "recorded"),
    [
        (FRENCH, "cp1252", "cp1252"),  # € and œ exist in cp1252 only
        (GERMAN, "latin-1", "cp1252"),  # Latin-1 letters read the same through cp1252
        (GERMAN + "\x81", "latin-1", "iso8859-1"),
    ],
    ids=["cp1252", "latin-1-as-cp1252", "latin-1-with-a-cp1252-hole"],
)
def test_western_8bit_files_are_read_and_the_encoding_recorded(
    tmp_path: Path, size: int, text: str, codec: str, recorded: str
) -> None:
    body = padded(text, size)
    path = tmp_path / "notes.txt"
    path.write_bytes(body.encode(codec))
    got = read_one(path)
    assert got == (body, recorded)


@pytest.mark.parametrize("size", [0, STREAMED], ids=["in-memory", "streamed"])
@pytest.mark.parametrize(
    ("text", "codec"),
    [(CHINESE * 8, "big5"), (JAPANESE * 8, "shift_jis"), (JAPANESE * 8, "euc_jp")],
)
def test_cjk_files_are_detected(tmp_path: Path, size: int, text: str, codec: str) -> None:
    body = padded(text, size)
    path = tmp_path / "cjk.txt"
    path.write_bytes(body.encode(codec))
    got = read_one(path)
    assert not isinstance(got, Err)
    assert got[0] == body
    # The detector may name a superset (cp932 for Shift_JIS): the text is what counts.
    assert got[1] != "utf-8"


@pytest.mark.parametrize("size", [0, STREAMED], ids=["in-memory", "streamed"])
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_with_a_bom_are_text(tmp_path: Path, size: int, codec: str) -> None:
    width = 2 if "16" in codec else 4
    body = padded(GERMAN + CHINESE, size // width)
    bom = codecs.lookup(codec).encode("\ufeff")[0]
    path = tmp_path / "wide.txt"
    path.write_bytes(bom + body.encode(codec))
    assert read_one(path) == (body, codec)


@pytest.mark.parametrize("size", [0, STREAMED], ids=["in-memory", "streamed"])
def test_utf8_bom_is_dropped_and_recorded_as_utf8(tmp_path: Path, size: int) -> None:
    body = padded(FRENCH, size)
    path = tmp_path / "bom.txt"
    path.write_bytes(codecs.BOM_UTF8 + body.encode())
    assert read_one(path) == (body, "utf-8")


def test_a_utf16_file_whose_bom_lies_is_one_read_decode(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(
        codecs.BOM_UTF16_LE + "ok".encode("utf-16-le") + b"\x00\xdc"
    )  # lone low surrogate
    got = read_one(path)
    assert isinstance(got, Err)
    assert got.error.code == "READ/DECODE"
    assert "at byte 6" in got.error.msg


@pytest.mark.parametrize("size", [0, STREAMED], ids=["in-memory", "streamed"])
def test_a_forced_codec_is_used_for_every_file(tmp_path: Path, size: int) -> None:
    body = padded("Привет, мир: съешь же ещё этих мягких французских булок.\n", size)
    path = tmp_path / "ru.txt"
    path.write_bytes(body.encode("koi8-r"))
    assert read_one(path, "koi8-r") == (body, "koi8-r")


@pytest.mark.parametrize("size", [0, STREAMED], ids=["in-memory", "streamed"])
def test_forced_utf8_names_the_offset_of_the_first_bad_byte(tmp_path: Path, size: int) -> None:
    prefix = padded("", size).encode()
    path = tmp_path / "latin.txt"
    path.write_bytes(prefix + GERMAN.encode("latin-1"))
    got = read_one(path, "utf-8")
    assert isinstance(got, Err)
    assert got.error.code == "READ/DECODE"
    assert f"not valid UTF-8 at byte {len(prefix) + 2}" in got.error.msg  # the ü of Grüße
    assert isinstance(read_one(path), tuple)  # while auto reads it


def test_a_forced_utf16_reads_a_file_without_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes(GERMAN.encode("utf-16-le"))
    assert isinstance(read_one(path), Err)  # NUL bytes and no BOM: binary for auto
    assert read_one(path, "utf-16-le") == (GERMAN, "utf-16-le")


@pytest.mark.parametrize("bad", ["no-such-codec", "rot13", "base64", ""])
def test_an_encoding_python_cannot_decode_text_with_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="encoding must be"):
        check_encoding(bad)


def test_same_bytes_same_decision_in_memory_and_streamed(tmp_path: Path) -> None:
    # The rule is a function of the bytes: a file just under and one just over the
    # in-memory limit, with the same kind of content, decide alike.
    small = tmp_path / "small.txt"
    large = tmp_path / "large.txt"
    small.write_bytes(padded(CHINESE * 40, MEMORY_READ_LIMIT - 4096).encode("gb18030"))
    large.write_bytes(padded(CHINESE * 40, STREAMED).encode("gb18030"))
    a, b = read_one(small), read_one(large)
    assert isinstance(a, tuple) and isinstance(b, tuple)
    assert a[1] == b[1]
    assert a[0].startswith(CHINESE) and b[0].startswith(CHINESE)
