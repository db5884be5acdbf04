"""In-process, deterministic feature-hashing embedder (the default embedder).

No server, no model download, no I/O: a text becomes a vector by hashing its lexical
features into ``dim`` buckets.

Algorithm (model ``hash-ngram-v1``)
-----------------------------------
1. Normalise non-ASCII text to Unicode NFC (so a precomposed and a decomposed ``é``
   are the same letter), lowercase it (``str.lower``) and split it into Unicode-aware
   word tokens with the regex ``\\w+`` (letters, digits and ``_`` of any script).
2. Features, each with a base weight:

   * word unigrams ``"word"`` -- weight 1.0;
   * word bigrams of adjacent tokens ``("circuit", "breaker")`` -- weight 0.5;
   * character trigrams of each word with boundary markers, ``"<wo"``, ``"wor"``,
     ``"ord"``, ``"rd>"`` (a one-letter word gives ``"<a>"``) -- weight 0.35, so
     morphological variants (``embed`` / ``embedding`` / ``embeddings``) share most of
     their trigram mass and land close together.

3. Sublinear term frequency: a feature that occurs ``tf`` times in the text
   contributes ``base_weight * (1 + ln tf)``, so repeated words do not dominate.
   (A trigram shared by several words of the text counts once per occurrence.)
4. Signed feature hashing: every feature gets a 32-bit id -- the CRC-32 of its UTF-8
   bytes for unigrams and trigrams, a SplitMix64 mix of the two word ids for bigrams,
   with the low two bits overwritten by the feature kind so kinds never collide. The
   MurmurHash3 32-bit finalizer of the id picks the bucket (``mod dim``) and the sign
   (top bit), and the signed weight is added to that bucket. Random signs make
   colliding features cancel in expectation instead of piling up, so inner products
   stay unbiased.
5. Each row is L2-normalised, so the dot product of two vectors is their cosine
   similarity. A text with no word tokens (empty, whitespace or punctuation only)
   has no features and gives an **all-zero row** (norm 0, not 1); callers that need a
   direction must treat such rows as "no signal".

Determinism
-----------
Python's built-in ``hash()`` of a ``str`` is salted per process (``PYTHONHASHSEED``),
so it is never used. CRC-32 (``zlib.crc32``), SplitMix64 and the MurmurHash3
finalizer are fixed, specified functions computed in fixed-width unsigned integer
arithmetic on the feature's UTF-8 bytes, so buckets and signs are identical in every
process, on every machine and in every Python version. The floating-point part
(``log``, sums in index order, the norm) is the same sequence of operations on every
call and independent of which other texts share the batch, so vectors are
bit-for-bit identical across runs on one platform; across CPUs or NumPy builds the
last bit of a float32 may in principle differ (NumPy's SIMD ``log``), never more.
Any change to tokenisation, features, weights or hashing needs a new model name: an
index built with ``hash-ngram-v1`` holds exactly that vector space.

Speed
-----
ASCII text is tokenised with one ``bytes.translate`` + ``split()`` (same tokens as
the regex), per-word feature ids are cached process-wide, and all counting, hashing
and scattering of a batch happens in a few vectorised NumPy calls.

Limits
------
This is purely lexical: it matches shared words, word pairs and spelling fragments,
not meaning. Synonyms (``car`` / ``automobile``), paraphrases and cross-language
matches score near zero, word order beyond adjacent pairs and negation are
invisible, and scripts written without spaces (Chinese, Japanese, Thai) become one
long "word" per run of characters, matched only through its trigrams. With many more
features per text than buckets, hash collisions add noise of order ``1 / sqrt(dim)``
to every cosine. Use a neural embedder when semantic recall matters.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from funcpipe_rag.errors import ConfigError

__all__ = ["HASH_EMBEDDER_VERSION", "HashEmbedder"]

HASH_EMBEDDER_VERSION: Final = "hash-ngram-v1"
"""The default (and so far only) model name; it names the exact vector space."""

_KNOWN_MODELS: Final = frozenset({HASH_EMBEDDER_VERSION})
_MIN_DIM: Final = 8
_MAX_DIM: Final = 65536

_TOKEN_RE: Final = re.compile(r"\w+")
_ASCII_WORD_TABLE: Final = (
    bytes(
        b | 0x20 if 0x41 <= b <= 0x5A else b if chr(b).isalnum() or b == 0x5F else 0x20
        for b in range(128)
    )
    + b" " * 128
)

# Feature kinds live in the two low bits of a feature id.
_KIND_MASK: Final = 3
_UNIGRAM: Final = 0
_BIGRAM: Final = 1
_TRIGRAM: Final = 2
_KIND_WEIGHTS: Final = (1.0, 0.5, 0.35, 0.0)  # unigram, bigram, trigram, (unused)
# Indexed by kind | sign_bit << 2: the base weight with its hash-chosen sign.
_SIGNED_WEIGHTS: Final = np.array(_KIND_WEIGHTS + tuple(-w for w in _KIND_WEIGHTS))

# Limits of one vectorised pass: feature-id bytes (4 per id) and output cells.
_GROUP_ID_BYTES: Final = 48 * 1024
_GROUP_CELLS: Final = 32 * 1024

# Per-word feature ids depend only on the word (not on dim or the instance), so one
# module-wide cache serves every embedder. Values are pure functions of the key, so
# clearing it (or concurrent use from threads) never changes a result.
_WORD_CACHE_MAX: Final = 100_000

_U64_32: Final = np.uint64(32)
_U32_13: Final = np.uint32(13)
_U32_16: Final = np.uint32(16)
_ID_MASK: Final = np.uint32(0xFFFFFFFF & ~_KIND_MASK)
_SENTINEL: Final = np.uint32(0xFFFFFFFF)  # kind bits 3: never a feature id


def _word_feature_ids(word: str) -> bytes:
    """Native-endian uint32 ids: the word's unigram id, then its trigram ids."""
    ids = [(zlib.crc32(word.encode()) & ~_KIND_MASK) | _UNIGRAM]
    marked = f"<{word}>"
    ids.extend(
        (zlib.crc32(marked[i : i + 3].encode()) & ~_KIND_MASK) | _TRIGRAM
        for i in range(len(marked) - 2)
    )
    return np.array(ids, dtype=np.uint32).tobytes()


def _crc3_tables() -> npt.NDArray[np.uint32]:
    """``T[i][b]``: the CRC-32 of the 3-byte message with byte ``b`` at place ``i`` and
    zeros elsewhere. CRC-32 is affine over GF(2), so for any three bytes
    ``crc32(bytes([a, b, c])) == T[0][a] ^ T[1][b] ^ T[2][c]`` (three terms: the
    constant cancels in pairs and stays once). Checked against ``zlib`` on import."""
    tables = np.array(
        [
            [zlib.crc32(bytes(b if j == i else 0 for j in range(3))) for b in range(256)]
            for i in range(3)
        ],
        dtype=np.uint32,
    )
    for probe in (b"<a>", b"the", b"zz>", b"\x00\x7f\xff"):
        assert int(tables[0][probe[0]] ^ tables[1][probe[1]] ^ tables[2][probe[2]]) == (
            zlib.crc32(probe)
        )
    return tables


_CRC3: Final = _crc3_tables()


def _ascii_words_feature_ids(words: Sequence[bytes]) -> list[bytes]:
    """:func:`_word_feature_ids` of many ASCII words at once (the same bytes).

    The trigrams of all words are hashed in a few vectorised calls (CRC-32 of three
    bytes by table, see :func:`_crc3_tables`); a word miss in the cache cost ~15 Python
    operations per letter before, most of a real corpus's embedding time.
    """
    n = len(words)
    lens = np.fromiter(map(len, words), dtype=np.intp, count=n)
    marked = np.frombuffer(b"<" + b"><".join(words) + b">", dtype=np.uint8)
    total = int(lens.sum())
    # Word k's marked form starts at starts[k]; its trigrams start at each of its letters'
    # places minus one, i.e. at starts[k] + 0 .. len(k) - 1.
    starts = np.cumsum(lens + 2) - (lens + 2)
    first_of = np.repeat(np.cumsum(lens) - lens, lens)
    at = np.repeat(starts, lens) + (np.arange(total) - first_of)
    t = _CRC3
    tri = (t[0][marked[at]] ^ t[1][marked[at + 1]] ^ t[2][marked[at + 2]]) & _ID_MASK
    # Out: per word its unigram id, then its trigram ids (len + 1 ids).
    out = np.empty(total + n, dtype=np.uint32)
    heads = np.cumsum(lens + 1) - (lens + 1)
    out[heads] = [zlib.crc32(w) & ~_KIND_MASK for w in words]  # unigram kind is 0
    is_tri = np.ones(total + n, dtype=bool)
    is_tri[heads] = False
    out[is_tri] = tri | _TRIGRAM
    blob = out.tobytes()
    ends = (heads + lens + 1) * 4
    return [blob[a:b] for a, b in zip((heads * 4).tolist(), ends.tolist(), strict=True)]


class _WordCache:
    """``word -> feature-id bytes``, computed for a batch's new words together.

    ASCII words arrive as ``bytes`` (see :func:`_tokens`), others as ``str``; both
    spellings of a word map to the same ids. The ids live in a plain ``dict``: finding
    a batch's new words is one ``set.difference`` against it at C speed (a ``dict``
    subclass makes CPython take its slow paths: measured 10x slower per batch).

    Threads: :meth:`fill` returns the lookup of a dict that holds every word it was
    given. A full cache is replaced by a new dict, never cleared, so a lookup another
    thread still holds keeps every word it needs.
    """

    def __init__(self) -> None:
        self._ids: dict[str | bytes, bytes] = {}

    def fill(self, words: set[str | bytes]) -> Callable[[str | bytes], bytes]:
        """Compute every word of ``words`` not cached yet (ASCII ones vectorised) and
        return a lookup that holds all of ``words``."""
        ids = self._ids
        missing = words.difference(ids)
        if not missing:
            return ids.__getitem__
        if len(ids) + len(missing) > _WORD_CACHE_MAX:
            ids = self._ids = {}
            missing = words
        # Words of ASCII texts are bytes (nearly all of them); a str is a word of a
        # text with other letters, ASCII or not.
        as_bytes = [w for w in missing if isinstance(w, bytes)]
        ascii_strs: list[str] = []
        if len(as_bytes) < len(missing):
            for w in missing:
                if isinstance(w, str):
                    if w.isascii():
                        ascii_strs.append(w)
                        as_bytes.append(w.encode("ascii"))
                    else:
                        ids[w] = _word_feature_ids(w)
        if as_bytes:
            ids.update(zip(as_bytes, _ascii_words_feature_ids(as_bytes), strict=True))
            # An ASCII str word is stored under its str spelling as well.
            for w in ascii_strs:
                ids[w] = ids[w.encode("ascii")]
        return ids.__getitem__


_WORD_CACHE: Final = _WordCache()


def _tokens(text: str) -> list[str] | list[bytes]:
    """The ``\\w+`` tokens of ``text``, NFC-normalised and lowercased.

    ASCII text (the common case) takes a fast path with the same result: one
    ``bytes.translate`` lowercases it and blanks every byte outside ``[A-Za-z0-9_]``
    (exactly what ``\\w`` matches in ASCII), then ``split()`` cuts the tokens.
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORD_TABLE).split()
    return _TOKEN_RE.findall(unicodedata.normalize("NFC", text).lower())


def _fmix32(h: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """MurmurHash3's 32-bit finalizer: a fixed, well-mixing bijection on uint32."""
    h = h ^ (h >> _U32_16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> _U32_13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> _U32_16)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finalizer: a fixed, well-mixing bijection on uint64 (wraps, no warnings)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class HashEmbedder:
    """Deterministic signed feature-hashing embedder; see the module docstring.

    ``dim`` must be in [8, 65536]; ``model`` must be a known model name (only
    ``"hash-ngram-v1"`` today). The attributes ``name``, ``model`` and ``dim`` identify
    the vector space; treat them as read-only. Safe to share between threads.
    """

    name: str = "hash"

    def __init__(self, *, dim: int = 384, model: str = HASH_EMBEDDER_VERSION) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise ConfigError(f"hash embedder dim must be an int, got {dim!r}")
        if not _MIN_DIM <= dim <= _MAX_DIM:
            raise ConfigError(f"hash embedder dim must be in [{_MIN_DIM}, {_MAX_DIM}], got {dim}")
        if model not in _KNOWN_MODELS:
            known = ", ".join(sorted(_KNOWN_MODELS))
            raise ConfigError(f"unknown hash embedder model {model!r} (known: {known})")
        self.model: str = model
        self.dim: int = dim

    def __repr__(self) -> str:
        return f"HashEmbedder(dim={self.dim}, model={self.model!r})"

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), dim)``.

        Each row is L2-normalised; a text with no word tokens gives an all-zero row.
        A row depends only on its own text, never on the rest of the batch.
        """
        if isinstance(texts, str):
            raise TypeError("embed_texts expects a sequence of texts, not a single str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens = [_tokens(text) for text in texts]
        lookup = _WORD_CACHE.fill(set().union(*tokens))
        per_text = [b"".join(map(lookup, words)) for words in tokens]
        # Vectorise over groups of texts small enough that NumPy's temporaries stay
        # below glibc's mmap/trim thresholds: bigger groups made the allocator hand
        # memory back to the OS after every batch and re-fault it (~30% slower).
        max_rows = max(1, _GROUP_CELLS // self.dim)
        start = budget = 0
        for i, ids in enumerate(per_text):
            if i > start and (budget + len(ids) > _GROUP_ID_BYTES or i - start >= max_rows):
                self._embed_group(per_text[start:i], out[start:i])
                start, budget = i, 0
            budget += len(ids)
        if start < len(per_text):
            self._embed_group(per_text[start:], out[start:])
        return out

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query into a 1-D float32 vector of length ``dim``."""
        return self.embed_texts([text]).reshape(self.dim)

    def _embed_group(self, per_text: list[bytes], out: npt.NDArray[np.float32]) -> None:
        """Write the vectors of texts given as feature-id bytes into zeroed ``out`` rows."""
        n, dim = len(per_text), self.dim
        ids = np.frombuffer(b"".join(per_text), dtype=np.uint32)
        if ids.size == 0:
            return
        n_ids = np.fromiter((len(b) >> 2 for b in per_text), dtype=np.intp, count=n)
        rows = np.repeat(np.arange(n, dtype=np.intp), n_ids)

        # Bigrams: adjacent unigram ids within the same text, mixed into one new id.
        is_uni = (ids & _KIND_MASK) == _UNIGRAM
        uni, uni_rows = ids[is_uni].astype(np.uint64), rows[is_uni]
        same_text = uni_rows[:-1] == uni_rows[1:]
        pair = (uni[:-1][same_text] << _U64_32) | uni[1:][same_text]
        bigrams = ((_splitmix64(pair) >> _U64_32).astype(np.uint32) & _ID_MASK) | _BIGRAM
        bi_rows = uni_rows[:-1][same_text]
        n_bi = np.bincount(bi_rows, minlength=n)

        # One row per text, padded with a sentinel no feature id can equal (kind 3).
        # Sorting many short rows is several times faster than one long sort.
        width = int((n_ids + n_bi).max())
        grid = np.full((n, width), _SENTINEL, dtype=np.uint32)
        grid[rows, np.arange(ids.size) - np.repeat(np.cumsum(n_ids) - n_ids, n_ids)] = ids
        bi_cols = n_ids[bi_rows] + np.arange(bigrams.size) - np.repeat(np.cumsum(n_bi) - n_bi, n_bi)
        grid[bi_rows, bi_cols] = bigrams
        grid.sort(axis=1)

        # Runs of equal ids in a row are one feature; the run length is its tf.
        flat = grid.ravel()
        starts = np.empty(flat.size, dtype=bool)
        starts[0] = True
        np.not_equal(flat[1:], flat[:-1], out=starts[1:])
        starts[::width] = True
        first = np.flatnonzero(starts)
        tf = np.diff(first, append=flat.size)
        feat = flat[first]
        real = feat != _SENTINEL
        first, tf, feat = first[real], tf[real], feat[real]

        mixed = _fmix32(feat)
        sign_kind = (feat & _KIND_MASK) | ((mixed >> 29) & 4)
        signed = _SIGNED_WEIGHTS[sign_kind] * (1.0 + np.log(tf))
        cells = (first // width) * dim + (mixed % dim).astype(np.intp)
        vecs = np.bincount(cells, weights=signed, minlength=n * dim).reshape(n, dim)

        # Row-wise pairwise sums: the same rounding wherever a row sits in the group.
        norms = np.sqrt(np.square(vecs).sum(axis=1, keepdims=True))
        np.divide(vecs, norms, out=out, where=norms > 0.0, casting="same_kind")
