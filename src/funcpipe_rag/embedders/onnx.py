"""A semantic model in this process: an ONNX Runtime session and a ``tokenizers``
tokenizer from a local model directory (:mod:`.model_dir`). Nothing is downloaded.

Each batch the embedding stage hands over (``batch_size`` chunks: the bounded window)
is tokenized once, unpadded and cut at the model's maximum length; sorted by token
length into small batches padded only to their own longest row
(:func:`.length_batches.by_length`: a fixed padding length wastes most of the work on
padding); run; pooled over the real tokens (mean, CLS or max, as the model's config or
the ``pooling`` setting says); L2-normalised; and put back at its input position.
Queries and passages get their configured prefixes (e5 and bge models want them).

Resources: the session — the weights and ONNX Runtime's intra-op threads — is counted
in the ledger (kind ``model_session``) and released by ``close()``, which drops the
only reference to it (the threads end with it). :meth:`OnnxEmbedder.cancel_inflight`
terminates runs in progress on other threads.

Two variables are set, when unset, before ONNX Runtime is first imported, because
both libraries otherwise start things a run could not release:
``ORT_DISABLE_TELEMETRY=1`` (official builds start a telemetry uploader at import,
with its own thread and open files, and would send usage data off the machine), and
``TOKENIZERS_PARALLELISM=false`` (``tokenizers`` starts a process-wide thread pool
that never ends; the model's own threads do the parallel work).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import RunSettings
from ..errors import ConfigError, EmbeddingUnavailableError, ResourceClosedError
from ..policies.ledger import ResourceLedger
from ..result import Err, ErrInfo, Ok, Result, make_errinfo
from .base import Vector
from .length_batches import by_length
from .model_dir import ModelFiles, find_model

EXTRA_HINT = "pip install 'funcpipe[onnx]'"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Small batches: each padded only to its own longest row, with activations that stay
# in cache. Measured on 2 cores (bench/bench_onnx.py's texts, CPU seconds): a budget
# of 512 padded tokens a batch cost 10.3 s for 128 chunks and 7.0-7.8 s for 512
# sentences, against 12-15 s and 9 s for budgets of 2048-16384 tokens, whose peak RSS
# was also 370-1150 MB against 283 MB.
MAX_ROWS = 8
MAX_TOKENS = 512


def _runtime() -> tuple[ModuleType, ModuleType]:
    """``onnxruntime`` and ``tokenizers``, or one line naming the extra to install."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import onnxruntime
        import tokenizers
    except ImportError as exc:
        raise ConfigError(
            f"--embedder onnx needs the onnx extra ({exc.name or 'onnxruntime'} is not "
            f"installed): {EXTRA_HINT}"
        ) from None
    return onnxruntime, tokenizers


def _pool(hidden: npt.NDArray[np.float32], mask: npt.NDArray[Any], how: str) -> Vector:
    """One vector per row of ``hidden`` [rows, tokens, dim] from its real tokens, unit
    length."""
    if how == "cls":
        pooled = hidden[:, 0, :]
    elif how == "max":
        pooled = np.where(mask[:, :, None] > 0, hidden, -np.inf).max(axis=1)
    else:
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return _unit(pooled)


def _unit(rows: npt.NDArray[np.float32]) -> Vector:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vector = (rows / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


class OnnxEmbedder:
    """One ONNX model from a local directory behind the :class:`Embedder` protocol.

    ``threads`` is ONNX Runtime's intra-op thread count (0: one per core). Safe to call
    from several threads. ``close()`` is idempotent; use after close raises
    :class:`ResourceClosedError`.
    """

    name = "onnx"
    # The model's own threads use every core: a second batch in flight only competes.
    concurrency = 1

    def __init__(
        self,
        files: ModelFiles,
        *,
        ledger: ResourceLedger,
        threads: int = 0,
        query_prefix: str = "",
        passage_prefix: str = "",
        max_rows: int = MAX_ROWS,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        ort, tokenizers = _runtime()
        self.model = str(files.root)
        self._files = files
        self._query_prefix = query_prefix
        self._passage_prefix = passage_prefix
        self._max_rows = max_rows
        self._max_tokens = max_tokens
        self._ort = ort
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(files.tokenizer))
        except Exception as exc:  # the library raises plain Exceptions for bad files
            raise ConfigError(f"cannot load the tokenizer {files.tokenizer}: {exc}") from None
        pad = tokenizer.padding  # the file's own padding names the pad token, if any
        self._pad_id = int(pad["pad_id"]) if pad else 0
        # Padding is per small batch, to its own longest row (the file's may pad every
        # text to a fixed length); truncation at the model's own maximum.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=files.max_length)
        self._tokenizer = tokenizer
        self._session: Any = self._open_session(files, threads)
        self._ledger = ledger
        self._handle = ledger.acquire(
            "model_session", f"onnx {files.model} ({threads or 'all'} threads)"
        )
        self._lock = threading.Lock()
        # Invariant: _active holds the RunOptions of every run in progress; a cancel
        # terminates exactly those, and _cancelled refuses new ones until resume().
        self._active: set[Any] = set()
        self._cancelled = False
        self._closed = False
        try:
            self._output, self._pooled_in_graph, self._dtypes = self._describe(files)
            self.dim = self._dimension()
        except BaseException:
            self.close()
            raise

    def _open_session(self, files: ModelFiles, threads: int) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Batches are bounded (MAX_TOKENS), so the arena stays small and saves an
        # allocation per tensor per batch (measured: less CPU and lower peak RSS than
        # without it). A memory pattern is planned for one shape; batches vary.
        options.enable_mem_pattern = False
        # Idle threads sleep instead of spinning: on a shared machine spinning burned
        # a third more CPU for the same work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        try:
            return ort.InferenceSession(
                str(files.model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot load the model {files.model}: {first}") from None

    def _describe(self, files: ModelFiles) -> tuple[str, bool, dict[str, type]]:
        """The output to read (token vectors, else a pooled one) and the inputs' types."""
        inputs = {i.name: i.type for i in self._session.get_inputs()}
        unknown = sorted(set(inputs) - set(_INPUTS))
        if "input_ids" not in inputs or unknown:
            raise ConfigError(
                f"the model {files.model} takes inputs {', '.join(sorted(inputs))}; funcpipe "
                f"gives {', '.join(_INPUTS)}"
            )
        dtypes: dict[str, type] = {
            name: np.int32 if kind == "tensor(int32)" else np.int64 for name, kind in inputs.items()
        }
        outputs = self._session.get_outputs()
        tokens = [o.name for o in outputs if len(o.shape) == 3]
        pooled = [o.name for o in outputs if len(o.shape) == 2]
        if tokens:
            return tokens[0], False, dtypes
        if pooled:
            return pooled[0], True, dtypes
        raise ConfigError(
            f"the model {files.model} has no output of shape [batch, tokens, dim] or [batch, dim]"
        )

    def _dimension(self) -> int:
        shape = next(o.shape for o in self._session.get_outputs() if o.name == self._output)
        if isinstance(shape[-1], int) and shape[-1] > 0:
            return int(shape[-1])
        (probe,) = self._run([self._tokenizer.encode("dimension")])
        if isinstance(probe, Err):
            raise ConfigError(f"the model {self._files.model} fails: {probe.error.msg}")
        return int(probe.value.size)

    # -- embedding ---------------------------------------------------------------------

    def embed_batch(self, texts: Sequence[str]) -> list[Result[Vector, ErrInfo]]:
        """One unit vector per text, in input order (see the module docstring)."""
        self._check_open()
        results: dict[int, Result[Vector, ErrInfo]] = {}
        ready: list[tuple[int, Any]] = []  # (input position, encoding)
        for pos, encoded in enumerate(self._encode([self._passage_prefix + t for t in texts])):
            if isinstance(encoded, Ok):
                ready.append((pos, encoded.value))
            else:
                results[pos] = encoded
        lengths = [len(encoding.ids) for _, encoding in ready]
        for group in by_length(lengths, max_rows=self._max_rows, max_tokens=self._max_tokens):
            batch = [ready[g] for g in group]
            outcomes = self._run([encoding for _, encoding in batch])
            for (pos, _), outcome in zip(batch, outcomes, strict=True):
                results[pos] = outcome
        return [results[pos] for pos in range(len(texts))]

    def embed_query(self, text: str) -> Vector:
        self._check_open()
        (encoding,) = self._encode([self._query_prefix + text])
        if isinstance(encoding, Err):
            raise EmbeddingUnavailableError(f"cannot embed the query: {encoding.error.msg}")
        (result,) = self._run([encoding.value])
        if isinstance(result, Err):
            raise EmbeddingUnavailableError(f"cannot embed the query: {result.error.msg}")
        return result.value

    def _encode(self, texts: list[str]) -> list[Result[Any, ErrInfo]]:
        """Token ids per text; a text the tokenizer refuses fails alone."""
        try:
            return [Ok(e) for e in self._tokenizer.encode_batch(texts)]
        except Exception:  # find which one: the library names no position
            out: list[Result[Any, ErrInfo]] = []
            for text in texts:
                try:
                    out.append(Ok(self._tokenizer.encode(text)))
                except Exception as exc:
                    out.append(Err(make_errinfo("EMBED/TOKENIZE", f"cannot tokenize: {exc}")))
            return out

    def _run(self, batch: list[Any]) -> list[Result[Vector, ErrInfo]]:
        """Run one small batch padded to its longest row; one result per encoding."""
        longest = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), longest), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, encoding in enumerate(batch):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {
            name: feeds[name].astype(dtype, copy=False) for name, dtype in self._dtypes.items()
        }
        options = self._ort.RunOptions()
        with self._lock:
            if self._cancelled:
                return [Err(_cancelled()) for _ in batch]
            self._active.add(options)
        try:
            (hidden,) = self._session.run([self._output], feeds, options)
        except Exception as exc:
            if self._cancelled:
                return [Err(_cancelled()) for _ in batch]
            err = make_errinfo("EMBED/MODEL", f"the model failed: {exc}", exc=exc)
            return [Err(err) for _ in batch]
        finally:
            with self._lock:
                self._active.discard(options)
        hidden = np.asarray(hidden, dtype=np.float32)
        vectors = (
            _unit(hidden) if self._pooled_in_graph else _pool(hidden, mask, self._files.pooling)
        )
        return [
            Ok(v)
            if np.isfinite(v).all()
            else Err(make_errinfo("EMBED/NOT_FINITE", "vector has NaN or inf"))
            for v in vectors
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def expect_dim(self, dim: int) -> None:
        if dim != self.dim:
            raise ConfigError(
                f"the model {self.model} makes {self.dim}-d vectors, the index {dim}-d"
            )

    def cancel_inflight(self) -> None:
        """Terminate the runs in progress (their texts fail as ``EMBED/CANCELLED``) and
        refuse new ones until :meth:`resume`."""
        with self._lock:
            self._cancelled = True
            for options in self._active:
                options.terminate = True

    def resume(self) -> None:
        with self._lock:
            self._cancelled = False

    def _check_open(self) -> None:
        if self._closed:
            raise ResourceClosedError("the model session is closed")

    def close(self) -> None:
        """Release the session (its memory and threads); idempotent."""
        if self._closed:
            return
        self._closed = True
        # The only reference: dropping it destroys the session and joins its threads.
        self._session = None
        self._ledger.release(self._handle)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(model={self.model!r}, dim={getattr(self, 'dim', 0)})"


def _cancelled() -> ErrInfo:
    return make_errinfo("EMBED/CANCELLED", "cancelled: the run is stopping")


def open_onnx(settings: RunSettings, ledger: ResourceLedger) -> OnnxEmbedder:
    """The registry's opener of ``onnx``: the model directory ``settings.model``."""
    _runtime()  # a missing extra is named before anything about the directory
    files = find_model(settings.model, pooling=settings.pooling)
    return OnnxEmbedder(
        files,
        ledger=ledger,
        threads=settings.threads,
        query_prefix=settings.query_prefix,
        passage_prefix=settings.passage_prefix,
    )


__all__ = ["EXTRA_HINT", "OnnxEmbedder", "open_onnx"]
