"""The public surface is named once: api.core's __all__ and its re-exports agree."""

from __future__ import annotations

import subprocess
import sys

import funcpipe_rag.api.core as core


def test_all_is_sorted_and_complete() -> None:
    exported = {
        name
        for name, value in vars(core).items()
        if (
            not name.startswith("_") and getattr(value, "__module__", "").startswith("funcpipe_rag")
        )
        or name in {"Result", "Option", "Nothing"}
    }
    assert core.__all__ == sorted(core.__all__)
    assert set(core.__all__) == exported


def test_every_name_resolves() -> None:
    for name in core.__all__:
        assert getattr(core, name) is not None, name


def test_importing_the_library_imports_neither_typer_nor_rich() -> None:
    code = (
        "import sys, funcpipe_rag.api.core;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'typer', 'rich'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
