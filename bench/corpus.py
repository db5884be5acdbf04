"""The real corpus the benchmarks read, and the baseline build they compare against.

Real corpus: files nobody on the team wrote — CPython's standard library and
``/usr/share/doc`` (about 3,600 files, 64 MB; a 300-file subset beside it), made by the
workplace's ``build_real_corpus.py``. It is built once into ``.bench/corpus`` (never
committed) unless ``FUNCPIPE_BENCH_CORPUS`` names an existing one. The tool is looked
for at ``FUNCPIPE_CORPUS_TOOL`` or ``../shared/tools/build_real_corpus.py``.

Baseline: ``git worktree`` of an older commit under ``.bench/``, so a benchmark can run
the code as it was and as it is in one run, on the same corpus, side by side (a ratio
of two numbers measured minutes apart on a shared machine would mean little).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".bench"
# The commit issue 15 measured ("today" in its targets): before any of its speed-ups.
BASELINE_COMMIT = "74256c1"
# main before issue 15's index-write work (FTS5 + vector blocks merged): the "before" of
# ``python -m bench real-hash``.
MAIN_COMMIT = "5e53c30"


def real_corpus(which: str = "full") -> Path:
    """``full`` (about 3,600 files) or ``small`` (300): built on first use."""
    given = os.environ.get("FUNCPIPE_BENCH_CORPUS")
    root = Path(given) if given else WORK / "corpus"
    if not (root / which).is_dir():
        tool = Path(
            os.environ.get("FUNCPIPE_CORPUS_TOOL")
            or REPO.parent / "shared" / "tools" / "build_real_corpus.py"
        )
        if not tool.exists():
            raise SystemExit(
                f"no real corpus at {root} and no build_real_corpus.py at {tool}: set "
                "FUNCPIPE_BENCH_CORPUS to a corpus folder (with full/ and small/) or "
                "FUNCPIPE_CORPUS_TOOL to the tool"
            )
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(tool), "--out", str(root)], check=True)
    return root / which


def baseline_src(commit: str = BASELINE_COMMIT) -> Path:
    """The ``src`` folder of ``commit`` checked out beside the repository (once)."""
    tree = WORK / f"baseline-{commit}"
    if not (tree / "src").is_dir():
        WORK.mkdir(exist_ok=True)
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--force", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
    return tree / "src"


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def texts_by_kind(root: Path) -> dict[str, list[str]]:
    """The corpus's files as text, ``code`` (``*.py``) apart from ``prose`` (the rest)."""
    groups: dict[str, list[str]] = {"code": [], "prose": []}
    for path in corpus_files(root):
        text = path.read_bytes().decode("utf-8", "replace")
        groups["code" if path.suffix == ".py" else "prose"].append(text)
    return groups
