""".gitignore and .ignore in the walk, checked against git itself on the same tree.

git is the reference: ``git check-ignore`` answers each case of the table, and ``git
ls-files --others --exclude-standard`` lists exactly the files git would not ignore — the
walk must yield that same set. git reads no config of the user here (HOME is the test's
own folder, system config off), so only the tree's ignore files count.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from funcpipe_rag.result import Err, Ok
from funcpipe_rag.walk import WalkOptions, iter_paths

GITIGNORE = """\
# comments and blank lines are nothing

*.log
!keep.log
build/
/top-only.txt
docs/**/draft-*.md
secret?.txt
[Tt]emp/
\\#hash.txt
trailing-space.txt\\\x20
node_modules
*.tmp
!important.tmp
cache/*
!cache/readme.md
"""

NESTED_GITIGNORE = """\
# in pkg/: relative to pkg/
*.txt
!notes.txt
/local-only.md
generated/
"""

DEEPER_GITIGNORE = """\
# in pkg/sub/: re-include what pkg/ excluded
!*.txt
"""

FILES = [
    "a.log", "keep.log", "logs/x.log", "logs/keep.log",
    "build/out.bin", "src/build/out.bin", "build.txt",
    "top-only.txt", "src/top-only.txt",
    "docs/a/b/draft-1.md", "docs/draft-2.md", "docs/a/final.md",
    "secret1.txt", "secret12.txt",
    "temp/t.md", "Temp/t.md", "TEMP/t.md",
    "#hash.txt", "trailing-space.txt ", "trailing-space.txt",
    "node_modules/pkg/index.js", "src/node_modules", "node_modules.md",
    "x.tmp", "important.tmp",
    "cache/blob", "cache/readme.md", "cache/sub/deep.md",
    "pkg/a.txt", "pkg/notes.txt", "pkg/local-only.md", "pkg/deeper/local-only.md",
    "pkg/generated/g.py", "pkg/sub/b.txt", "pkg/sub/c.md", "pkg/code.py",
    "README.md",
]  # fmt: skip


def git(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tree.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(
        ["git", *args], cwd=tree, env=env, capture_output=True, text=True, check=check
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel in FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}\n")
    (root / ".gitignore").write_text(GITIGNORE)
    (root / "pkg" / ".gitignore").write_text(NESTED_GITIGNORE)
    (root / "pkg" / "sub" / ".gitignore").write_text(DEEPER_GITIGNORE)
    git(root, "init", "-q")
    return root


def walked(root: Path, **opts: bool) -> set[str]:
    out = set()
    for r in iter_paths([root], WalkOptions(hidden=True, **opts)):
        assert isinstance(r, Ok), r
        rel = os.path.relpath(r.value.fs_path, root)
        if not rel.startswith(".git" + os.sep):  # git's own folder is no document of git's
            out.add(rel)
    return out


def test_the_walk_yields_exactly_the_files_git_does_not_ignore(tree: Path) -> None:
    listed = git(tree, "ls-files", "--others", "--exclude-standard", "-z").stdout
    by_git = {p for p in listed.split("\0") if p}
    assert walked(tree) == by_git
    assert len(by_git) < len(FILES) + 3  # something was ignored
    assert walked(tree, ignore_files=False) == {*FILES, ".gitignore", "pkg/.gitignore",
                                                "pkg/sub/.gitignore"}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("a.log", True), ("keep.log", False), ("logs/x.log", True), ("logs/keep.log", False),
        ("build/out.bin", True), ("src/build/out.bin", True), ("build.txt", False),
        ("top-only.txt", True), ("src/top-only.txt", False),
        ("docs/a/b/draft-1.md", True), ("docs/draft-2.md", True), ("docs/a/final.md", False),
        ("secret1.txt", True), ("secret12.txt", False),
        ("temp/t.md", True), ("Temp/t.md", True), ("TEMP/t.md", False),
        ("#hash.txt", True), ("trailing-space.txt ", True), ("trailing-space.txt", False),
        ("node_modules/pkg/index.js", True), ("src/node_modules", True),
        ("node_modules.md", False), ("x.tmp", True), ("important.tmp", False),
        ("cache/blob", True), ("cache/readme.md", False), ("cache/sub/deep.md", True),
        ("pkg/a.txt", True), ("pkg/notes.txt", False), ("pkg/local-only.md", True),
        ("pkg/deeper/local-only.md", False), ("pkg/generated/g.py", True),
        ("pkg/sub/b.txt", False), ("pkg/sub/c.md", False), ("pkg/code.py", False),
        ("README.md", False),
    ],
)  # fmt: skip
def test_each_case_as_git_check_ignore_decides_it(tree: Path, path: str, ignored: bool) -> None:
    # The table states git's answer; check-ignore confirms it on this very tree, and the
    # walk agrees with both.
    proc = git(tree, "check-ignore", "-q", "--no-index", path, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    assert (proc.returncode == 0) is ignored
    assert (path not in walked(tree)) is ignored


def test_dot_ignore_files_are_honoured_and_override_gitignore(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for rel in ("a.md", "b.md", "c.md", "sub/d.md"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    (root / ".gitignore").write_text("a.md\nb.md\n")
    (root / ".ignore").write_text("!b.md\nc.md\n")
    (root / "sub" / ".ignore").write_text("*.md\n")
    assert walked(root) == {".gitignore", ".ignore", "b.md", "sub/.ignore"}


def test_an_ignored_root_named_on_the_command_line_is_still_walked(tmp_path: Path) -> None:
    # Only ignore files at or below the root count: the user asked for this folder.
    repo = tmp_path / "repo"
    (repo / "build").mkdir(parents=True)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "build" / "out.md").write_text("x\n")
    assert walked(repo / "build") == {"out.md"}
    assert walked(repo) == {".gitignore"}


def test_no_ignore_over_the_cli_walks_everything(tmp_path: Path) -> None:
    from tests.cli.helpers import run_cli

    root = tmp_path / "docs"
    (root / "node_modules").mkdir(parents=True)
    (root / ".gitignore").write_text("node_modules/\n")
    (root / "a.md").write_text("alpha text\n")
    (root / "node_modules" / "b.md").write_text("beta text\n")
    db = tmp_path / "x.db"
    first = run_cli("ingest", str(root), "--index", str(db), "--jsonl", "--report", "none")
    paths = {line.split('"path": "')[1].split('"')[0] for line in first.stdout.splitlines()}
    assert paths == {str(root / "a.md")}
    second = run_cli(
        "ingest", str(root), "--index", str(db), "--jsonl", "--report", "none", "--no-ignore"
    )
    paths = {line.split('"path": "')[1].split('"')[0] for line in second.stdout.splitlines()}
    assert paths == {str(root / "node_modules" / "b.md")}  # a.md is unchanged
    assert first.returncode == second.returncode == 0


def test_an_unreadable_or_odd_ignore_file_is_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.md").write_text("x\n")
    (root / ".gitignore").write_text("[unclosed\n!\n\\\na.md\n")
    results = list(iter_paths([root], WalkOptions()))
    assert not any(isinstance(r, Err) for r in results)
    assert walked(root) == {".gitignore"}
