"""A local embedding server for tests, demos and ``leak-check`` (``funcpipe serve``).

Backed by the in-process :class:`HashEmbedder` (any model name is accepted and echoed),
it speaks three protocols over HTTP/1.1 keep-alive on the standard library's
``ThreadingHTTPServer``:

==========================  ==========================================================
``POST /v1/embeddings``     OpenAI-compatible; ``encoding_format`` float or base64
``GET /v1/models``          OpenAI's model list: the hash embedder's model
``GET /v1/models/{id}``     any id (every model name is served)
``POST /api/embed``         Ollama: ``{"model", "input"}`` -> ``{"model", "embeddings"}``
``POST /embed``             Hugging Face TEI: ``{"inputs"}`` -> a bare list of vectors
``GET /health``             ``{"status": "ok"}``
``GET /stats``              counters, faults, limits, timeouts, the last 1000 embed requests
==========================  ==========================================================

Every request is held to :class:`ServerLimits` (body size, inputs, characters, time,
connections; finite by default), so memory and threads stay bounded whatever a client
sends. Faults (:class:`FaultConfig`) are injected into valid embed requests on a
reproducible, seeded schedule. Usage accounting counts one character as one token.

The package, one idea per module: ``limits`` (what a request may ask), ``faults`` (what
goes wrong), ``codec`` (the wire formats, read within the limits), ``state`` (counters
and connections), ``sockets`` (deadline reads, one-write answers, polite closes),
``handler`` (one connection's requests), ``server`` (:class:`EmbeddingServer`).
"""

from __future__ import annotations

from .faults import CORRUPT_MODES as CORRUPT_MODES
from .faults import FAULT_KINDS as FAULT_KINDS
from .faults import CorruptMode as CorruptMode
from .faults import FaultConfig as FaultConfig
from .limits import LIMIT_KINDS as LIMIT_KINDS
from .limits import TIMEOUT_KINDS as TIMEOUT_KINDS
from .limits import ServerLimits as ServerLimits
from .server import EmbeddingServer as EmbeddingServer
from .state import LogEntry as LogEntry
from .state import ServerStats as ServerStats

__all__ = [
    "CORRUPT_MODES",
    "FAULT_KINDS",
    "LIMIT_KINDS",
    "TIMEOUT_KINDS",
    "CorruptMode",
    "EmbeddingServer",
    "FaultConfig",
    "LogEntry",
    "ServerLimits",
    "ServerStats",
]
