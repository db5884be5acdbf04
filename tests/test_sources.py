"""The walker (``iter_paths``) and the reader (``iter_documents``) on real trees.

Every walk goes through :func:`walk`, which reads the files with ``iter_documents`` and
checks that the :class:`ResourceLedger` it was given ends with nothing open.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.readers import Extraction, iter_documents, readers_for
from funcpipe_rag.readers.files import BLOCK_SIZE, MEMORY_READ_LIMIT
from funcpipe_rag.result import Err, ErrInfo, Ok, Result
from funcpipe_rag.walk import (
    WalkOptions,
    display_path,
    is_skip,
    iter_paths,
    read_path_list,
)

# -- helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk:
    """The outcome of walking and reading some roots, keyed by path relative to ``base``."""

    base: str
    results: list[Result[Extraction, ErrInfo]]
    files_acquired: int

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.base) if path.startswith(self.base) else path

    @property
    def docs(self) -> list[str]:
        """Relative display paths of the documents read, in walk order."""
        return [self._rel(r.value.document.source.path) for r in self.results if isinstance(r, Ok)]

    @property
    def errors(self) -> dict[str, ErrInfo]:
        """Relative display path -> the skip or failure of that path."""
        out: dict[str, ErrInfo] = {}
        for r in self.results:
            if isinstance(r, Err):
                assert r.error.path is not None
                out[self._rel(r.error.path)] = r.error
        return out

    @property
    def codes(self) -> dict[str, str]:
        return {p: e.code for p, e in self.errors.items()}

    @property
    def order(self) -> list[str]:
        """Every outcome's relative path, in the order the stream produced them."""
        out = []
        for r in self.results:
            path = r.value.document.source.path if isinstance(r, Ok) else r.error.path
            assert path is not None
            out.append(self._rel(path))
        return out


def walk(
    roots: list[Path | str],
    opts: WalkOptions | None = None,
    *,
    base: Path,
    encoding: str = "auto",
) -> Walk:
    """Walk and read ``roots``; assert the ledger given to ``iter_documents`` ends empty."""
    ledger = ResourceLedger()
    stream = iter_documents(
        iter_paths([os.fspath(r) for r in roots], opts),
        ledger,
        readers=readers_for(encoding=encoding),
    )
    try:
        results = list(stream)
    finally:
        stream.close()
    snap = ledger.snapshot()
    assert snap.open_total == 0, snap.open_labels
    assert not snap.cleanup_failures
    acquired = snap.by_kind["file"].acquired if "file" in snap.by_kind else 0
    return Walk(display_path(os.fspath(base)), results, acquired)


def write(path: Path, data: bytes | str = "some text\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def make_chain(base: Path, depth: int, name: str = "d") -> Path:
    """``base/d/d/.../d`` (``depth`` levels), made level by level (``os.makedirs``
    recurses once per level); returns the bottom directory."""
    current = base
    for _ in range(depth):
        current = current / name
        current.mkdir()
    return current


def remove_chain(base: Path, name: str = "d") -> None:
    """Remove a chain made by :func:`make_chain`, bottom-up and without recursion
    (Python 3.11's ``rmtree``, used by pytest's tmp_path cleanup, recurses per level)."""
    levels = [base]
    while (levels[-1] / name).is_dir() and not (levels[-1] / name).is_symlink():
        levels.append(levels[-1] / name)
    for directory in reversed(levels[1:]):
        for entry in os.listdir(directory):
            entry_path = directory / entry
            if entry_path.is_dir() and not entry_path.is_symlink():
                os.rmdir(entry_path)  # the level below, already emptied
            else:
                os.remove(entry_path)
    if len(levels) > 1:
        os.rmdir(levels[1])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def spy_open(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every path ``os.open`` is called with (the reader opens with ``os.open``)."""
    opened: list[str] = []
    real_open = os.open

    def spying_open(path: str | bytes | os.PathLike[str], *args: int, **kwargs: int) -> int:
        opened.append(display_path(os.fspath(path)))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spying_open)
    return opened


# -- order, hidden, globs --------------------------------------------------------------


def test_walk_is_sorted_depth_first_and_deterministic(root: Path) -> None:
    for rel in ["b.txt", "a/z.txt", "a.txt", "c/y/x.txt", "c/b.txt", "B.txt"]:
        write(root / rel, f"text of {rel}\n")
    first = walk([root], base=root)
    # Sorted by name at each level (code-point order: "B" < "a"), children before the
    # next sibling: "a" < "a.txt" < "b.txt" < "c".
    assert first.docs == ["B.txt", "a/z.txt", "a.txt", "b.txt", "c/b.txt", "c/y/x.txt"]
    assert first.errors == {}
    assert first.files_acquired == 6
    again = walk([root], base=root)
    assert again.docs == first.docs
    assert [r.value.document.file_hash for r in again.results if isinstance(r, Ok)] == [
        r.value.document.file_hash for r in first.results if isinstance(r, Ok)
    ]


def test_hidden_entries_and_git_are_skipped_by_default(root: Path) -> None:
    write(root / "visible.txt")
    write(root / ".hidden.txt")
    write(root / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(root / ".cache" / "deep" / "note.txt")
    write(root / "sub" / ".secret.txt")
    result = walk([root], base=root)
    assert result.docs == ["visible.txt"]
    assert result.errors == {}  # hidden entries are not walked at all, not skipped


def test_hidden_true_walks_hidden_entries_and_git(root: Path) -> None:
    write(root / "visible.txt")
    write(root / ".hidden.txt")
    write(root / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(root / "sub" / ".secret.txt")
    result = walk([root], WalkOptions(hidden=True), base=root)
    assert result.docs == [".git/HEAD", ".hidden.txt", "sub/.secret.txt", "visible.txt"]


def test_a_hidden_root_given_explicitly_is_walked(tmp_path: Path) -> None:
    hidden_root = tmp_path / ".notes"
    write(hidden_root / "a.txt")
    result = walk([hidden_root], base=hidden_root)
    assert result.docs == ["a.txt"]


def test_include_matches_name_or_relative_path(root: Path) -> None:
    for rel in ["a.md", "a.txt", "docs/b.md", "docs/c.txt", "docs/deep/d.txt"]:
        write(root / rel)
    by_name = walk([root], WalkOptions(include=("*.md",)), base=root)
    assert by_name.docs == ["a.md", "docs/b.md"]
    by_rel = walk([root], WalkOptions(include=("docs/*.txt",)), base=root)
    # fnmatch's "*" also matches "/", so docs/deep/d.txt matches too.
    assert by_rel.docs == ["docs/c.txt", "docs/deep/d.txt"]
    exact = walk([root], WalkOptions(include=("docs/c.txt",)), base=root)
    assert exact.docs == ["docs/c.txt"]
    assert by_name.errors == by_rel.errors == exact.errors == {}


def test_exclude_prunes_a_directory_by_name_or_relative_path(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ["keep.txt", "drafts/x.txt", "sub/drafts/y.txt", "sub/keep.txt", "sub/skip.log"]:
        write(root / rel)
    listed: list[str] = []
    real_scandir = os.scandir

    def spying_scandir(path: str) -> object:
        listed.append(os.path.relpath(path, root))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spying_scandir)
    result = walk([root], WalkOptions(exclude=("drafts", "sub/*.log")), base=root)
    assert result.docs == ["keep.txt", "sub/keep.txt"]
    # Pruned: an excluded directory is never listed, at any depth.
    assert sorted(listed) == [".", "sub"]


def test_include_does_not_prune_directories(root: Path) -> None:
    write(root / "docs" / "a.md")
    result = walk([root], WalkOptions(include=("*.md",)), base=root)
    assert result.docs == ["docs/a.md"]


# -- symlinks --------------------------------------------------------------------------


def test_symlink_to_a_file_outside_the_root_is_skipped(tmp_path: Path, root: Path) -> None:
    outside = write(tmp_path / "outside.txt", "secret\n")
    write(root / "inside.txt")
    (root / "link.txt").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)
    result = walk([root], base=root)
    assert result.docs == ["inside.txt"]
    assert result.codes == {"dirlink": "SKIP/SYMLINK_OUTSIDE", "link.txt": "SKIP/SYMLINK_OUTSIDE"}
    assert all(is_skip(e) for e in result.errors.values())


def test_symlink_to_a_file_inside_the_root_is_followed(root: Path) -> None:
    write(root / "real.txt")
    (root / "alias.txt").symlink_to("real.txt")
    result = walk([root], base=root)
    assert result.docs == ["alias.txt", "real.txt"]


@pytest.mark.timeout(20)
def test_symlink_loop_is_skipped_and_the_walk_terminates(root: Path) -> None:
    write(root / "a" / "file.txt")
    (root / "a" / "loop").symlink_to("..")
    (root / "a" / "self").symlink_to(".")
    write(root / "b.txt")
    result = walk([root], base=root)
    assert result.docs == ["a/file.txt", "b.txt"]
    assert result.codes == {"a/loop": "SKIP/SYMLINK_LOOP", "a/self": "SKIP/SYMLINK_LOOP"}
    assert all(is_skip(e) for e in result.errors.values())


@pytest.mark.timeout(20)
def test_symlink_cycle_between_two_directories_terminates(root: Path) -> None:
    write(root / "x" / "one.txt")
    write(root / "y" / "two.txt")
    (root / "x" / "to_y").symlink_to("../y")
    (root / "y" / "to_x").symlink_to("../x")
    result = walk([root], base=root)
    # Each folder is walked under every path that reaches it without a cycle: x, x/to_y,
    # y, y/to_x; a link back into a folder on its own path is the counted skip.
    assert result.docs == ["x/one.txt", "x/to_y/two.txt", "y/to_x/one.txt", "y/two.txt"]
    assert result.codes == {
        "x/to_y/to_x": "SKIP/SYMLINK_LOOP",
        "y/to_x/to_y": "SKIP/SYMLINK_LOOP",
    }


def test_a_link_to_a_sibling_folder_is_walked_not_a_loop(root: Path) -> None:
    # /usr/share/doc has g++ -> cpp-12 and the like: a second path to a folder that is
    # not an ancestor of the link. Its files are documents under their own paths.
    write(root / "cpp" / "README", "the C preprocessor\n")
    write(root / "cpp" / "sub" / "notes.txt", "notes\n")
    (root / "g++").symlink_to("cpp")
    write(root / "zz" / "deeper" / "more.txt", "more\n")
    (root / "zz" / "deeper" / "up").symlink_to("../../cpp")
    result = walk([root], base=root)
    assert result.errors == {}
    assert result.docs == [
        "cpp/README",
        "cpp/sub/notes.txt",
        "g++/README",
        "g++/sub/notes.txt",
        "zz/deeper/more.txt",
        "zz/deeper/up/README",
        "zz/deeper/up/sub/notes.txt",
    ]
    ids = {r.value.document.source.doc_id for r in result.results if isinstance(r, Ok)}
    assert len(ids) == 7  # distinct documents, one per path


def test_broken_symlink_is_skipped(root: Path) -> None:
    (root / "dangling.txt").symlink_to(root / "does-not-exist.txt")
    (root / "self_loop").symlink_to("self_loop")
    write(root / "ok.txt")
    result = walk([root], base=root)
    assert result.docs == ["ok.txt"]
    assert result.codes == {
        "dangling.txt": "SKIP/SYMLINK_BROKEN",
        "self_loop": "SKIP/SYMLINK_BROKEN",
    }


# -- special files ---------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_fifo_is_skipped_and_never_opened(root: Path, spy_open: list[str]) -> None:
    fifo = root / "pipe"
    os.mkfifo(fifo)
    write(root / "z.txt")
    result = walk([root], base=root)
    assert result.codes == {"pipe": "SKIP/SPECIAL"}
    assert result.errors["pipe"].stage == "walk"
    assert result.docs == ["z.txt"]
    assert str(fifo) not in spy_open
    assert spy_open == [str(root / "z.txt")]


@pytest.mark.timeout(20)
def test_fifo_given_directly_as_a_root_is_skipped(tmp_path: Path, spy_open: list[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = walk([fifo], base=tmp_path)
    assert result.codes == {"pipe": "SKIP/SPECIAL"}
    assert spy_open == []


def test_unix_socket_file_is_skipped(
    root: Path, spy_open: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bind with a short relative name: AF_UNIX paths are limited to ~108 bytes.
    monkeypatch.chdir(root)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("sock")
    assert stat.S_ISSOCK(os.lstat(root / "sock").st_mode)  # the file outlives the socket
    write(root / "a.txt")
    result = walk([root], base=root)
    assert result.codes == {"sock": "SKIP/SPECIAL"}
    assert result.docs == ["a.txt"]
    assert str(root / "sock") not in spy_open


# -- roots -----------------------------------------------------------------------------


def test_missing_root_is_walk_not_found_and_the_next_root_still_walks(tmp_path: Path) -> None:
    present = write(tmp_path / "present" / "a.txt")
    result = walk([tmp_path / "missing", present.parent], base=tmp_path)
    assert result.codes == {"missing": "WALK/NOT_FOUND"}
    assert not is_skip(result.errors["missing"])
    assert result.docs == ["present/a.txt"]


def test_a_file_given_as_root_is_taken_as_is(tmp_path: Path) -> None:
    # Hidden and excluded-looking names do not filter an explicit file root.
    f = write(tmp_path / ".given.md", "hello\n")
    result = walk([f], WalkOptions(exclude=("*.md",), include=("*.txt",)), base=tmp_path)
    assert result.docs == [".given.md"]
    doc = result.results[0]
    assert isinstance(doc, Ok)
    assert doc.value.document.source.fs_path == str(f)
    assert doc.value.document.source.size == len("hello\n")


def test_max_file_bytes_skips_larger_files(root: Path, spy_open: list[str]) -> None:
    write(root / "small.txt", b"x" * 100)
    write(root / "exact.txt", b"x" * 101)
    write(root / "big.txt", b"x" * 102)
    result = walk([root], WalkOptions(max_file_bytes=101), base=root)
    assert result.codes == {"big.txt": "SKIP/TOO_LARGE"}
    assert result.docs == ["exact.txt", "small.txt"]
    assert str(root / "big.txt") not in spy_open


# -- permissions -----------------------------------------------------------------------

# These tests run as root here, where chmod 000 does not stop reading (root bypasses
# file permission checks). The chmod tests assert the real outcome for the current user;
# the simulated tests make the OS call fail with EACCES so the error path is exercised
# whoever runs them.

IS_ROOT = os.geteuid() == 0


def test_unreadable_directory_chmod_000(root: Path) -> None:
    locked = root / "locked"
    write(locked / "inner.txt")
    write(root / "open.txt")
    locked.chmod(0)
    try:
        result = walk([root], base=root)
    finally:
        locked.chmod(0o755)
    if IS_ROOT:
        # Documented behaviour for root: mode bits do not block it, and the walker does
        # not second-guess the OS by checking mode bits itself.
        assert result.docs == ["locked/inner.txt", "open.txt"]
        assert result.errors == {}
    else:
        assert result.codes == {"locked": "WALK/LIST"}
        assert result.docs == ["open.txt"]


def test_unreadable_file_chmod_000(root: Path) -> None:
    secret = write(root / "secret.txt")
    write(root / "open.txt")
    secret.chmod(0)
    try:
        result = walk([root], base=root)
    finally:
        secret.chmod(0o644)
    if IS_ROOT:
        assert result.docs == ["open.txt", "secret.txt"]
    else:
        assert result.codes == {"secret.txt": "READ/PERMISSION"}
        assert result.docs == ["open.txt"]


def _deny(real: Callable[..., object], denied: str) -> Callable[..., object]:
    def fake(path: object, *args: object, **kwargs: object) -> object:
        if os.fspath(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return real(path, *args, **kwargs)

    return fake


def test_directory_that_cannot_be_listed_is_walk_list_and_the_walk_goes_on(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = root / "locked"
    write(locked / "inner.txt")
    write(root / "open.txt")
    monkeypatch.setattr(os, "scandir", _deny(os.scandir, str(locked)))
    result = walk([root], base=root)
    assert result.codes == {"locked": "WALK/LIST"}
    assert "PermissionError" in (result.errors["locked"].cause or "")
    assert not is_skip(result.errors["locked"])
    assert result.docs == ["open.txt"]


def test_root_that_cannot_be_listed_is_walk_list(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(root / "a.txt")
    monkeypatch.setattr(os, "scandir", _deny(os.scandir, str(root)))
    result = walk([root], base=root.parent)
    assert result.codes == {"root": "WALK/LIST"}
    assert result.docs == []


def test_file_that_cannot_be_opened_is_read_permission(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = write(root / "secret.txt")
    write(root / "open.txt")
    monkeypatch.setattr(os, "open", _deny(os.open, str(secret)))
    result = walk([root], base=root)
    assert result.codes == {"secret.txt": "READ/PERMISSION"}
    assert result.errors["secret.txt"].stage == "read"
    assert not is_skip(result.errors["secret.txt"])
    assert result.docs == ["open.txt"]
    assert result.files_acquired == 1


# -- the text policy -------------------------------------------------------------------


def test_binary_file_is_skipped(root: Path) -> None:
    write(root / "bin.dat", b"text then a NUL \x00 and more")
    write(root / "late_nul.txt", b"a" * 9000 + b"\x00")  # NUL after the first 8 KiB
    result = walk([root], base=root)
    assert result.codes == {"bin.dat": "SKIP/BINARY"}
    assert is_skip(result.errors["bin.dat"])
    assert result.docs == ["late_nul.txt"]


def test_empty_file_is_skipped(root: Path) -> None:
    write(root / "empty.txt", b"")
    result = walk([root], base=root)
    assert result.codes == {"empty.txt": "SKIP/EMPTY"}
    assert is_skip(result.errors["empty.txt"])
    assert result.files_acquired == 1  # opened, read, and closed again


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"ab\xffcd", 2),
        (b"\xff", 0),
        ("caf\u00e9 ".encode() + b"\xc3\x28", 6),  # bad continuation byte
        (b"\xef\xbb\xbfab\xff", 5),  # a BOM counts in the file's byte offsets
    ],
)
def test_invalid_utf8_is_read_decode_naming_the_byte_offset(
    root: Path, data: bytes, offset: int
) -> None:
    # Strict UTF-8 (--encoding utf-8); the default "auto" falls back instead (below).
    write(root / "bad.txt", data)
    write(root / "good.txt")
    result = walk([root], base=root, encoding="utf-8")
    err = result.errors["bad.txt"]
    assert err.code == "READ/DECODE"
    assert not is_skip(err)
    assert f"at byte {offset}" in err.msg
    assert result.docs == ["good.txt"]


def test_invalid_utf8_split_across_read_blocks_names_the_true_offset(root: Path) -> None:
    # A large file is streamed in 1 MiB blocks: the lead byte of a 2-byte sequence ends
    # one block and a bad continuation byte starts the next.
    lead_at = MEMORY_READ_LIMIT + BLOCK_SIZE - 1
    write(root / "bad.txt", b"a" * lead_at + b"\xc3\x28" + b"tail")
    result = walk([root], base=root, encoding="utf-8")
    assert result.codes == {"bad.txt": "READ/DECODE"}
    assert f"at byte {lead_at}" in result.errors["bad.txt"].msg


def test_valid_utf8_split_across_read_blocks_is_accepted(root: Path) -> None:
    write(root / "ok.txt", b"a" * (MEMORY_READ_LIMIT + BLOCK_SIZE - 1) + "\u00e9 end".encode())
    result = walk([root], base=root)
    assert result.docs == ["ok.txt"]
    (extraction,) = [r.value for r in result.results if isinstance(r, Ok)]
    assert "".join(p.text for p in extraction.pieces).endswith("a\u00e9 end")


def test_truncated_utf8_at_end_of_file_is_read_decode(root: Path) -> None:
    write(root / "cut.txt", b"abc\xe2\x82")
    result = walk([root], base=root, encoding="utf-8")
    assert result.codes == {"cut.txt": "READ/DECODE"}
    assert "truncated" in result.errors["cut.txt"].msg


@pytest.mark.parametrize("size", [0, MEMORY_READ_LIMIT + 1], ids=["in-memory", "streamed"])
def test_utf8_bom_is_dropped(root: Path, size: int) -> None:
    write(root / "bom.txt", b"\xef\xbb\xbfhello" + b" " * size)
    ledger = ResourceLedger()
    stream = iter_documents(iter_paths([root]), ledger)
    try:
        (r,) = list(stream)
        assert isinstance(r, Ok)
        text = "".join(p.text for p in r.value.pieces)
    finally:
        stream.close()
    assert text.rstrip(" ") == "hello"
    assert ledger.snapshot().open_total == 0


# -- depth and hostile names -----------------------------------------------------------


@pytest.fixture
def deep_root(root: Path) -> Iterator[Path]:
    yield root
    remove_chain(root)


@pytest.mark.timeout(60)
def test_thousand_deep_directory_chain_is_walked_without_recursion(deep_root: Path) -> None:
    bottom = make_chain(deep_root, 1000)
    write(bottom / "bottom.txt", "at the bottom\n")
    write(deep_root / "top.txt")
    result = walk([deep_root], base=deep_root)
    assert result.errors == {}
    assert result.docs == ["/".join(["d"] * 1000 + ["bottom.txt"]), "top.txt"]


def test_awkward_file_names_are_walked_with_text_display_paths(root: Path) -> None:
    write(root / "with space.txt", "spaced\n")
    write(root / "new\nline.txt", "newline\n")
    raw = os.path.join(os.fsencode(root), b"caf\xe9.txt")
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"latin-1 name, utf-8 text\n")
    finally:
        os.close(fd)
    result = walk([root], base=root)
    assert result.errors == {}
    assert sorted(result.docs) == ["caf\\xe9.txt", "new\nline.txt", "with space.txt"]
    for r in result.results:
        assert isinstance(r, Ok)
        src = r.value.document.source
        # The display path is real text: no lone surrogates, so it encodes and serialises.
        src.path.encode("utf-8")
        assert json.loads(json.dumps({"path": src.path})) == {"path": src.path}
        # ... while fs_path still opens the file (the bytes round-trip).
        assert os.path.exists(src.fs_path)
    by_name = {
        os.path.basename(r.value.document.source.path): r
        for r in result.results
        if isinstance(r, Ok)
    }
    assert os.fsencode(by_name["caf\\xe9.txt"].value.document.source.fs_path) == raw


def test_errors_for_non_utf8_names_are_json_serialisable(root: Path) -> None:
    raw = os.path.join(os.fsencode(root), b"bad\xff\xfe.txt")
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"\x00binary")
    finally:
        os.close(fd)
    result = walk([root], base=root)
    assert result.codes == {"bad\\xff\\xfe.txt": "SKIP/BINARY"}
    json.dumps(result.errors["bad\\xff\\xfe.txt"].to_jsonable())


# -- path lists ------------------------------------------------------------------------


def _blocks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# Names as the OS could hand them over: any bytes but the separator (and NUL, which no
# file name holds). Line names also do not end in "\r" (a CRLF ending is stripped).
_line_name = (
    st.binary(min_size=1, max_size=12)
    .map(lambda b: b.replace(b"\0", b"").replace(b"\n", b"").rstrip(b"\r"))
    .filter(bool)
)
_nul_name = st.binary(min_size=1, max_size=12).map(lambda b: b.replace(b"\0", b"")).filter(bool)


@given(
    names=st.lists(_line_name, max_size=8),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"]), min_size=8),
    final=st.sampled_from([b"", b"\n", b"\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_read_path_list_newline_separated_any_block_split(
    names: list[bytes], endings: list[bytes], final: bytes, cuts: list[int]
) -> None:
    parts = [n + e for n, e in zip(names, endings, strict=False)]
    data = b"".join(parts)
    if names:
        data = data[: -len(endings[len(names) - 1])] + final  # optional last terminator
    paths = list(read_path_list(iter(_blocks(data, cuts)), null_separated=False))
    assert [os.fsencode(p) for p in paths] == names
    assert all(isinstance(p, str) for p in paths)


@given(
    names=st.lists(_nul_name, max_size=8),
    blanks=st.lists(st.integers(min_value=1, max_value=3), min_size=8),
    final=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_read_path_list_nul_separated_any_block_split(
    names: list[bytes], blanks: list[int], final: bool, cuts: list[int]
) -> None:
    data = b"".join(n + b"\0" * k for n, k in zip(names, blanks, strict=False))
    if names and not final:
        data = data.rstrip(b"\0")
    paths = list(read_path_list(iter(_blocks(data, cuts)), null_separated=True))
    # Names may hold "\n" and "\r": with NUL separators they are part of the name.
    assert [os.fsencode(p) for p in paths] == names


def test_read_path_list_one_byte_blocks_split_everywhere(root: Path) -> None:
    # Every boundary at once: inside multi-byte characters, between "\r" and "\n".
    names = ["a.txt", "caf\u00e9 \u00fcber.txt", "sub/\u65e5\u672c.txt"]
    data = "\r\n".join(names).encode() + b"\r\n"
    one_byte = [data[i : i + 1] for i in range(len(data))]
    assert list(read_path_list(iter(one_byte), null_separated=False)) == names
    nul = "\0".join(names).encode()
    assert (
        list(read_path_list(iter([nul[i : i + 1] for i in range(len(nul))]), null_separated=True))
        == names
    )


def test_path_list_of_real_files_feeds_the_walker(root: Path) -> None:
    write(root / "a.txt")
    write(root / "new\nline.txt", "newline\n")
    raw_name = os.path.join(os.fsencode(root), b"caf\xe9.txt")
    fd = os.open(raw_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"text\n")
    finally:
        os.close(fd)
    listing = b"\0".join(
        [os.fsencode(root / "a.txt"), os.fsencode(root / "new\nline.txt"), raw_name, b"/no/such"]
    )
    paths = list(read_path_list(iter(_blocks(listing, [3, 40, 41, 90])), null_separated=True))
    result = walk(list(paths), base=root)
    assert result.docs == ["a.txt", "new\nline.txt", "caf\\xe9.txt"]
    assert result.codes == {"/no/such": "WALK/NOT_FOUND"}
