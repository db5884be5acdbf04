"""The high-level ``ingest``: walk, read, chunk, embed, break, store, report.

The CLI is a thin shell over :func:`ingest`. One owner holds every resource: the run
enters the embedder, the index, the worker threads and the pipeline into a single
:class:`~funcpipe_rag.policies.resources.CleanupStack`, so on every exit path — normal
end, breaker trip, an exception, Ctrl-C, SIGTERM, a closed stdout — they are released
in reverse order: the pipeline first (closing every stage above it, any open file and
the requests in flight), then the sink commits the chunks already embedded and joins
its index writer thread, then the parser processes are stopped and reaped, then the
worker threads are joined, then the index and the embedder close. Paid vectors never
wait for any of that: they are stored as soon as they arrive (a free embedder's, see
``EmbedderKind.free``, are stored with their chunks instead). The returned
:class:`RunSummary` is built after all of it, from the ledger and the operating
system's counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from .changes import ChangeCheck
from .chunking.chunks import Chunk, ChunkWithoutEmbedding, iter_chunks
from .config import RunSettings
from .embedders.base import Embedder, embed_chunks
from .embedders.registry import content_space, kind_of, open_embedder
from .errors import ConfigError, FuncpipeError, IndexWriteError, RunInterrupted
from .index import (
    ContentClaims,
    FileShare,
    IndexSpace,
    PendingChunk,
    VectorIndex,
    index_name,
    open_index,
)
from .index.base import FileStream
from .index.cache import VectorCache
from .index.local import LocalShare
from .index.writer import IndexWriter
from .policies.breakers import BreakInfo, circuit_breaker_rate_emit
from .policies.ledger import ResourceLedger, os_snapshot, use_ledger
from .policies.resources import CleanupStack
from .readers import (
    ParserPool,
    RawFile,
    extract_documents,
    open_parser_pool,
    read_files,
    readers_for,
)
from .result import Err, ErrInfo, Ok, Result
from .streams import Stage, sfilter
from .summary import (
    EXIT_SIGINT,
    EXIT_SIGPIPE,
    RunStats,
    RunSummary,
    exit_code_for,
    leak_detected,
)
from .walk import SourceFile, display_path, is_skip, iter_paths

ProgressFn = Callable[[RunStats], None]
ResultHook = Callable[[Result[Chunk, Any]], "bool | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestRequest:
    """What to ingest and where the results go.

    >>> IngestRequest(roots=("docs",), settings=RunSettings())
    >>> IngestRequest(path_list=iter(["a.md", "b.md"]), settings=RunSettings(), use_index=False)
    >>> IngestRequest(roots=("docs",), settings=RunSettings(), jsonl=sys.stdout, with_vectors=True)
    """

    settings: RunSettings
    roots: tuple[str, ...] = ()
    path_list: Iterable[str] | None = None
    use_index: bool = True
    jsonl: TextIO | None = None
    with_vectors: bool = False
    prune_listed: bool = False
    reembed: bool = False

    def __post_init__(self) -> None:
        if not self.roots and self.path_list is None:
            raise ConfigError("nothing to ingest: give a PATH, or '-' to read paths from stdin")


def chunk_record(chunk: Chunk, *, with_vectors: bool) -> dict[str, Any]:
    """The NDJSON record of one stored chunk (the README documents the schema)."""
    c = chunk.chunk
    record: dict[str, Any] = {
        "chunk_id": c.chunk_id,
        "doc_id": c.doc_id,
        "path": c.path,
        "seq": c.seq,
        "start": c.start,
        "end": c.end,
        "content_hash": c.content_hash,
        "title": c.doc.title,
        "section": c.section,
        "page": c.page,
        "reader": c.doc.reader,
        "encoding": c.doc.encoding,
        "text": c.text,
    }
    if with_vectors:
        record["embedding"] = [float(x) for x in chunk.embedding]
    return record


class _UnwrittenVectors:
    """The vectors of a free embedder (see ``EmbedderKind.free``) that wait to be stored
    with their chunks: made, accepted by the sink, not yet in the index.

    Lookups see them before the index, so a content met again before its chunk is
    written is reused exactly as if its vector had been stored at once (the run's counts
    and the index's rows are the same either way). Bounded by the sink's batches in
    flight.
    """

    def __init__(self, index: VectorIndex) -> None:
        self._index = index
        self._vectors: dict[str, bytes] = {}

    def lookup(self, content_hashes: Sequence[str]) -> dict[str, bytes]:
        vectors = self._vectors
        found = {h: vectors[h] for h in content_hashes if h in vectors}
        rest = [h for h in content_hashes if h not in found]
        if rest:
            found.update(self._index.fetch_vectors(rest))
        return found

    def add(self, chunk: Chunk) -> None:
        if not chunk.reused:
            h = chunk.chunk.content_hash
            # copy=False: the row is float32 already on little-endian machines (one copy less)
            self._vectors.setdefault(h, chunk.embedding.astype("<f4", copy=False).tobytes())

    def of(self, batch: Sequence[Chunk]) -> dict[str, bytes]:
        """The vectors ``batch`` made (to store before its chunk rows)."""
        vectors = self._vectors
        return {
            c.chunk.content_hash: vectors[c.chunk.content_hash]
            for c in batch
            if not c.reused and c.chunk.content_hash in vectors
        }

    def stored(self, content_hashes: Iterable[str]) -> None:
        for h in content_hashes:
            self._vectors.pop(h, None)


@dataclass(frozen=True, slots=True)
class _Written:
    """A batch handed to the index writer: its chunks, and the vectors it stores."""

    chunks: list[Chunk]
    vectors: tuple[str, ...]


class _Sink:
    """Writes chunks to the index in batches and NDJSON for what each batch stored —
    so neither stdout nor the counts ever claim a chunk the index does not hold.

    The writes run on a thread of their own (:class:`~.index.writer.IndexWriter`), up
    to ``depth`` batches ahead; a batch is counted and printed, in order, on the
    consuming thread once the writer has stored it.
    """

    def __init__(
        self,
        index: VectorIndex | None,
        out: TextIO | None,
        stats: RunStats,
        seen: set[str],
        *,
        commit_every: int,
        with_vectors: bool,
        ledger: ResourceLedger | None = None,
        unwritten: _UnwrittenVectors | None = None,
        depth: int = 2,
    ) -> None:
        self._index = index
        self._out = out
        self._stats = stats
        self._seen = seen
        self._commit_every = commit_every
        self._with_vectors = with_vectors
        self._unwritten = unwritten
        self._writer: IndexWriter[_Written] | None = None
        if index is not None:
            self._writer = IndexWriter(
                index, ledger if ledger is not None else ResourceLedger(), self._stored,
                depth=depth,
            )  # fmt: skip
        # Invariant: _batch holds the chunks accepted since the last write, in order.
        self._batch: list[Chunk] = []
        self._failed_docs: set[str] = set()
        self._out_broken = False
        self.breaker: BreakInfo[Any] | None = None
        self.write_error: IndexWriteError | None = None

    def accept(self, r: Result[Chunk, ErrInfo | BreakInfo[Any]]) -> None:
        stats = self._stats
        if isinstance(r, Ok):
            chunk = r.value
            if chunk.reused:
                stats.chunks_reused += 1
            else:
                stats.chunks_embedded += 1
            self._batch.append(chunk)
            if self._unwritten is not None:
                self._unwritten.add(chunk)
            if self._index is None or len(self._batch) >= self._commit_every:
                self._submit()
            return
        err = r.error
        if isinstance(err, BreakInfo):
            self.breaker = err
            return
        stats.errors.add_error(err)
        doc_id = err.ctx.get("doc_id")
        if isinstance(doc_id, str):
            self._seen.add(doc_id)  # the file exists: an incremental run keeps its chunks
        if err.stage == "embed":
            stats.chunks_failed += 1
            if isinstance(doc_id, str):
                self._failed_docs.add(doc_id)
        else:
            stats.files_failed += 1

    def _pending(self, c: ChunkWithoutEmbedding) -> PendingChunk:
        src = c.doc.source
        return PendingChunk(
            chunk_id=c.chunk_id,
            doc_id=c.doc_id,
            path=c.path,
            abs_path=src.abs_path,
            seq=c.seq,
            start=c.start,
            end=c.end,
            text=c.text,
            content_hash=c.content_hash,
            doc_size=src.size,
            doc_mtime_ns=src.mtime_ns,
            doc_hash=c.doc.file_hash,
            doc_signature=src.signature,
            last_of_doc=c.is_last,
            doc_failed=c.doc_id in self._failed_docs,
            reader=c.doc.reader,
            encoding=c.doc.encoding,
            title=c.doc.title,
            section=c.section,
            page=c.page,
        )

    def _submit(self) -> None:
        """Hand the batch to the writer (or, without an index, count and print it)."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        writer = self._writer
        if writer is None:
            self._stored(_Written(batch, ()))
            return
        vectors = self._unwritten.of(batch) if self._unwritten is not None else {}
        try:
            writer.submit(
                [self._pending(c.chunk) for c in batch], vectors, _Written(batch, tuple(vectors))
            )
        except IndexWriteError as exc:
            self.write_error = exc
            raise

    def commit(self) -> None:
        """Write the batch and wait until everything accepted is stored; only once a
        batch is stored is it counted and printed.

        A failed write stores nothing of the batch (one transaction), so nothing of it
        is claimed: the error is kept and raised, and the run stops honestly (no batch
        behind it is written).
        """
        self._submit()
        if self._writer is not None:
            try:
                self._writer.drain()
            except IndexWriteError as exc:
                self.write_error = exc
                raise

    def _stored(self, written: _Written) -> None:
        """A batch is in the index: count it, print it."""
        batch = written.chunks
        if self._unwritten is not None:
            self._unwritten.stored(written.vectors)
        stats = self._stats
        stats.chunks_stored += len(batch)
        stats.files_ingested += sum(
            1 for c in batch if c.chunk.is_last and c.chunk.doc_id not in self._failed_docs
        )
        self._emit(batch)

    def _emit(self, chunks: list[Chunk]) -> None:
        out = self._out
        if out is None or self._out_broken:
            return
        try:
            out.write(
                "".join(
                    json.dumps(chunk_record(c, with_vectors=self._with_vectors), ensure_ascii=False)
                    + "\n"
                    for c in chunks
                )
            )
            out.flush()
        except BrokenPipeError:
            self._out_broken = True
            raise

    def finish(self) -> None:
        """Store what is left on every exit path: it is embedded, paid for, and must not
        be lost. A write that fails here is kept in ``write_error`` — it is the run's
        outcome to report, not a resource that failed to close. The writer thread is
        joined on every path (after a failed write, without writing more)."""
        writer = self._writer
        try:
            if writer is None or not writer.broken:
                with contextlib.suppress(IndexWriteError):
                    self.commit()
        finally:
            if writer is not None:
                writer.close()


def _space_of(embedder: Embedder, settings: RunSettings) -> IndexSpace:
    return IndexSpace(embedder.name, embedder.model, embedder.dim, settings.chunker.fingerprint())


def build_pipeline(
    req: IngestRequest,
    embedder: Embedder,
    index: VectorIndex | None,
    stats: RunStats,
    ledger: ResourceLedger,
    executor: Executor | None = None,
    seen: set[str] | None = None,
    cache: VectorCache | None = None,
    *,
    files: FileStream | None = None,
    claims: ContentClaims | None = None,
    parsers: ParserPool | None = None,
    unwritten: _UnwrittenVectors | None = None,
) -> Stage[Result[Chunk, ErrInfo | BreakInfo[ErrInfo]]]:
    """The lazy stage chain of one run (or of one round of it); creating it does no I/O.

    ``files`` is the stream of files to process (the request's walk when None). PDF
    and DOCX files are parsed in ``parsers``' worker processes (without a pool, in this
    process: only for trusted files). With an ``executor``, up to
    ``embedder.concurrency`` embedding batches are in flight.
    ``seen`` collects the id of every file the walk found that still exists as a
    document (ingested, unchanged or failed): the run prunes the others afterwards.
    Vectors are looked up in and persisted to the index, else to ``cache``; ``claims``
    makes each content paid once across runs sharing the index. With ``unwritten``
    (a free embedder's vectors, see ``EmbedderKind.free``), vectors are not persisted
    when made: the sink stores them with their chunks, and lookups see them first.
    """
    seen = set() if seen is None else seen
    settings = req.settings
    if files is None:
        files = walk_request(req)

    readers = readers_for(encoding=settings.encoding)
    check = ChangeCheck(index, readers, by_stat=settings.change_check == "stat", refresh=True)

    def unread(r: Result[SourceFile, ErrInfo]) -> bool:
        """Drop (and count) a file unchanged by its stat signature: it is not opened."""
        if isinstance(r, Err):
            return True
        src = r.value
        stored = check.unchanged_unread(src)
        if stored is None:
            return True
        stats.files_seen += 1
        seen.add(src.doc_id)
        stats.files_by_reader[stored.reader.split("/", 1)[0]] += 1
        stats.bytes_seen += src.size
        stats.current = src.path
        stats.files_unchanged += 1
        return False

    def keep(r: Result[RawFile, ErrInfo]) -> bool:
        """Count each file once; drop skips and unchanged files before they are parsed."""
        stats.files_seen += 1
        if isinstance(r, Err):
            if is_skip(r.error):
                stats.skip(r.error)
                return False
            return True  # a failure: the sink counts it
        src = r.value.source
        seen.add(src.doc_id)
        stats.files_by_reader[r.value.reader.name] += 1
        stats.bytes_seen += r.value.size
        stats.current = src.path
        if check.unchanged_read(r.value):
            stats.files_unchanged += 1
            return False
        return True

    def chunked(r: Result[ChunkWithoutEmbedding, ErrInfo]) -> bool:
        """Count chunks; a document without text is a skip: counted, never a failure."""
        if isinstance(r, Ok):
            stats.chunks_seen += 1
            return True
        if is_skip(r.error):
            stats.skip(r.error)
            seen.discard(r.error.ctx.get("doc_id") or "")
            return False
        return True

    raws = sfilter(keep, read_files(sfilter(unread, files), ledger, readers=readers))
    docs = extract_documents(check.flushed(raws), ledger, parsers)
    chunks = sfilter(chunked, iter_chunks(docs, settings.chunker, space=content_space(settings)))
    store = index if index is not None else cache
    lookup = store.fetch_vectors if store is not None else None
    persist = store.store_vectors if store is not None else None
    if unwritten is not None:
        lookup, persist = unwritten.lookup, None
    embedded = embed_chunks(
        chunks,
        embedder,
        batch_size=settings.batch_size,
        lookup=lookup,
        executor=executor,
        window=embedder.concurrency if executor is not None else 1,
        persist=persist,
        claims=claims,
    )
    return circuit_breaker_rate_emit(
        embedded, max_rate=settings.max_rate, min_samples=settings.min_samples
    )


def walk_request(req: IngestRequest) -> Stage[Result[SourceFile, ErrInfo]]:
    """The files the request names: its roots walked, or its path list."""
    roots: Iterable[str] = req.path_list if req.path_list is not None else req.roots
    return iter_paths(roots, req.settings.walk_options())


@contextlib.contextmanager
def worker_pool(workers: int, ledger: ResourceLedger) -> Iterator[ThreadPoolExecutor]:
    """Threads for embedding requests, counted in the ledger and joined on exit."""
    with ledger.tracking("worker_pool", f"{workers} threads"):
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="funcpipe-embed")
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _prune(index: VectorIndex, req: IngestRequest, seen: set[str]) -> int:
    """Forget the documents of files deleted from the walked roots; then make a rebuild
    (``--reembed``) the live index.

    Only after a walk that saw everything (no breaker trip, no early stop, no
    interruption) — with runs sharing the index, once the whole corpus is done, in the
    run that completes it — only under the folders this run walked, and for a stdin path
    list only when asked (``prune_listed``: the list is then the whole index).
    """
    if req.path_list is not None:
        pruned = index.prune((), seen, everything=True) if req.prune_listed else 0
    else:
        folders = [display_path(os.path.abspath(r)) for r in req.roots if os.path.isdir(r)]
        pruned = index.prune(folders, seen) if folders else 0
    index.finish()
    return pruned


def _check_roots(req: IngestRequest) -> None:
    """A mistyped root is a usage error found before anything is created."""
    missing = [r for r in req.roots if not os.path.lexists(r)]
    if missing:
        raise ConfigError(
            f"no such file or directory: {', '.join(display_path(m) for m in missing)}"
        )


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB.

    Linux's ``VmHWM`` first: ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a
    process started by a large parent reports the parent's peak (seen in the bench:
    88 MB reported for a 61 MB run).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / (1024 * 1024)


def ingest(
    req: IngestRequest,
    *,
    on_progress: ProgressFn | None = None,
    progress_every_s: float = 0.1,
    ledger: ResourceLedger | None = None,
    on_result: ResultHook | None = None,
) -> RunSummary:
    """Run one ingest and return its summary; configuration errors raise ``ConfigError``.

    Interruptions (``KeyboardInterrupt``, :class:`RunInterrupted`, a closed stdout) end
    the run in order and are reported in the summary, not raised. ``on_result`` sees
    every result before it is stored; returning ``False`` stops the run early (the
    stream is closed, what was stored is kept), and an exception it raises ends the run
    like any consumer failure (status ``error``) — ``leak-check`` uses both.
    """
    ledger = ledger if ledger is not None else ResourceLedger()
    settings = req.settings
    stats = RunStats()
    os_before = os_snapshot()
    t0 = time.perf_counter()
    status, reason, signal_exit = "ok", "", None
    index_path = None if not req.use_index else index_name(settings.index)
    sink: _Sink | None = None
    _check_roots(req)
    try:
        with use_ledger(ledger), CleanupStack(ledger) as stack:
            embedder = open_embedder(settings, ledger)
            free = kind_of(settings.embedder).free
            stack.callback(embedder.close, "embedder")
            index: VectorIndex | None = None
            cache: VectorCache | None = None
            if req.use_index:
                index = open_index(
                    settings.index,
                    _space_of(embedder, settings),
                    ledger,
                    rebuild=req.reembed,
                    options=settings.index_options(),
                )
                stack.callback(index.close, "index")
                index.remember(settings.remembered())
                if index.space.dim:
                    embedder.expect_dim(index.space.dim)
            else:
                cache = VectorCache(ledger)
                stack.callback(cache.close, "vector cache")
            executor = None
            if embedder.concurrency > 1:
                executor = stack.enter_context(
                    worker_pool(embedder.concurrency, ledger), "worker pool"
                )
            # Other runs writing the same index share the corpus with this one (claims on
            # files and contents); alone, the walk is the one round.
            share: FileShare = index.share() if index is not None else LocalShare()
            stack.callback(share.close, "work share")
            seen = share.seen
            # No worker process starts until a PDF or DOCX needs one; closed after the
            # pipelines (which may be waiting on a parse), so busy parsers are stopped.
            parsers = open_parser_pool(settings.parse_limits(), ledger)
            stack.callback(parsers.close, "parser pool")
            # A free embedder's vectors go into the index with their chunks (one writer
            # and no claims only: runs sharing an index pay through the store).
            unwritten = None
            if index is not None and share.content_claims is None and free:
                unwritten = _UnwrittenVectors(index)
            sink = _Sink(
                index,
                req.jsonl,
                stats,
                seen,
                commit_every=settings.commit_every,
                with_vectors=req.with_vectors,
                ledger=ledger,
                unwritten=unwritten,
            )
            stack.callback(sink.finish, "sink commit")
            rounds = share.rounds(lambda: walk_request(req))
            stack.callback(rounds.close, "rounds")
            last_report = time.monotonic()
            walked_all = True
            for files in rounds:
                pipeline = build_pipeline(
                    req, embedder, index, stats, ledger, executor, seen, cache,
                    files=files, claims=share.content_claims, parsers=parsers,
                    unwritten=unwritten,
                )  # fmt: skip
                stack.callback(pipeline.close, "pipeline")
                for n, r in enumerate(pipeline):
                    if on_result is not None and on_result(r) is False:
                        walked_all = False
                        break
                    sink.accept(r)
                    if on_progress is not None and n % 64 == 0:
                        now = time.monotonic()
                        if now - last_report >= progress_every_s:
                            last_report = now
                            on_progress(stats)
                pipeline.close()
                if not walked_all or sink.breaker is not None:
                    break
                sink.commit()  # the round's files are stored before they count as done
                share.round_done()
            if index is not None and walked_all and sink.breaker is None:
                live = index
                stats.files_pruned = share.finish(lambda keep: _prune(live, req, keep))
    except KeyboardInterrupt:
        status, reason, signal_exit = "interrupted", "SIGINT", EXIT_SIGINT
    except RunInterrupted as exc:
        status, reason, signal_exit = "interrupted", f"signal {exc.signum}", exc.exit_code
    except BrokenPipeError:
        status, reason, signal_exit = "interrupted", "stdout closed", EXIT_SIGPIPE
    except IndexWriteError as exc:  # disk full, I/O error: nothing of the batch is claimed
        status, reason = "error", str(exc)
    except FuncpipeError:
        raise  # configuration and lock errors: the caller reports them (exit 2 / 1)
    except Exception as exc:  # an unexpected failure still gets an honest summary
        status, reason = "error", f"{type(exc).__name__}: {exc}"
    if on_progress is not None:
        on_progress(stats)
    breaker = sink.breaker if sink is not None else None
    if sink is not None and sink.write_error is not None and status != "error":
        # The final write (on an interruption, say) failed: the run says so.
        reason = "; ".join(x for x in (reason, str(sink.write_error)) if x)
        status = "error" if status == "ok" else status
    if status == "ok":
        if breaker is not None:
            status, reason = "breaker", breaker.reason
        elif stats.files_failed or stats.chunks_failed:
            status = "partial"
    os_after = os_snapshot()
    snapshot = ledger.snapshot()
    leaked = leak_detected(snapshot, os_before, os_after)
    code = exit_code_for(status, leaked=leaked, signal_exit=signal_exit)
    return RunSummary(
        status=status,
        exit_code=code,
        stats=stats,
        breaker=breaker,
        ledger=snapshot,
        os_before=os_before,
        os_after=os_after,
        wall_s=time.perf_counter() - t0,
        peak_rss_mb=_peak_rss_mb(),
        index_path=index_path,
        reason=reason,
    )


__all__ = ["IngestRequest", "build_pipeline", "chunk_record", "ingest"]
