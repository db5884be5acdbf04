"""Readers: what the encoding rule gets right and costs, parsers side by side, and
end-to-end chunks/s with the format readers against plain strict UTF-8 text.

* **encodings** — on the real corpus (``/work/corpus/full``, or ``$FUNCPIPE_CORPUS``):
  (a) its files that are not valid UTF-8, whose true encodings their names and coding
  cookies state (:data:`TRUTH`); (b) every UTF-8 file with non-ASCII letters, re-encoded
  by Python's codecs into the legacy encoding of its script (Latin text to cp1252,
  Cyrillic to koi8-r and cp1251, Han to gbk, kana to shift_jis and euc-jp, Hangul to
  euc-kr, Greek to cp1253). Each method decodes the bytes; right means the exact text.
  Methods: the cp1252/Latin-1 rule alone, charset-normalizer alone, and funcpipe's rule.
* **markdown** — the heading scanner against markdown-it-py's block parser (inline off).
* **html** — html.parser (what the reader uses) against lxml's feed parser (the ``bench``
  extra), on real HTML pages (``/usr/share/doc``) and on a 50 MB single-line page in a
  subprocess each (peak RSS, ``VmHWM``).
* **pipeline** — walk + read + extract + chunk in process (800/100), with the readers
  (``encoding auto``) and with the plain text reader in strict UTF-8 (the "before"), on a
  generated mixed-format tree and on the real corpus; plus ``funcpipe ingest`` end to end
  (hash embedder, SQLite index) on both.

Run: ``python -m bench readers``.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from funcpipe_rag.chunking.chunks import iter_chunks
from funcpipe_rag.chunking.splitter import ChunkerSettings
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import DocumentReader, iter_documents, readers_for
from funcpipe_rag.readers.decoding import ByteStats, guess_codec
from funcpipe_rag.readers.text import TextReader
from funcpipe_rag.result import Ok
from funcpipe_rag.walk import WalkOptions, iter_paths

from .bench_ingest import run_ingest

Row = dict[str, Any]
CORPUS = Path(os.environ.get("FUNCPIPE_CORPUS", "/work/corpus/full"))

# The corpus files that are not UTF-8, and what they are (file names, coding cookies).
TRUTH = {
    "stdlib/test/cjkencodings/big5.txt": "big5",
    "stdlib/test/cjkencodings/big5hkscs.txt": "big5hkscs",
    "stdlib/test/cjkencodings/cp949.txt": "cp949",
    "stdlib/test/cjkencodings/euc_jisx0213.txt": "euc_jisx0213",
    "stdlib/test/cjkencodings/euc_jp.txt": "euc_jp",
    "stdlib/test/cjkencodings/euc_kr.txt": "euc_kr",
    "stdlib/test/cjkencodings/gb18030.txt": "gb18030",
    "stdlib/test/cjkencodings/gb2312.txt": "gb2312",
    "stdlib/test/cjkencodings/gbk.txt": "gbk",
    "stdlib/test/cjkencodings/johab.txt": "johab",
    "stdlib/test/cjkencodings/shift_jis.txt": "shift_jis",
    "stdlib/test/cjkencodings/shift_jisx0213.txt": "shift_jisx0213",
    "stdlib/test/encoded_modules/module_iso_8859_1.py": "iso-8859-1",
    "stdlib/test/encoded_modules/module_koi8_r.py": "koi8-r",
    "stdlib/test/test_source_encoding.py": "koi8-r",  # its coding cookie
    "stdlib/test/tokenizedata/badsyntax_pep3120.py": "latin-1",  # "böse", on purpose
    "doc/ed/AUTHORS": "latin-1",  # "François Pinard"
}
SCRIPT_CODECS = {
    "latin": ("cp1252",),
    "cyrillic": ("koi8-r", "cp1251"),
    "han": ("gbk",),
    "kana": ("shift_jis", "euc-jp"),
    "hangul": ("euc-kr",),
    "greek": ("cp1253",),
}


# -- encodings ------------------------------------------------------------------------------


def _rule(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _detector(data: bytes) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return str(best) if best is not None else _rule(data)


def _funcpipe(data: bytes) -> str:
    """The reader's own rule, on bytes in memory (UTF-8 is excluded by construction)."""
    stats = ByteStats()
    stats.add(data)
    if not stats.western:
        guess = guess_codec(data[: 1 << 20])
        if guess is not None:
            try:
                return data.decode(guess)
            except (UnicodeDecodeError, LookupError):
                pass
    return data.decode(stats.western_codec)


METHODS: dict[str, Callable[[bytes], str]] = {
    "cp1252/Latin-1 rule": _rule,
    "charset-normalizer": _detector,
    "funcpipe (rule + detector for byte runs)": _funcpipe,
}


def _script(text: str) -> str | None:
    counts: collections.Counter[str] = collections.Counter()
    for ch in text:
        if ord(ch) < 128 or not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        for key, word in (("han", "CJK"), ("kana", "HIRAGANA"), ("kana", "KATAKANA"),
                          ("hangul", "HANGUL"), ("cyrillic", "CYRILLIC"), ("latin", "LATIN"),
                          ("greek", "GREEK")):  # fmt: skip
            if word in name:
                counts[key] += 1
                break
    return counts.most_common(1)[0][0] if counts else None


def _samples(corpus: Path) -> list[tuple[str, bytes, str, str]]:
    """(set, bytes, expected text, codec) of the real and the re-encoded files."""
    out = []
    for rel, codec in TRUTH.items():
        path = corpus / rel
        if path.exists():
            data = path.read_bytes()
            out.append(("real non-UTF-8", data, data.decode(codec), codec))
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        script = None if text.isascii() else _script(text)
        for codec in SCRIPT_CODECS.get(script or "", ()):
            with contextlib.suppress(UnicodeEncodeError):
                out.append((f"re-encoded {codec}", text.encode(codec), text, codec))
    return out


def bench_encodings(corpus: Path = CORPUS) -> list[Row]:
    if not corpus.is_dir():
        return [{"name": "encodings", "note": f"corpus {corpus} not found: not measured"}]
    samples = _samples(corpus)
    rows: list[Row] = []
    groups = sorted({s[0] for s in samples}, key=lambda g: (g != "real non-UTF-8", g))
    for method, fn in METHODS.items():
        right: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        spent = 0.0
        for group, data, text, _ in samples:
            t0 = time.perf_counter()
            got = fn(data)
            spent += time.perf_counter() - t0
            total[group] += 1
            right[group] += got == text
        row: Row = {"name": f"encodings: {method}"}
        for g in groups:
            row[g] = f"{right[g]}/{total[g]}"
        row["ms_per_file"] = round(1000 * spent / len(samples), 2)
        rows.append(row)
    return rows


# -- markdown ------------------------------------------------------------------------------


def bench_markdown(corpus: Path = CORPUS) -> list[Row]:
    from markdown_it import MarkdownIt

    from funcpipe_rag.readers.mdscan import MarkdownScanner

    files = sorted(corpus.rglob("*.md")) if corpus.is_dir() else []
    if not files:
        return [{"name": "markdown", "note": "no corpus: not measured"}]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    chars = sum(len(t) for t in texts)

    def scan() -> None:
        for t in texts:
            s = MarkdownScanner()
            for line in t.split("\n"):
                s.feed(line)

    md = MarkdownIt("commonmark").disable("inline")

    def parse() -> None:
        for t in texts:
            md.parse(t)

    rows = []
    for name, fn in (("markdown: funcpipe heading scanner", scan),
                     ("markdown: markdown-it-py block parse (inline off)", parse)):  # fmt: skip
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        rate = round(chars / 1e6 / dt, 2)
        rows.append({"name": name, "files": len(files), "mchars": round(chars / 1e6, 2),
                     "seconds": round(dt, 2), "mchars_per_s": rate})  # fmt: skip
    return rows


# -- html ----------------------------------------------------------------------------------

HTML_PROBE = textwrap.dedent(
    """
    import glob, json, os, sys, time, codecs
    from html.parser import HTMLParser
    kind, paths = sys.argv[1], sys.argv[2:]
    class Std(HTMLParser):
        n = 0
        def handle_data(self, d): self.n += len(d)
    class Target:
        n = 0
        def data(self, d): self.n += len(d)
        def close(self): return self.n
    def blocks(path):
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        with open(path, "rb") as f:
            while b := f.read(1 << 16):
                yield dec.decode(b)
    t0 = time.perf_counter(); size = 0
    for path in paths:
        size += os.path.getsize(path)
        if kind == "html.parser":
            p = Std()
            for t in blocks(path): p.feed(t)
            p.close()
        else:
            from lxml import etree
            p = etree.HTMLParser(target=Target(), recover=True, no_network=True, huge_tree=True)
            for t in blocks(path): p.feed(t)
            p.close()
    dt = time.perf_counter() - t0
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"mb": size / 1e6, "seconds": dt, "hwm_mb": hwm / 1024}))
    """
)


def _html_probe(kind: str, paths: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", HTML_PROBE, kind, *paths],
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def bench_html(tmp: Path) -> list[Row]:
    real = [p for p in sorted(glob.glob("/usr/share/doc/**/*.htm*", recursive=True))
            if os.path.isfile(p)]  # fmt: skip
    big = tmp / "one-line-50mb.html"
    unit = (
        "<h2>Section &amp; more</h2><p>Some <b>bold</b> text with an entity &eacute; and a "
        "<a href='https://x.example/'>link</a>.</p><script>var x = '<p>no</p>';</script>"
    )
    with big.open("w") as f:
        f.write("<html><body>")
        for _ in range(50_000_000 // len(unit)):
            f.write(unit)
    rows = []
    for kind in ("html.parser", "lxml"):
        for label, paths in ((f"{len(real)} real pages", real), ("50 MB, one line", [str(big)])):
            if not paths:
                continue
            got = _html_probe(kind, paths)
            if "error" in got:
                rows.append(
                    {"name": f"html: {kind}, {label}", "note": f"not measured: {got['error']}"}
                )
                continue
            rows.append({"name": f"html: {kind}, {label}", "mb": round(got["mb"], 1),
                         "seconds": round(got["seconds"], 2),
                         "mb_per_s": round(got["mb"] / got["seconds"], 1),
                         "peak_rss_mb": round(got["hwm_mb"], 1)})  # fmt: skip
    return rows


# -- the pipeline ----------------------------------------------------------------------------


def write_mixed_tree(root: Path, n_docs: int = 240) -> None:
    """Markdown with front matter and headings, HTML pages, notebooks, Latin-1 and plain
    text: a quarter each, about 12 KB of text apiece, deterministic."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from .bench_chunking import paragraphs

    stream = paragraphs(4242)

    def text(n: int) -> list[str]:
        return [next(stream) for _ in range(n)]

    for i in range(n_docs):
        folder = root / f"d{i % 12:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 4
        if kind == 0:
            body = "".join(f"## Part {j}\n\n" + "\n\n".join(text(4)) + "\n\n" for j in range(4))
            (folder / f"doc{i}.md").write_text(f"---\ntitle: Doc {i}\n---\n# Doc {i}\n\n{body}")
        elif kind == 1:
            body = "".join(f"<h2>Part {j}</h2>" + "".join(f"<p>{p}</p>\n" for p in text(4))
                           for j in range(4))  # fmt: skip
            (folder / f"page{i}.html").write_text(
                f"<!DOCTYPE html><html><head><title>Page {i}</title><script>var a=1;</script>"
                f"</head><body><h1>Page {i}</h1>{body}</body></html>"
            )
        elif kind == 2:
            cells = []
            for j in range(4):
                cells.append(new_markdown_cell(f"## Step {j}\n\n" + "\n\n".join(text(2))))
                cells.append(new_code_cell("\n".join(f"x{k} = {k} * {j}" for k in range(20))))
            nbformat.write(new_notebook(cells=cells), str(folder / f"nb{i}.ipynb"))
        else:
            words = "\n\n".join(text(16)).replace("e", "\u00e9", 3)
            (folder / f"notes{i}.txt").write_bytes(words.encode("latin-1", "replace"))


def _chunk_all(root: Path, readers: Iterable[DocumentReader]) -> tuple[int, int, float]:
    ledger = ResourceLedger()
    t0 = time.perf_counter()
    stage = iter_chunks(
        iter_documents(iter_paths([root], WalkOptions()), ledger, readers=tuple(readers)),
        ChunkerSettings(chunk_size=800, overlap=100),
        space="bench",
    )
    chunks = failed = 0
    try:
        for r in stage:
            if isinstance(r, Ok):
                chunks += 1
            elif not r.error.code.startswith("SKIP/"):
                failed += 1
    finally:
        stage.close()
    return chunks, failed, time.perf_counter() - t0


def bench_pipeline(tmp: Path, corpus: Path = CORPUS) -> list[Row]:
    mixed = tmp / "mixed"
    write_mixed_tree(mixed)
    trees = [("mixed-format tree", mixed)]
    if corpus.is_dir():
        trees.append((f"real corpus ({corpus.name})", corpus))
    setups: list[tuple[str, tuple[DocumentReader, ...]]] = [
        ("readers, encoding auto", readers_for()),
        ("readers, encoding utf-8 (no detection)", readers_for(encoding="utf-8")),
        ("before: plain text, strict UTF-8", (TextReader("utf-8"),)),
    ]
    rows: list[Row] = []
    for tree_name, root in trees:
        for setup, readers in setups:
            best = min((_chunk_all(root, readers) for _ in range(3)), key=lambda r: r[2])
            chunks, failed, seconds = best
            rows.append({"name": f"pipeline: {tree_name}, {setup}", "chunks": chunks,
                         "failed_files": failed, "seconds": round(seconds, 3),
                         "chunks_per_s": round(chunks / seconds)})  # fmt: skip
        work = tmp / "work"
        work.mkdir(exist_ok=True)
        s = run_ingest(root, work, index=True)
        stored, wall = s["chunks"]["stored"], s["timing"]["wall_s"]
        by_reader = s["files"]["by_reader"]
        rows.append({"name": f"ingest e2e (hash, SQLite): {tree_name}", "chunks": stored,
                     "failed_files": s["files"]["failed"], "seconds": round(wall, 3),
                     "chunks_per_s": round(stored / wall) if wall else 0,
                     "peak_rss_mb": s["peak_rss_mb"],
                     "by_reader": ", ".join(f"{k} {v}" for k, v in by_reader.items())})  # fmt: skip
    return rows


def bench_readers() -> list[Row]:
    rows = bench_encodings()
    rows += bench_markdown()
    with tempfile.TemporaryDirectory(prefix="funcpipe-bench-readers-") as tmp:
        rows += bench_html(Path(tmp))
        rows += bench_pipeline(Path(tmp))
    return rows


if __name__ == "__main__":
    for row in bench_readers():
        print(row)
