"""The one exception tree of funcpipe.

Per-item failures never raise: they travel as ``Err(ErrInfo)`` values through the
stream. Exceptions are for configuration errors (raised when a function is called,
not at the first ``next()``), misuse of a closed resource, and cleanup failures::

    FuncpipeError
    ├── ConfigError            bad arguments or settings; the CLI exits 2
    │   ├── IndexMismatchError the index holds another vector space
    │   └── IndexDamagedError  the index file is corrupt, altered or not an index
    ├── ResourceClosedError    a client, index or pool used after close()
    ├── CleanupError           a close() failed with no other exception in flight
    ├── IndexLockedError       another writer holds the index past the timeout
    ├── IndexWriteError        the index cannot store a batch (disk full, I/O error)
    │   └── IndexUnavailableError  the index's database server cannot be reached
    └── EmbeddingUnavailableError  a one-off embedding (a search query) failed

    RunInterrupted (a BaseException, like KeyboardInterrupt): SIGTERM during a run
"""

from __future__ import annotations


class FuncpipeError(Exception):
    """Base class of every exception funcpipe raises on purpose."""


class ConfigError(FuncpipeError, ValueError):
    """Bad arguments or settings; raised eagerly, before any I/O or iteration.

    A ``ValueError`` too, so callers that validate with ``except ValueError`` keep working.
    """


class IndexMismatchError(ConfigError):
    """The index was built with another embedder, model, dimension or chunker."""


class IndexDamagedError(ConfigError):
    """The index is damaged or was altered outside funcpipe (a missing table, a corrupt
    page); nothing is repaired silently. ``funcpipe verify`` lists what is wrong."""


class ResourceClosedError(FuncpipeError, RuntimeError):
    """A resource was used after it was closed."""


class CleanupError(FuncpipeError):
    """One or more cleanup steps failed while no other exception was in flight.

    ``errors`` keeps every failure in the order they happened; the first is also the
    ``__cause__``.
    """

    def __init__(self, message: str, errors: list[BaseException]) -> None:
        super().__init__(message)
        self.errors = errors


class IndexLockedError(FuncpipeError):
    """Another process holds the index's write lock longer than the busy timeout."""


class IndexWriteError(FuncpipeError):
    """A write transaction failed (disk full, I/O error, read-only media) and was rolled
    back: nothing of that batch is stored, and nothing of it may be claimed."""


class IndexUnavailableError(IndexWriteError):
    """The index's database server refused the connection or went away mid-run (a
    restart, a network failure). Mid-run it ends the run like any failed write: what
    committed stays stored, nothing else is claimed."""


class EmbeddingUnavailableError(FuncpipeError):
    """The embedding server could not embed a single, non-streamed input (a query)."""


class RunInterrupted(BaseException):
    """A signal asked the run to stop (SIGTERM); like ``KeyboardInterrupt`` it is not an
    ``Exception``, so no ``except Exception`` on the way swallows it.

    ``exit_code`` is the shell convention, 128 + the signal number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum
