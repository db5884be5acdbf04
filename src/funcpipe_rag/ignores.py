"""``.gitignore`` and ``.ignore`` files, with git's semantics, for the walk.

The patterns are git's own (pathspec's ``GitIgnoreSpec``: ``*``, ``**``, ``?``, ``[...]``,
negation ``!``, directory-only ``dir/``, anchored ``/name`` or ``a/b``), never matched by
hand here. What this module adds is git's layering:

* each directory's ignore files apply to the paths below it, relative to it;
* a deeper directory's rules override its ancestors' (the deepest file with a matching
  pattern decides, and within a file the last matching line);
* ``.ignore`` (as ripgrep and fd read it) overrides ``.gitignore`` in the same directory;
* an ignored directory is not entered, so nothing below it can be re-included — as in
  git, where "it is not possible to re-include a file if a parent directory of that file
  is excluded".

Only the walked root and the folders under it are read (not ``.git/info/exclude``, the
global excludes file or ignore files above the root): a folder named on the command line
is walked even when an ignore file above it would exclude it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .policies.interrupts import deferred_interrupts

if TYPE_CHECKING:  # imported when a tree has an ignore file: most runs never need it
    from pathspec import GitIgnoreSpec

IGNORE_FILES = (".gitignore", ".ignore")  # later files override earlier ones
_MAX_IGNORE_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class _Layer:
    spec: GitIgnoreSpec
    strip: int  # characters of a walk-relative path before this layer's folder's paths


def _compile(lines: list[str]) -> GitIgnoreSpec | None:
    """The spec of ``lines``; a line git would not understand is dropped, not fatal."""
    from pathspec import GitIgnoreSpec

    try:
        spec = GitIgnoreSpec.from_lines(lines)
    except ValueError:
        good: list[str] = []
        for line in lines:
            try:
                GitIgnoreSpec.from_lines([line])
            except ValueError:
                continue
            good.append(line)
        spec = GitIgnoreSpec.from_lines(good)
    return spec if len(spec) else None


def read_ignore_files(directory: str) -> GitIgnoreSpec | None:
    """The rules that ``directory``'s own ignore files hold, or None.

    An ignore file that cannot be read (or is not a regular file, or is larger than
    1 MiB) is treated as absent: the walk then shows more, never less.
    """
    lines: list[str] = []
    for name in IGNORE_FILES:
        data = _read_small(os.path.join(directory, name))
        if data is not None:
            lines += data.decode("utf-8", "surrogateescape").splitlines()
    return _compile(lines) if lines else None


def _read_small(path: str) -> bytes | None:
    """A regular file's bytes, up to 1 MiB; opened non-blocking so a FIFO cannot hang."""
    # The whole read is one deferred section (a bounded read of a small regular file):
    # an interrupt raised between os.open returning and the try would leak the descriptor.
    with deferred_interrupts():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            os.set_blocking(fd, True)
            parts: list[bytes] = []
            size = 0
            while size <= _MAX_IGNORE_FILE and (block := os.read(fd, 1 << 16)):
                parts.append(block)
                size += len(block)
        except OSError:
            return None
        finally:
            os.close(fd)
    return b"".join(parts) if size <= _MAX_IGNORE_FILE else None


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """The ignore rules in force in one folder of a walk: its own and its ancestors'.

    Immutable: :meth:`descend` returns the rules of a subfolder, so leaving a folder
    restores its parent's rules for free.

    >>> IgnoreRules.NONE.ignored("build/x.o", is_dir=False)
    False
    """

    layers: tuple[_Layer, ...] = ()

    NONE: ClassVar[IgnoreRules]  # set below: rules that ignore nothing

    def descend(self, directory: str, rel: str) -> IgnoreRules:
        """The rules inside ``directory`` (``rel`` to the walked root, "" for the root):
        these plus the folder's own ignore files, if it has any."""
        spec = read_ignore_files(directory)
        if spec is None:
            return self
        return IgnoreRules((*self.layers, _Layer(spec, len(rel) + 1 if rel else 0)))

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether the entry at ``rel`` (relative to the walked root, ``/``-separated)
        is ignored; directories are matched as ``name/`` so ``dir/`` patterns apply."""
        for layer in reversed(self.layers):
            path = rel[layer.strip :] + ("/" if is_dir else "")
            verdict = layer.spec.check_file(path).include
            if verdict is not None:
                return verdict
        return False


IgnoreRules.NONE = IgnoreRules()


__all__ = ["IGNORE_FILES", "IgnoreRules", "read_ignore_files"]
