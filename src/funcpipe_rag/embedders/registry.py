"""The embedders funcpipe knows: one table that settings, help, ingest, search and plan
all read.

Each :class:`EmbedderKind` says how to open the embedder (``opener``, imported only when
used, so importing funcpipe never imports an optional runtime such as onnxruntime),
whether it runs in this process, what it needs (a URL, a model), which pip extra it
needs, and what defines its vector space. From the entry follow:

* the ``embedder`` setting's choices and help, and its validation (``--url`` /
  ``--model`` required, a model directory made absolute): :mod:`funcpipe_rag.config`;
* the embedder a run opens (:func:`open_embedder`) and the content-space key every
  chunk's content hash includes (:func:`content_space`), the same whether computed from
  the settings of a run or of a plan (:func:`planned_space`);
* how search embeds a query: :func:`query_settings` turns the index's vector space into
  the settings that open the same entry, then the embedder's ``embed_query`` runs.

Adding an embedder is one module with an ``open_*(settings, ledger)`` function plus one
entry in :data:`KINDS`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError

# The hash embedder's model name (hashing.HASH_EMBEDDER_VERSION, which a test keeps equal):
# named here so that reading the registry does not import the embedder and numpy with it.
HASH_EMBEDDER_VERSION = "hash-ngram-v1"

if TYPE_CHECKING:
    from ..config import RunSettings
    from ..index.base import IndexSpace
    from ..policies.ledger import ResourceLedger
    from .base import Embedder

Opener = Callable[["RunSettings", "ResourceLedger"], "Embedder"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbedderKind:
    """One entry of the registry.

    >>> EmbedderKind(name="hash", help="...", opener="funcpipe_rag.embedders.factory:open_hash",
    ...              in_process=True, default_model=HASH_EMBEDDER_VERSION, dim_setting=True)
    >>> KINDS["onnx"].needs_model
    True
    >>> content_space(RunSettings())
    'hash:hash-ngram-v1:384'
    """

    name: str
    help: str  # a few words for --help and the settings table ("in process" is added)
    opener: str  # "module:function"; the function takes (settings, ledger)
    in_process: bool  # False: a server does the work (and search needs its --url)
    needs_url: bool = False
    needs_model: bool = False
    model_hint: str = "NAME"  # what --model means for it, in messages
    model_is_path: bool = False  # --model is a local directory, kept as an absolute path
    extra: str = ""  # the pip extra it needs (funcpipe[extra]); "" = the core install
    default_model: str = "default"  # what an empty --model stands for
    dim_setting: bool = False  # the dimension is the `dim` setting, not the model's
    # Other settings that change the passage vectors: part of the content-space key.
    vector_settings: tuple[str, ...] = ()
    # Its work costs less to redo than to store twice: deterministic, in process, no
    # model, no server (the hash embedder only). A run stores such vectors with their
    # chunks (in the chunk write) instead of on their own as soon as they are made; a
    # vector lost before that is recomputed bit for bit. Never for onnx or HTTP
    # embedders: their work is paid, and persisted as soon as it is paid.
    free: bool = False

    def open(self, settings: RunSettings, ledger: ResourceLedger) -> Embedder:
        """A new embedder for ``settings``; the caller owns it and must close it."""
        module, _, function = self.opener.partition(":")
        opener = cast(Opener, getattr(importlib.import_module(module), function))
        return opener(settings, ledger)


_HTTP = "funcpipe_rag.embedders.factory:open_http"

KINDS: dict[str, EmbedderKind] = {
    kind.name: kind
    for kind in (
        EmbedderKind(
            name="hash",
            help="lexical",
            opener="funcpipe_rag.embedders.factory:open_hash",
            in_process=True,
            default_model=HASH_EMBEDDER_VERSION,
            dim_setting=True,
            free=True,
        ),
        EmbedderKind(
            name="openai",
            help="an HTTP server",
            opener=_HTTP,
            in_process=False,
            needs_url=True,
            needs_model=True,
            model_hint="NAME (the server's model name)",
        ),
        EmbedderKind(
            name="ollama",
            help="an HTTP server",
            opener=_HTTP,
            in_process=False,
            needs_url=True,
            needs_model=True,
            model_hint="NAME (the server's model name)",
        ),
        EmbedderKind(
            name="tei",
            help="an HTTP server",
            opener=_HTTP,
            in_process=False,
            needs_url=True,
        ),
        EmbedderKind(
            name="onnx",
            help="a local ONNX model",
            opener="funcpipe_rag.embedders.onnx:open_onnx",
            in_process=True,
            needs_model=True,
            model_hint="DIR (a local model directory: model.onnx, tokenizer.json)",
            model_is_path=True,
            extra="onnx",
            vector_settings=("pooling", "passage_prefix"),
        ),
    )
}

NAMES: tuple[str, ...] = tuple(KINDS)


def kind_of(name: str) -> EmbedderKind:
    """The entry called ``name``; an unknown name is a :class:`ConfigError`."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown embedder {name!r} (known: {', '.join(NAMES)})") from None


def describe() -> str:
    """The embedders for help text, those with the same help together:
    ``hash (lexical, in process), openai / ollama / tei (an HTTP server), ...``."""
    groups: dict[str, list[str]] = {}
    for k in KINDS.values():
        groups.setdefault(k.help + (", in process" if k.in_process else ""), []).append(k.name)
    return ", ".join(f"{' / '.join(names)} ({text})" for text, names in groups.items())


def open_embedder(settings: RunSettings, ledger: ResourceLedger) -> Embedder:
    """The embedder ``settings`` ask for; the caller owns it and must close it."""
    return kind_of(settings.embedder).open(settings, ledger)


def planned_space(settings: RunSettings) -> tuple[str, str, int]:
    """(embedder, model, dim) of the space a run with ``settings`` will use, without
    opening anything; dim is 0 when the model tells it (learned when it is opened)."""
    kind = kind_of(settings.embedder)
    return kind.name, settings.model or kind.default_model, settings.dim if kind.dim_setting else 0


def content_space(settings: RunSettings) -> str:
    """What every content hash of a run with ``settings`` includes of its vector space.

    The embedder and model always; the dimension when it is a setting (the hash
    embedder's); and the other settings that change a passage's vector (an onnx
    model's pooling and passage prefix). Keys of hash and HTTP embedders are
    ``hash:MODEL:DIM`` and ``NAME:MODEL``, as they always were.
    """
    kind = kind_of(settings.embedder)
    name, model, dim = planned_space(settings)
    key = f"{name}:{model}" + (f":{dim}" if kind.dim_setting else "")
    for setting in kind.vector_settings:
        key += f";{setting}={getattr(settings, setting)!r}"
    return key


def query_settings(space: IndexSpace, settings: RunSettings) -> RunSettings:
    """The settings that open, for one query, the embedder an index of ``space`` was
    built with: same entry, model and dimension; the rest (timeouts, URL, threads,
    prefixes) from ``settings``. A server's embedder needs ``settings.url``."""
    kind = kind_of(space.embedder)
    if kind.needs_url and not settings.url:
        raise ConfigError(
            f"the index was built with --embedder {space.embedder} (model {space.model}); "
            "give the server's --url (or FUNCPIPE_URL) to embed the query"
        )
    changes: dict[str, Any] = {
        "embedder": kind.name,
        "model": "" if space.model == kind.default_model else space.model,
        "concurrency": 1,
    }
    if kind.dim_setting:
        changes["dim"] = space.dim
    return dataclasses.replace(settings, **changes)


__all__ = [
    "KINDS",
    "NAMES",
    "EmbedderKind",
    "content_space",
    "describe",
    "kind_of",
    "open_embedder",
    "planned_space",
    "query_settings",
]
